// The console's shell: sign-in, hash routes, and the page each route shows.
import { api, describe, forgetToken, keepToken, onTokenRefused, quiet, say, token } from "./api.js";
import { h } from "./dom.js";
import * as events from "./events.js";
import * as orders from "./orders.js";
import * as plugins from "./plugins.js";
import * as rules from "./rules.js";

// Each route: the hash it matches (`#/orders/<id>` captures the id), the page's
// title, and the nav entry it belongs to.
const ROUTES = [
  { pattern: /^\/plugins$/, title: "Plugins", nav: "#/plugins", render: plugins.page },
  { pattern: /^\/events$/, title: "Events", nav: "#/events", render: events.page },
  { pattern: /^\/orders$/, title: "Orders", nav: "#/orders", render: orders.list },
  { pattern: /^\/orders\/([^/]+)$/, title: "Order", nav: "#/orders", render: orders.one },
  { pattern: /^\/rules$/, title: "Coupon rules", nav: "#/rules", render: rules.page },
];

const main = () => document.getElementById("main");

// The page on screen; aborted when another replaces it, which stops its
// timers and keeps a late answer from drawing over the new page.
let shown = null;

function leave() {
  shown?.abort();
  shown = null;
}

async function route() {
  leave();
  if (!token()) {
    signIn();
    return;
  }
  chrome(true);
  const [path, query = ""] = (location.hash.slice(1) || "/plugins").split("?");
  const found = ROUTES.map((r) => ({ ...r, match: r.pattern.exec(path) })).find((r) => r.match);
  if (!found) {
    show("Not found", h("p", {}, `The console has no page ${location.hash}. `,
      h("a", { href: "#/plugins" }, "Go to the plugins")));
    return;
  }
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.getAttribute("href") === found.nav) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const controller = new AbortController();
  shown = controller;
  document.title = `${found.title} · Mercato console`;
  main().replaceChildren(h("p", { class: "loading" }, "Loading…"));
  const context = {
    signal: controller.signal,
    params: found.match.slice(1).map(decodeURIComponent),
    query: new URLSearchParams(query),
  };
  try {
    await found.render(main(), context);
  } catch (error) {
    if (controller.signal.aborted) return;
    show(found.title, h("p", { class: "error" }, describe(error)));
    say(describe(error), "error");
    return;
  }
  if (!controller.signal.aborted) main().querySelector("h1")?.focus();
}

/** A page that is only a heading and a message. */
function show(title, ...content) {
  document.title = `${title} · Mercato console`;
  main().replaceChildren(h("h1", { tabindex: -1 }, title), ...content);
  main().querySelector("h1").focus();
}

/** Shows or hides what only a signed-in operator uses. */
function chrome(signedIn) {
  document.getElementById("nav").hidden = !signedIn;
  document.getElementById("sign-out").hidden = !signedIn;
}

/** The sign-in form; `refused` is the host's 401 that brought us here. */
function signIn(refused) {
  leave();
  chrome(false);
  const input = h("input", {
    id: "token", name: "token", type: "password", required: true,
    autocomplete: "off", spellcheck: "false", "aria-describedby": "token-help",
  });
  const problem = h("p", { id: "sign-in-error", class: "error", hidden: !refused });
  if (refused) {
    problem.textContent = `The host refused the admin token (${refused.describe()}). Paste the token again.`;
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-describedby", "sign-in-error token-help");
  }
  const form = h("form", { id: "sign-in", class: "panel narrow", onsubmit: submit },
    problem,
    h("label", { for: "token" }, "Admin token"),
    input,
    h("p", { id: "token-help", class: "help" },
      "The host's admin token: ", h("code", {}, "admin_token"), " in its configuration, or the file ",
      h("code", {}, "data_dir/admin-token"),
      ". It stays in this tab only, and is sent with every call to the admin API."),
    h("button", { type: "submit" }, "Sign in"));
  document.title = "Sign in · Mercato console";
  main().replaceChildren(h("h1", { tabindex: -1 }, "Sign in"), form);
  input.focus();

  async function submit(event) {
    event.preventDefault();
    const value = input.value.trim();
    if (!value) return;
    keepToken(value);
    try {
      // Any admin route proves the token; a refusal comes back through
      // onTokenRefused, which draws this form again with the reason.
      await api("GET", "/admin/plugins");
    } catch (error) {
      if (!token()) return;
      forgetToken();
      problem.hidden = false;
      problem.textContent = describe(error);
      say(describe(error), "error");
      return;
    }
    say("Signed in.", "ok");
    if (!location.hash.startsWith("#/")) location.hash = "#/plugins";
    else route();
  }
}

onTokenRefused((error) => {
  forgetToken();
  signIn(error);
  say(`The host refused the admin token (${error.describe()}).`, "error");
});

document.getElementById("sign-out").addEventListener("click", () => {
  forgetToken();
  signIn();
  say("Signed out.", "info");
});

window.addEventListener("hashchange", () => {
  quiet();
  route();
});
route();
