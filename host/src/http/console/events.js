// #/events: outboxes, subscriber streams (position, lag and the throughput
// between two polls), the cluster's hosts, and dead letters with redrive.
// Polls GET /admin/events and GET /admin/cluster every 5 s unless paused.
import { api, describe, say } from "./api.js";
import { h, hidden, none, num, table, time } from "./dom.js";

const EVERY_MS = 5000;

export async function page(main, { signal }) {
  const body = h("div", {});
  const clock = h("p", { class: "help", id: "refreshed" });
  let paused = false;
  // Each stream's position at the previous poll, for its throughput.
  let before = new Map();

  const pause = h("button", {
    type: "button", class: "quiet", "aria-pressed": "false",
    onclick: () => {
      paused = !paused;
      pause.setAttribute("aria-pressed", String(paused));
      pause.textContent = paused ? "Resume auto-refresh" : "Pause auto-refresh";
      say(paused ? "Auto-refresh paused." : "Auto-refresh resumed.", "info");
      if (!paused) refresh().catch(failed);
    },
  }, "Pause auto-refresh");

  const refresh = async () => {
    const [events, cluster] = await Promise.all([api("GET", "/admin/events"), api("GET", "/admin/cluster")]);
    if (signal.aborted) return;
    const now = performance.now();
    const streams = merge(events.subscribers, cluster.streams);
    const rates = new Map();
    for (const s of streams) {
      const last = before.get(key(s));
      rates.set(key(s), last && now > last.at ? ((s.position - last.position) * 1000) / (now - last.at) : null);
    }
    before = new Map(streams.map((s) => [key(s), { position: s.position, at: now }]));
    const sections = [
      outboxes(events.outboxes),
      streamTable(streams, rates, cluster),
      cluster.cluster ? hosts(cluster) : null,
      deadLetters(events.dead_letters, () => refresh().catch(failed)),
    ];
    keepingFocus(body, () => body.replaceChildren(...sections.filter(Boolean)));
    clock.textContent = `Refreshed ${new Date().toLocaleTimeString()}${paused ? " (auto-refresh paused)" : `; again every ${EVERY_MS / 1000} s`}.`;
  };
  const failed = (error) => {
    if (!signal.aborted) say(`Refreshing events failed: ${describe(error)}`, "error");
  };

  await refresh();
  if (signal.aborted) return;
  main.replaceChildren(
    h("h1", { tabindex: -1 }, "Events"),
    h("div", { class: "toolbar" }, pause, clock),
    body);
  const timer = setInterval(() => {
    if (!paused && !document.hidden) refresh().catch(failed);
  }, EVERY_MS);
  signal.addEventListener("abort", () => clearInterval(timer));
}

const key = (s) => `${s.subscriber}\u0000${s.source}`;

/** This host's streams with the owner the cluster view names, plus streams
 * only the cluster view has (those another host runs). */
function merge(local, stored) {
  const owners = new Map(stored.map((s) => [key(s), s]));
  const streams = local.map((s) => ({ ...s, owner: owners.get(key(s))?.owner ?? null }));
  const seen = new Set(streams.map(key));
  for (const s of stored) if (!seen.has(key(s))) streams.push(s);
  return streams.sort((a, b) => a.subscriber.localeCompare(b.subscriber) || a.source.localeCompare(b.source));
}

/** Redraws `container` and gives focus back to the control that had it
 * (matched by `data-key`), so a poll never throws the operator's place away. */
function keepingFocus(container, draw) {
  const focused = container.contains(document.activeElement) ? document.activeElement.dataset.key : null;
  draw();
  if (focused) container.querySelector(`[data-key="${CSS.escape(focused)}"]`)?.focus();
}

function outboxes(list) {
  return h("section", { "aria-labelledby": "outboxes-heading" },
    h("h2", { id: "outboxes-heading" }, "Outboxes"),
    list.length ? table("Each plugin's outbox: its newest sequence and the events not yet published",
      ["Plugin", "Head", "Unpublished"],
      list.map((o) => [o.plugin, num(o.head), num(o.unpublished)])) : none("No plugin has an outbox."));
}

function streamTable(streams, rates, cluster) {
  const owner = cluster.cluster !== null;
  const columns = ["Subscriber", "Source", "Position", "Lag", "Oldest unconsumed (s)", "Throughput (events/s)"];
  if (owner) columns.push("Owner");
  const rate = (r) => (r === null ? "…" : r.toFixed(1));
  return h("section", { "aria-labelledby": "streams-heading" },
    h("h2", { id: "streams-heading" }, "Subscriber streams"),
    streams.length ? table("One ordered stream per subscriber and source; throughput between the last two polls (… until the second)",
      columns,
      streams.map((s) => {
        const age = s.oldest_unconsumed_age_seconds;
        const cells = [s.subscriber, s.source, num(s.position), num(s.lag),
          num(age === null || age === undefined ? "—" : age.toFixed(1)), num(rate(rates.get(key(s))))];
        if (owner) cells.push(s.owner ?? "none");
        return cells;
      })) : none("No plugin subscribes to another's events."));
}

function hosts(cluster) {
  return h("section", { "aria-labelledby": "hosts-heading" },
    h("h2", { id: "hosts-heading" }, `Cluster ${cluster.cluster}`),
    h("p", { class: "help" }, `This console talks to host ${cluster.host}.`),
    table("Live hosts", ["Host", "Address", "Seen (ms ago)", "Leases"],
      cluster.hosts.map((x) => [x.id, x.address, num(x.seen_ms_ago), num(x.leases)])));
}

function deadLetters(letters, refresh) {
  const section = h("section", { "aria-labelledby": "dead-heading" },
    h("h2", { id: "dead-heading" }, "Dead letters"));
  if (!letters.length) {
    section.append(none("No dead letters: every event was handled."));
    return section;
  }
  const bySubscriber = new Map();
  for (const l of letters) bySubscriber.set(l.subscriber, [...(bySubscriber.get(l.subscriber) ?? []), l]);
  for (const [subscriber, list] of bySubscriber) {
    const all = h("button", {
      type: "button", "data-key": `redrive-all:${subscriber}`,
      onclick: () => redrive(subscriber, null, all, refresh),
    }, `Redrive all ${list.length} for ${subscriber}`);
    section.append(
      h("h3", {}, `${subscriber} `, h("span", { class: "count" }, `(${list.length})`)),
      h("div", { class: "toolbar" }, all),
      table(`Events ${subscriber} failed to handle, oldest first`,
        ["Event", "Source", "Sequence", "Type", "Error", "Attempts", "Failed at", "Action"],
        list.map((l) => {
          const button = h("button", {
            type: "button", "data-key": `redrive:${subscriber}:${l.event_id}`, "data-event": l.event_id,
            onclick: () => redrive(subscriber, [l.event_id], button, refresh),
          }, "Redrive", hidden(` event ${l.event_id}`));
          return [h("code", {}, l.event_id), l.source, num(l.sequence), l.event_type,
            h("td", { class: "error-text" }, l.error), num(l.attempts), time(l.failed_at), button];
        }),
        { className: "dead-letters" }));
  }
  return section;
}

/** `POST /admin/events/dead-letters/redrive` for `subscriber`: the events
 * named, or every one when `ids` is null. */
async function redrive(subscriber, ids, button, refresh) {
  button.disabled = true;
  try {
    const body = ids ? { plugin: subscriber, event_ids: ids } : { plugin: subscriber };
    const report = await api("POST", "/admin/events/dead-letters/redrive", { json: body });
    const failed = report.failed.map(([id, error]) => `${id}: ${error}`).join("; ");
    say(`Redrove ${report.redriven.length} event(s) to ${subscriber}` +
      (failed ? `; ${report.failed.length} failed again (${failed})` : "") + ".",
    failed ? "error" : "ok");
  } catch (error) {
    say(`Redrive to ${subscriber} refused: ${describe(error)}`, "error");
  } finally {
    button.disabled = false;
  }
  refresh();
}
