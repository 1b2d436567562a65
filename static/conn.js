// The one connection module every page uses: the signed-in session and
// sockets that carry the access token in Sec-WebSocket-Protocol, refresh it
// before it expires and reconnect as the close codes of the contract say.
//
// The access token stays in memory. The refresh token is kept in this tab's
// sessionStorage (so a reload or another page of this tab stays signed in)
// and handed, in memory, over a BroadcastChannel to this origin's other
// tabs that ask for it; it is never written to localStorage. Signing in or
// out in one tab does so in every tab.

const REFRESH_KEY = "hub.refresh";
const USERNAME_KEY = "hub.username";
const GUEST_KEY = "hub.guest-key";
const CHANNEL = "hub.session";
/** How long a new tab waits for another tab to say who is signed in. */
const ASK_MS = 300;

/** An error the token API answered, with its field errors if it named any. */
export class ApiError extends Error {
  constructor(status, body) {
    super(ApiError.describe(body) || `the hub answered ${status}`);
    this.status = status;
    this.body = body;
  }

  static describe(body) {
    if (!body || typeof body !== "object") return "";
    if (typeof body.detail === "string") return body.detail;
    return Object.entries(body)
      .filter(([, v]) => Array.isArray(v))
      .map(([field, v]) => `${field}: ${v.join(" ")}`)
      .join("; ");
  }
}

async function postJson(path, body) {
  const res = await fetch(path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const answer = await res.json().catch(() => null);
  if (!res.ok) throw new ApiError(res.status, answer);
  return answer;
}

/** The `exp` and `iat` claims of a JWT, in seconds, without checking it. */
function claims(jwt) {
  const payload = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
  return JSON.parse(atob(payload));
}

/**
 * The signed-in user, shared by this origin's tabs. Listeners hear "change"
 * (signed in or out) and "token" (a new access token, which open sockets
 * pass on with `auth.refresh`).
 */
class Session extends EventTarget {
  #access = null;
  #timer = null;
  #channel = typeof BroadcastChannel === "function" ? new BroadcastChannel(CHANNEL) : null;
  // While this tab asks the others: called when one answers.
  #answered = null;

  constructor() {
    super();
    this.#channel?.addEventListener("message", ({ data }) => this.#heard(data));
  }

  get access() { return this.#access; }
  get username() { return this.#access ? sessionStorage.getItem(USERNAME_KEY) : null; }
  get signedIn() { return this.#access !== null; }

  /** A guest's key (`chat.identity`), which brings its name back in this tab. */
  get guestKey() { return sessionStorage.getItem(GUEST_KEY); }
  set guestKey(key) { sessionStorage.setItem(GUEST_KEY, key); }

  async signIn(username, password) {
    const tokens = await postJson("/api/token/", { username, password });
    this.#keep(tokens.refresh, username.trim());
    this.#use(tokens.access);
    this.#offer();
    this.dispatchEvent(new Event("change"));
  }

  /** Signs this tab out, and every other tab of this origin. */
  signOut(reason) {
    this.#signOutHere(reason);
    this.#channel?.postMessage({ type: "signed-out", reason: this.signOutReason });
  }

  #signOutHere(reason) {
    clearTimeout(this.#timer);
    this.#access = null;
    sessionStorage.removeItem(REFRESH_KEY);
    sessionStorage.removeItem(USERNAME_KEY);
    this.signOutReason = reason || "";
    this.dispatchEvent(new Event("change"));
  }

  #keep(refresh, username) {
    sessionStorage.setItem(REFRESH_KEY, refresh);
    sessionStorage.setItem(USERNAME_KEY, username);
  }

  // Tells the other tabs who is signed in here, refresh token included.
  #offer() {
    const refresh = sessionStorage.getItem(REFRESH_KEY);
    if (!refresh) return;
    this.#channel?.postMessage({ type: "signed-in", refresh, username: sessionStorage.getItem(USERNAME_KEY) });
  }

  #heard(message) {
    switch (message?.type) {
      case "ask":
        return this.#offer();
      case "signed-in":
        return this.#adopt(message);
      case "signed-out":
        if (sessionStorage.getItem(REFRESH_KEY)) this.#signOutHere(message.reason);
        return undefined;
      default:
        return undefined;
    }
  }

  // Another tab signed in (or answered this one's question): this tab is
  // signed in as the same user.
  #adopt({ refresh, username }) {
    if (typeof refresh !== "string" || typeof username !== "string") return;
    if (refresh === sessionStorage.getItem(REFRESH_KEY)) return;
    this.#keep(refresh, username);
    if (this.#answered) this.#answered();
    else this.#begin();
  }

  // Asks the other tabs whether someone is signed in; resolves once one
  // answered, or after ASK_MS without an answer.
  #ask() {
    if (!this.#channel) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#answered = null;
        resolve();
      };
      const timer = setTimeout(done, ASK_MS);
      this.#answered = done;
      this.#channel.postMessage({ type: "ask" });
    });
  }

  /**
   * Signs this page in from the tab's refresh token, or from another tab
   * that is signed in, if any.
   */
  async restore() {
    if (!sessionStorage.getItem(REFRESH_KEY)) await this.#ask();
    if (sessionStorage.getItem(REFRESH_KEY)) await this.#begin();
  }

  async #begin() {
    try {
      await this.refresh();
      this.dispatchEvent(new Event("change"));
    } catch {
      // A refused refresh token (expired, user gone) signed out already;
      // the hub being down leaves the session to be tried again.
    }
  }

  /** A new access token from the refresh token. */
  async refresh() {
    const refresh = sessionStorage.getItem(REFRESH_KEY);
    if (!refresh) throw new ApiError(401, { detail: "not signed in" });
    try {
      const tokens = await postJson("/api/token/refresh/", { refresh });
      this.#use(tokens.access);
      this.dispatchEvent(new Event("token"));
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) this.signOut(err.message);
      throw err;
    }
  }

  /** Seconds until the access token expires (negative once it has). */
  expiresIn() {
    return this.#access ? claims(this.#access).exp - Date.now() / 1000 : -Infinity;
  }

  // Refreshes ahead of expiry: a third of the lifetime early (at most 30 s),
  // so a slow round trip still lands before the hub closes the sockets.
  #use(access) {
    this.#access = access;
    const { exp, iat } = claims(access);
    const margin = Math.min(30, Math.max(1, (exp - iat) / 3));
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.refresh().catch(() => {
        // Retried by the sockets: on 4001 they refresh before reconnecting.
      });
    }, Math.max(0, (exp - margin) * 1000 - Date.now()));
  }

  /** The Authorization header for the hub's HTTP APIs. */
  authorization() {
    return { authorization: `Bearer ${this.#access}` };
  }
}

export const session = new Session();

/**
 * The page's connections, one per name ("chat", "analytics", "dns"): the
 * header shows each one's state. A new connection of a name takes the place
 * of the one before it. Listeners hear "change" when one is added or
 * relabelled, or changes state.
 */
class Connections extends EventTarget {
  #byName = new Map();

  get list() { return [...this.#byName.values()]; }

  add(connection) {
    this.#byName.set(connection.name, connection);
    connection.addEventListener("state", () => {
      if (this.#byName.get(connection.name) === connection) this.dispatchEvent(new Event("change"));
    });
    this.dispatchEvent(new Event("change"));
  }

  changed() {
    this.dispatchEvent(new Event("change"));
  }
}

export const connections = new Connections();

/** The endpoint's name and a label for it, from a socket path. */
function named(path) {
  const [, endpoint, rest] = /^\/ws\/([^/]+)\/?([^/]*)/.exec(path) || [null, path, ""];
  const labels = { analytics: "Analytics", dns: "DNS" };
  const label = endpoint === "chat" ? `Room ${decodeURIComponent(rest)}` : labels[endpoint] || endpoint;
  return { name: endpoint, label };
}

/**
 * Why the hub refused a socket that never opened: a browser's WebSocket
 * only sees 1006, so the same request is sent as plain HTTP, which gets the
 * refusal's status and body (`400 not_websocket` when every check passed).
 * `null` when the hub could not be reached.
 */
async function refusalOf(url) {
  try {
    const res = await fetch(url.replace(/^ws/, "http"), {
      headers: session.signedIn ? session.authorization() : {},
      cache: "no-store",
    });
    const body = await res.json().catch(() => null);
    // Seconds the hub asks a refused client to wait (0 when it does not say).
    const retryAfter = Math.min(Number(res.headers.get("retry-after")) || 0, 300);
    return { status: res.status, code: body?.error || "", detail: body?.detail || "", retryAfter };
  } catch {
    return null;
  }
}

const MAX_BACKOFF_MS = 15000;

/**
 * Refusals that pass with time (`docs/protocol.md`, "Refusals"): the page
 * waits at least the hub's `Retry-After` and tries again, saying why.
 */
const PASSING = {
  draining: "the hub is restarting",
  overloaded: "the hub is busy",
  too_many_connections: "too many connections are open from this account or network; close a tab, or wait",
};

/**
 * A socket to one of the hub's endpoints that stays connected. `state` is
 * what the page shows: "connecting", "open", "waiting" (to reconnect),
 * "stopped" (with `refusal` set when the hub refused the handshake),
 * "signed-out" (it needs a signed-in user and there is none).
 * `query()` gives the URL's query (never a token) each time it connects, so
 * a chat reconnects with `?since=`. `name` and `label` say which of the
 * page's connections it is, in the header.
 */
export class Connection extends EventTarget {
  #socket = null;
  #retry = 0;
  #timer = null;
  #refs = 0;
  #stopped = false;
  // When this connection last renewed its token because the hub seated it
  // as a guest: at most once a minute, so a token the hub keeps refusing
  // leaves the page a guest rather than reconnecting in a loop.
  #guestRenewedAt = 0;
  // The hub refused the token at a handshake: renew it before the next.
  #renew = false;
  // Bumped by every start and stop: an opening that awaited a token refresh
  // meanwhile gives way to the newer one.
  #generation = 0;

  constructor(path, { query = () => "", guest = false, name, label } = {}) {
    super();
    const given = named(path);
    this.path = path;
    this.query = query;
    this.guest = guest;
    this.name = name || given.name;
    this.label = label || given.label;
    this.state = "stopped";
    this.detail = "";
    this.refusal = null;
    this.onToken = () => {
      if (this.#socket?.readyState === WebSocket.OPEN) {
        this.send({ type: "auth.refresh", ref: this.nextRef("auth"), token: session.access });
      }
    };
    connections.add(this);
  }

  /** Names the connection in the header. */
  relabel(label) {
    this.label = label;
    connections.changed();
  }

  nextRef(prefix = "r") {
    this.#refs += 1;
    return `${prefix}${this.#refs}`;
  }

  #set(state, detail = "") {
    this.state = state;
    this.detail = detail;
    this.dispatchEvent(new Event("state"));
  }

  // Stopped for want of a signed-in user, or for another reason.
  #halt(detail) {
    this.#set(!session.signedIn && !this.guest ? "signed-out" : "stopped", detail);
  }

  start() {
    this.#generation += 1;
    this.#stopped = false;
    this.refusal = null;
    session.addEventListener("token", this.onToken);
    this.#drop();
    this.#open();
  }

  stop(detail = "") {
    this.#generation += 1;
    this.#stopped = true;
    this.refusal = null;
    session.removeEventListener("token", this.onToken);
    this.#drop();
    this.#halt(detail);
  }

  // Closes the socket (if any) without the reconnect its close would start.
  #drop() {
    clearTimeout(this.#timer);
    if (this.#socket) {
      this.#socket.onclose = null;
      this.#socket.close(1000);
      this.#socket = null;
    }
  }

  send(frame) {
    if (this.#socket?.readyState !== WebSocket.OPEN) return false;
    this.#socket.send(JSON.stringify(frame));
    return true;
  }

  // What the socket offers: the token when signed in, else a guest's key
  // when this tab has one (of a JWT's characters: anything else would make
  // the WebSocket constructor throw).
  #protocols() {
    if (session.signedIn) return ["bearer", session.access];
    const key = this.guest ? session.guestKey : null;
    return key && /^[\w.-]+$/.test(key) ? ["guest", key] : [];
  }

  async #open() {
    const generation = this.#generation;
    this.#set("connecting");
    if (session.signedIn && (this.#renew || session.expiresIn() < 2)) {
      this.#renew = false;
      try {
        await session.refresh();
      } catch (err) {
        if (!session.signedIn) return this.#closed({ code: 4001, reason: err.message });
        return this.#backoff(`could not refresh the token: ${err.message}`);
      }
    }
    if (this.#stopped || generation !== this.#generation) return;
    if (!session.signedIn && !this.guest) {
      return this.#halt("sign in to connect");
    }
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const query = this.query();
    const url = `${scheme}://${location.host}${this.path}${query ? `?${query}` : ""}`;
    const socket = new WebSocket(url, this.#protocols());
    let opened = false;
    this.#socket = socket;
    socket.onopen = () => {
      opened = true;
      this.#retry = 0;
      this.#set("open");
    };
    socket.onmessage = (ev) => {
      let frame;
      try {
        frame = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (frame.type === "auth.guest") this.#seatedAsGuest();
      if (frame.type === "chat.identity" && typeof frame.guest_key === "string") session.guestKey = frame.guest_key;
      this.dispatchEvent(new CustomEvent("frame", { detail: frame }));
    };
    socket.onclose = (ev) => {
      if (this.#socket === socket) this.#socket = null;
      if (opened) return this.#closed(ev);
      return this.#failed(url, generation);
    };
  }

  // The socket never opened: the hub refused it, or could not be reached.
  async #failed(url, generation) {
    this.#set("connecting", "asking the hub why");
    const refusal = await refusalOf(url);
    if (this.#stopped || generation !== this.#generation) return;
    if (refusal && Object.hasOwn(PASSING, refusal.code)) {
      return this.#backoff(PASSING[refusal.code], Math.max(refusal.retryAfter * 1000, this.#nextWait()));
    }
    if (!refusal || refusal.status >= 500 || refusal.code === "not_websocket") {
      // Unreachable, restarting or unavailable for now: try again.
      return this.#closed({ code: 1006 });
    }
    if (refusal.status === 401 && session.signedIn) {
      // The hub took the token as expired or invalid (a clock that runs
      // behind, a key rotated): renew it and try again, with backoff.
      this.#renew = true;
      return this.#backoff(`the hub refused the token (${refusal.code}); renewing it`);
    }
    // Anything else will be refused again: say why and stop.
    this.refusal = refusal;
    this.dispatchEvent(new CustomEvent("refused", { detail: refusal }));
    return this.#set("stopped", refusal.detail || refusal.code || `the hub answered ${refusal.status}`);
  }

  // The hub took the token this socket opened with as invalid (expired
  // while the tab slept, or by a clock that runs behind) and seated it as
  // a guest: renew the token and come back signed in.
  #seatedAsGuest() {
    if (!session.signedIn || Date.now() - this.#guestRenewedAt < 60000) return;
    this.#guestRenewedAt = Date.now();
    session.refresh().then(() => this.start(), () => {
      // Refused: the session signed out, and the page stays a guest.
    });
  }

  #closed({ code, reason }) {
    if (this.#stopped) return;
    this.dispatchEvent(new CustomEvent("closed", { detail: { code } }));
    switch (code) {
      case 4001:
        // The token expired on the socket: refresh it, then reconnect at once.
        if (!session.signedIn) return this.#halt(`signed out: ${reason || "token refused"}`);
        return this.#backoff("the token expired; renewing it", 0);
      case 4003:
        return this.#set("stopped", "the hub closed this connection: the account was deactivated or lost the staff right");
      case 1000:
        return this.#set("stopped", "closed");
      case 1008:
        return this.#set("stopped", "closed for sending too fast; reload the page to try again");
      case 1009:
        return this.#set("stopped", "closed: a message was too large");
      default:
        // 1006 (dropped, or the hub unreachable), 1011, 1012 (restart),
        // 1013 (too slow): try again with backoff and jitter.
        return this.#backoff(code === 1012 ? "the hub is restarting" : `connection lost (${code})`);
    }
  }

  // The next wait of the exponential backoff, with jitter.
  #nextWait() {
    return Math.min(MAX_BACKOFF_MS, 500 * 2 ** this.#retry) * (0.5 + Math.random());
  }

  #backoff(why, delay) {
    const wait = delay ?? this.#nextWait();
    this.#retry += 1;
    this.retryAt = Date.now() + wait;
    this.#set("waiting", why);
    this.#timer = setTimeout(() => this.#open(), wait);
  }
}
