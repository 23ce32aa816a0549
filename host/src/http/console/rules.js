// #/rules: each coupon rule (the `rule` kind of GET /admin/plugins) with the
// cost of its evaluations and why it rejected carts, plus rollback and removal.
import { api } from "./api.js";
import { h, none, num, table } from "./dom.js";
import { manage, rollbackButton } from "./plugins.js";

export async function page(main, { signal }) {
  const list = h("div", {});
  const refresh = async () => {
    const { plugins } = await api("GET", "/admin/plugins");
    if (signal.aborted) return;
    const rules = plugins.filter((p) => p.kind === "rule");
    list.replaceChildren(...(rules.length
      ? rules.map((r) => rule(r, refresh))
      : [none("No coupon rule is deployed. Deploy one on the Plugins page.")]));
  };
  await refresh();
  if (signal.aborted) return;
  main.replaceChildren(
    h("h1", { tabindex: -1 }, "Coupon rules"),
    h("p", { class: "lead" }, "Third-party discount logic, sandboxed and metered. Figures are totals of the serving version since the host started."),
    list);
}

function rule(r, refresh) {
  const e = r.evaluations ?? {};
  const heading = `rule-${r.name}`;
  const rejections = Object.entries(e.rejections ?? {}).sort(([, a], [, b]) => b - a);
  return h("section", { class: "panel rule", "aria-labelledby": heading, "data-rule": r.name },
    h("h2", { id: heading }, r.name, " ", h("span", { class: "version" }, r.version)),
    r.description ? h("p", {}, r.description) : null,
    table(`Evaluations of ${r.name}`,
      ["Calls", "Fuel mean", "Fuel max", "µs mean", "µs max", "Fuel budget"],
      [[num(e.calls), num(e.fuel?.mean), num(e.fuel?.max), num(e.micros?.mean), num(e.micros?.max),
        num(r.limits?.fuel ?? "unlimited")]],
      { rowHeader: false }),
    rejections.length
      ? table(`Rejections of ${r.name}, by reason`, ["Reason", "Count"],
        rejections.map(([reason, n]) => [h("code", {}, reason), num(n)]))
      : none("No rejections."),
    h("div", { class: "toolbar" }, rollbackButton(r.name, refresh)),
    versionsAndRemoval(r.name, refresh));
}

/** A disclosure that fetches the rule's versions when first opened. */
function versionsAndRemoval(name, refresh) {
  const details = h("details", {}, h("summary", {}, `Versions and removal of ${name}`));
  details.addEventListener("toggle", () => {
    if (details.open && details.childElementCount === 1) details.append(manage(name, refresh));
  });
  return details;
}
