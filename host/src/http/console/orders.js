// #/orders: a search over the order read model (GET /search/orders, the
// admin token acting as a merchant key); #/orders/<id>: one order
// (GET /orders/{id}) and its timeline (GET /admin/orders/{id}/timeline).
import { api, describe, say, withQuery } from "./api.js";
import { h, money, none, num, table, time } from "./dom.js";

const STATUSES = ["PENDING", "AWAITING_PAYMENT", "PAID", "PARTIALLY_REFUNDED", "REFUNDED", "REJECTED", "CANCELLED"];
const FILTERS = ["status", "buyer_id", "created_gte", "created_lt", "limit"];
const CURSORS = ["starting_after", "ending_before"];

export async function list(main, { signal, query }) {
  const asked = Object.fromEntries([...FILTERS, ...CURSORS].map((f) => [f, query.get(f) ?? ""]));
  let results;
  try {
    const page = await api("GET", withQuery("/search/orders", asked));
    results = page.data.length ? resultTable(page.data) : none("No order matches.");
    results = [results, pager(asked, page)];
    say(`${page.data.length} order(s)${page.has_more ? ", more on the next page" : ""}.`, "info");
  } catch (error) {
    results = h("p", { class: "error" }, describe(error));
    say(`Order search failed: ${describe(error)}`, "error");
  }
  if (signal.aborted) return;
  main.replaceChildren(
    h("h1", { tabindex: -1 }, "Orders"),
    h("p", { class: "lead" }, "Every order as the search read model has it, newest first. Open one for its details and timeline."),
    searchForm(asked),
    h("section", { "aria-labelledby": "results-heading" }, h("h2", { id: "results-heading" }, "Results"), results));
}

function searchForm(asked) {
  const status = h("select", { id: "order-status", name: "status" },
    h("option", { value: "" }, "any"),
    STATUSES.map((s) => h("option", { value: s, selected: asked.status === s }, s)));
  const buyer = h("input", { id: "order-buyer", name: "buyer_id", value: asked.buyer_id, autocomplete: "off" });
  const from = h("input", { id: "order-from", name: "created_gte", type: "datetime-local", step: 1, value: local(asked.created_gte) });
  const until = h("input", { id: "order-until", name: "created_lt", type: "datetime-local", step: 1, value: local(asked.created_lt) });
  const limit = h("input", { id: "order-limit", name: "limit", type: "number", min: 1, max: 100, value: asked.limit || 20 });
  const field = (input, label) => h("div", {}, h("label", { for: input.id }, label), input);
  return h("form", {
    id: "order-search", class: "panel", role: "search",
    onsubmit: (event) => {
      event.preventDefault();
      // The filters live in the hash, so a search can be bookmarked and Back works.
      location.hash = withQuery("#/orders", {
        status: status.value, buyer_id: buyer.value.trim(),
        created_gte: utc(from.value), created_lt: utc(until.value), limit: limit.value,
      });
    },
  },
  h("h2", {}, "Search"),
  h("div", { class: "fields" },
    field(status, "Status"), field(buyer, "Buyer id"),
    field(from, "Created from (your local time)"), field(until, "Created before (your local time)"),
    field(limit, "Per page")),
  h("button", { type: "submit" }, "Search"));
}

/** A `datetime-local` value (local time, no zone) as RFC 3339 UTC. */
function utc(value) {
  return value ? new Date(value).toISOString() : "";
}

/** RFC 3339 as a `datetime-local` value in local time. */
function local(stamp) {
  const date = stamp ? new Date(stamp) : null;
  if (!date || Number.isNaN(date.getTime())) return "";
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

function resultTable(orders) {
  return table("Orders, newest first",
    ["Order", "Buyer", "Status", "Fulfillment", "Total", "Units", "Created"],
    orders.map((o) => [
      h("a", { href: `#/orders/${encodeURIComponent(o.order_id)}`, "data-order": o.order_id }, h("code", {}, o.order_id)),
      o.buyer_id, o.status, o.fulfillment_status, h("td", { class: "num" }, money(o.total_minor, o.currency)),
      num(o.item_count), time(o.created_at),
    ]));
}

/** Links to the newer and older pages (the list convention's cursors). */
function pager(asked, page) {
  const filters = Object.fromEntries(FILTERS.map((f) => [f, asked[f]]));
  const first = page.data[0]?.id;
  const last = page.data.at(-1)?.id;
  // `has_more` speaks of the direction asked: older pages unless `ending_before`.
  const backwards = Boolean(asked.ending_before);
  const newer = first && (backwards ? page.has_more : Boolean(asked.starting_after));
  const older = last && (backwards ? true : page.has_more);
  if (!newer && !older) return null;
  return h("nav", { class: "pager", "aria-label": "Result pages" },
    newer ? h("a", { href: withQuery("#/orders", { ...filters, ending_before: first }) }, "← Newer") : null,
    older ? h("a", { href: withQuery("#/orders", { ...filters, starting_after: last }) }, "Older →") : null);
}

// GET /admin/console/config.json, once per page load.
let settings = null;

async function traceUrl() {
  settings ??= api("GET", "/admin/console/config.json").catch(() => ({ trace_url: null }));
  return (await settings).trace_url;
}

export async function one(main, { signal, params: [id] }) {
  const path = encodeURIComponent(id);
  const [order, timeline, template] = await Promise.allSettled([
    api("GET", `/orders/${path}`), api("GET", `/admin/orders/${path}/timeline`), traceUrl(),
  ]);
  if (signal.aborted) return;
  const trace = template.status === "fulfilled" ? template.value : null;
  main.replaceChildren(
    h("h1", { tabindex: -1 }, "Order ", h("code", {}, id)),
    h("p", {}, h("a", { href: "#/orders" }, "← All orders")),
    ...(order.status === "fulfilled" ? details(order.value)
      : [h("p", { class: "error" }, `The order: ${describe(order.reason)}`)]),
    h("section", { "aria-labelledby": "timeline-heading" },
      h("h2", { id: "timeline-heading" }, "Timeline"),
      timeline.status === "fulfilled" ? entries(timeline.value.entries, trace)
        : h("p", { class: "error" }, `No timeline: ${describe(timeline.reason)}`)));
  const failed = [order, timeline].filter((r) => r.status === "rejected");
  if (failed.length) say(failed.map((r) => describe(r.reason)).join("; "), "error");
}

function details(o) {
  const m = (minor) => money(minor, o.currency);
  const pair = (term, value) => [h("dt", {}, term), h("dd", {}, value ?? "—")];
  return [
    h("section", { "aria-labelledby": "summary-heading" },
      h("h2", { id: "summary-heading" }, "Summary"),
      h("dl", { class: "summary" },
        pair("Status", h("strong", {}, o.status)), pair("Fulfillment", o.fulfillment_status),
        pair("Buyer", o.buyer_id), pair("Subtotal", m(o.subtotal_minor)),
        pair("Discount", m(o.discount_minor)), pair("Total", h("strong", {}, m(o.total_minor))),
        pair("Captured", m(o.captured_minor)), pair("Refunded", m(o.refunded_minor)),
        pair("Coupon", o.coupon_code ? `${o.coupon_code} (${o.coupon_status})` : "none"),
        pair("Stock", o.stock_status), pair("Payment intent", o.payment_intent_id),
        pair("Checkout session", o.checkout_session_id))),
    h("section", { "aria-labelledby": "items-heading" },
      h("h2", { id: "items-heading" }, "Items"),
      table("Order lines", ["SKU", "Name", "Quantity", "Unit price", "Line total"],
        o.items.map((i) => [i.sku, i.product?.name ?? "—", num(i.quantity),
          h("td", { class: "num" }, m(i.unit_price_minor)), h("td", { class: "num" }, m(i.line_total_minor))]))),
    h("section", { "aria-labelledby": "history-heading" },
      h("h2", { id: "history-heading" }, "Status history"),
      table("Every status change, oldest first", ["At", "From", "To", "Reason"],
        o.status_history.map((s) => [time(s.at), s.from ?? "—", s.to, s.reason]))),
  ];
}

/** The timeline as an ordered list: when, who emitted which event, and who
 * handled it with which version. */
function entries(list, template) {
  if (!list.length) return none("No event about this order yet.");
  return h("ol", { class: "timeline" }, list.map((e) => h("li", { "data-event-type": e.event_type },
    h("p", { class: "when" }, time(e.at)),
    h("p", { class: "what" }, h("span", { class: "emitter" }, e.plugin), " → ", h("code", {}, e.event_type)),
    h("p", { class: "meta" },
      "event ", h("code", {}, e.event_id), ` · sequence ${e.sequence}`,
      e.trace_id ? [" · trace ", trace(e.trace_id, template)] : null),
    e.handled_by.length
      ? h("ul", { class: "handled", "aria-label": `Handlers of ${e.event_type}` },
        e.handled_by.map((x) => h("li", {},
          "handled by ", h("strong", {}, x.plugin), " ", h("span", { class: "version" }, x.version),
          " at ", time(x.at), " — ", h("span", { class: `outcome ${x.outcome}` }, x.outcome))))
      : h("p", { class: "help" }, "Not handled by any plugin yet."))));
}

/** A link into the trace UI, or the id as text without a template. */
function trace(id, template) {
  const text = h("code", {}, id);
  if (!template || !/^[0-9a-f]{32}$/.test(id)) return text;
  return h("a", { href: template.replaceAll("{trace_id}", id), rel: "noreferrer", target: "_blank" },
    text, h("span", { class: "visually-hidden" }, " (opens the trace viewer in a new tab)"));
}
