// The admin API as the console calls it: the token from sessionStorage on
// every request, errors as the host's {"error": {"code", "message"}}, and the
// one status region that announces results and errors.

const TOKEN = "mercato.admin-token";

/** The token the operator signed in with, or null. sessionStorage: it is
 * gone when the tab closes, and no other tab or site reads it. */
export function token() {
  return sessionStorage.getItem(TOKEN);
}

export function keepToken(value) {
  sessionStorage.setItem(TOKEN, value);
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN);
}

/** An answer other than 2xx, with the host's code and message. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }

  /** `404 unknown_order: no order …`, as the status region shows it. */
  describe() {
    const status = this.status ? `${this.status} ` : "";
    return `${status}${this.code}: ${this.message}`;
  }
}

// The 401 codes that mean the credential itself was refused. A deploy's 401
// `unsigned_component` is an answer about the upload, not about the token.
const TOKEN_REFUSED = new Set(["unauthorized", "invalid_api_key", "authentication_required"]);

let tokenRefused = () => {};

/** What to do when the host refuses the token (back to the sign-in form). */
export function onTokenRefused(handler) {
  tokenRefused = handler;
}

/** Calls the host: `json` is sent as a JSON body, `bytes` as a component.
 * Answers the parsed JSON body of a 2xx; throws an `ApiError` otherwise. */
export async function api(method, path, { json, bytes, headers = {} } = {}) {
  const init = { method, headers: new Headers(headers), cache: "no-store" };
  const current = token();
  if (current) init.headers.set("authorization", `Bearer ${current}`);
  if (json !== undefined) {
    init.headers.set("content-type", "application/json");
    init.body = JSON.stringify(json);
  }
  if (bytes !== undefined) {
    init.headers.set("content-type", "application/wasm");
    init.body = bytes;
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, "network_error", `the host did not answer (${e.message})`);
  }
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (response.ok) return body;
  const error = new ApiError(
    response.status,
    body?.error?.code ?? `http_${response.status}`,
    body?.error?.message ?? (text.slice(0, 300) || response.statusText),
  );
  if (response.status === 401 && TOKEN_REFUSED.has(error.code)) tokenRefused(error);
  throw error;
}

/** `/path?a=1&b=2` with the parameters that have a value. */
export function withQuery(path, parameters) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(parameters)) {
    if (value !== null && value !== undefined && value !== "") query.set(name, value);
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

// The message `say` is about to show.
let pending = null;

/** Announces `text` in the status region (`aria-live`): `kind` is `ok`,
 * `error` or `info`. Cleared first, so the same text twice is read twice. */
export function say(text, kind = "info") {
  const region = quiet();
  region.className = `status ${kind}`;
  pending = setTimeout(() => {
    region.textContent = text;
  }, 50);
}

/** Empties the status region: a new page starts without the last one's news. */
export function quiet() {
  clearTimeout(pending);
  const region = document.getElementById("status");
  region.textContent = "";
  region.className = "status";
  return region;
}

/** The message for anything a page's code caught. */
export function describe(error) {
  return error instanceof ApiError ? error.describe() : `console error: ${error.message ?? error}`;
}
