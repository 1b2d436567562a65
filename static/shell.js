// What every page shares around its own content: the header (navigation,
// the state of each of the page's connections, signing in and out) and the
// footer. Built here so the pages hold only their own markup.

import { connections, session } from "./conn.js";

const PAGES = [
  ["/", "Home"],
  ["/dashboard.html", "Dashboard"],
  ["/chat.html", "Chat"],
  ["/dns.html", "DNS"],
  ["/staff.html", "Staff"],
  ["/about.html", "About"],
];

/** An element with attributes and children; text is always text. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function signInForm() {
  const error = el("p", { id: "signin-error", class: "error", role: "alert" });
  const form = el("form", { id: "signin", class: "signin", "aria-label": "Sign in" },
    el("label", { for: "signin-username", text: "Username" }),
    el("input", { id: "signin-username", name: "username", autocomplete: "username", required: true }),
    el("label", { for: "signin-password", text: "Password" }),
    el("input", { id: "signin-password", name: "password", type: "password", autocomplete: "current-password", required: true }),
    el("button", { type: "submit", text: "Sign in" }),
    error,
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    error.textContent = "";
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      await session.signIn(form.username.value, form.password.value);
    } catch (err) {
      // A hub with no account yet: say how the first one is made.
      error.textContent = err.body?.error === "no_users_yet"
        ? "No account exists yet. An operator creates the first one on the hub's machine: hub user create --username NAME --password-stdin"
        : err.message;
      form.password.focus();
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

function account() {
  const box = el("div", { id: "account", class: "account" });
  const render = () => {
    box.classList.remove("open");
    if (session.signedIn) {
      box.replaceChildren(
        el("span", {}, el("span", { class: "signed-in-as", text: "Signed in as " }),
          el("strong", { id: "whoami", text: session.username })),
        el("button", { type: "button", id: "signout", text: "Sign out", onclick: () => session.signOut() }),
      );
      return;
    }
    // On a phone the form folds behind this button, so it does not take
    // the top of every page (hub.css shows the button only there).
    const toggle = el("button", {
      type: "button", id: "signin-toggle", class: "signin-toggle", "aria-expanded": "false", "aria-controls": "signin", text: "Sign in",
    });
    const form = signInForm();
    const unfold = (open) => {
      box.classList.toggle("open", open);
      toggle.setAttribute("aria-expanded", String(open));
    };
    toggle.addEventListener("click", () => {
      const open = !box.classList.contains("open");
      unfold(open);
      if (open) form.username.focus();
    });
    box.replaceChildren(toggle, form);
    if (session.signOutReason) {
      form.querySelector("#signin-error").textContent = `Signed out: ${session.signOutReason}`;
      unfold(true);
    }
  };
  session.addEventListener("change", render);
  render();
  return box;
}

/** What the header says of a connection's state. */
function words(connection) {
  switch (connection.state) {
    case "connecting": return "connecting…";
    case "open": return "connected";
    case "waiting": return `reconnecting (${connection.detail})`;
    case "signed-out": return "not signed in";
    default:
      if (connection.refusal) return `refused: ${connection.detail}`;
      return connection.detail ? `disconnected: ${connection.detail}` : "disconnected";
  }
}

// The page's state as one word, the most pressing of its connections'.
const PRESSING = ["stopped", "waiting", "connecting", "signed-out", "open"];

/** One line per connection of the page, each with its state. */
function connectionStates() {
  const box = el("div", { id: "conn-state", class: "conn-state", role: "status", "data-state": "none" });
  const render = () => {
    const list = connections.list;
    box.replaceChildren(...list.map((c) => el("p", {
      class: "conn-line", "data-name": c.name, "data-state": c.state, text: `${c.label}: ${words(c)}`,
    })));
    box.dataset.state = PRESSING.find((state) => list.some((c) => c.state === state)) || "none";
  };
  connections.addEventListener("change", render);
  render();
  return box;
}

/**
 * Puts the header and footer around the page's <main> and signs the tab in
 * from its refresh token, or from another tab. Resolves once the session is
 * known.
 */
export async function mountShell() {
  const here = location.pathname === "/index.html" ? "/" : location.pathname;
  const nav = el("nav", { "aria-label": "Pages" },
    el("ul", {}, ...PAGES.map(([href, label]) =>
      el("li", {}, el("a", { href, text: label, "aria-current": href === here ? "page" : null })))));
  const header = el("header", { class: "site" },
    el("a", { href: "/", class: "brand", text: "Realtime hub" }), nav, connectionStates(), account());
  const footer = el("footer", { class: "site" },
    el("p", {}, "The realtime hub: chat, dashboards and DNS panels, live. ",
      el("a", { href: "/about.html", text: "About us" })));
  document.body.prepend(header);
  document.body.append(footer);
  await session.restore();
}

/**
 * Shows a connection's state in the header under this label. Every
 * connection is shown, one line each, from the moment it is made; this
 * names it.
 */
export function showState(connection, label) {
  connection.relabel(label);
}
