// The home page: the shared header (sign in) around links to the pages.

import { mountShell } from "./shell.js";

await mountShell();
