// #/plugins: what serves (GET /admin/plugins), each plugin's versions,
// rollback and removal, and the deploy form (PUT /admin/plugins/{name}).
import { api, ApiError, describe, say } from "./api.js";
import { h, hidden, none, short, table, time } from "./dom.js";

export async function page(main, { signal }) {
  const loaded = h("section", { "aria-labelledby": "loaded-heading" });
  const refresh = async () => {
    const { plugins } = await api("GET", "/admin/plugins");
    if (signal.aborted) return;
    loaded.replaceChildren(
      h("h2", { id: "loaded-heading" }, "Serving now"),
      plugins.length ? pluginTable(plugins, refresh) : none("No plugin is loaded."));
    names.replaceChildren(...plugins.map((p) => h("option", { value: p.name })));
  };
  const names = h("datalist", { id: "plugin-names" });
  await refresh();
  if (signal.aborted) return;
  main.replaceChildren(
    h("h1", { tabindex: -1 }, "Plugins"),
    h("p", { class: "lead" }, "The shop's domain plugins and coupon rules, the version each serves, and the deploys that change it."),
    loaded,
    deployForm(names, refresh));
}

function pluginTable(plugins, refresh) {
  const rows = plugins.flatMap((p) => {
    const panel = h("tr", { id: `manage-${p.name}`, class: "detail", hidden: true },
      h("td", { colspan: 7 }));
    const toggle = h("button", {
      type: "button", class: "quiet", "aria-expanded": "false", "aria-controls": panel.id,
      "data-key": `manage:${p.name}`,
      onclick: () => {
        const open = panel.hidden;
        panel.hidden = !open;
        toggle.setAttribute("aria-expanded", String(open));
        if (open) panel.firstChild.replaceChildren(manage(p.name, refresh));
      },
    }, "Versions and removal", hidden(` of ${p.name}`));
    const subscriptions = p.subscriptions?.length
      ? h("ul", { class: "tags" }, p.subscriptions.map((s) => h("li", {}, h("code", {}, s))))
      : "—";
    return [
      h("tr", { "data-plugin": p.name },
        h("th", { scope: "row" }, p.name),
        h("td", {}, p.kind),
        h("td", {}, p.version),
        h("td", {}, short(p.sha256)),
        h("td", {}, p.storage ?? "—"),
        h("td", {}, subscriptions),
        h("td", { class: "actions" }, rollbackButton(p.name, refresh), toggle)),
      panel,
    ];
  });
  return table("Loaded plugins and rules, by name",
    ["Name", "Kind", "Version", "SHA-256", "Storage", "Subscriptions", "Actions"], rows);
}

/** `POST /admin/plugins/{name}/rollback`, then `refresh`. */
export function rollbackButton(name, refresh) {
  return h("button", {
    type: "button", "data-key": `rollback:${name}`,
    onclick: async (event) => {
      const button = event.currentTarget;
      button.disabled = true;
      try {
        const answer = await api("POST", `/admin/plugins/${encodeURIComponent(name)}/rollback`);
        say(`Rolled back ${name}: ${answer.current.version} serves again (was ${answer.previous?.version ?? "—"}).`, "ok");
        await refresh();
      } catch (error) {
        say(`Rollback of ${name} refused: ${describe(error)}`, "error");
      } finally {
        button.disabled = false;
      }
    },
  }, "Roll back", hidden(` ${name}`));
}

/** A plugin's versions (`GET /admin/plugins/{name}/versions`) and its
 * removal, with a confirm step and the `force` choice. */
export function manage(name, refresh) {
  const path = `/admin/plugins/${encodeURIComponent(name)}`;
  const versions = h("div", {}, h("p", { class: "loading" }, "Loading versions…"));
  api("GET", `${path}/versions`).then(
    (answer) => versions.replaceChildren(table(`Versions of ${name}, newest (serving) first`,
      ["Version", "SHA-256", "Deployed at"],
      answer.versions.map((v) => [v.version, short(v.sha256), time(v.deployed_at)]))),
    (error) => versions.replaceChildren(h("p", { class: "error" }, describe(error))));

  const force = h("input", { type: "checkbox", id: `force-${name}` });
  const confirm = h("div", { class: "confirm", hidden: true });
  const ask = h("button", {
    type: "button", class: "danger",
    onclick: () => {
      ask.hidden = true;
      confirm.hidden = false;
      yes.focus();
    },
  }, `Remove ${name}…`);
  const no = h("button", {
    type: "button", class: "quiet",
    onclick: () => {
      confirm.hidden = true;
      ask.hidden = false;
      ask.focus();
    },
  }, "Cancel");
  const yes = h("button", {
    type: "button", class: "danger",
    onclick: async () => {
      yes.disabled = true;
      const query = force.checked ? "?force=true" : "";
      try {
        const removed = await api("DELETE", `${path}${query}`);
        const cut = removed.unsubscribed.length ? `; no longer delivers to ${removed.unsubscribed.join(", ")}` : "";
        say(`Removed ${name} ${removed.version}; its data is kept${removed.archived_as ? ` (${removed.archived_as})` : ""}${cut}.`, "ok");
        await refresh();
      } catch (error) {
        yes.disabled = false;
        const hint = error instanceof ApiError && error.code === "has_subscribers"
          ? " Tick “force” to remove it anyway." : "";
        say(`Removal of ${name} refused: ${describe(error)}.${hint}`, "error");
      }
    },
  }, `Yes, remove ${name}`);
  confirm.append(
    h("p", {}, `Remove ${name} from service now? Its routes answer 404 and it handles no events until a deploy brings it back.`),
    yes, no);
  return h("div", { class: "manage" },
    versions,
    h("fieldset", {},
      h("legend", {}, `Remove ${name}`),
      h("p", { class: "help" }, "Takes it out of service; its data is kept, and deploying it again resumes where it stopped."),
      h("div", { class: "check" }, force,
        h("label", { for: force.id }, "Force: remove it even though other plugins subscribe to it")),
      ask, confirm));
}

function deployForm(names, refresh) {
  const file = h("input", { id: "deploy-file", name: "file", type: "file", accept: ".wasm,application/wasm", required: true });
  const name = h("input", {
    id: "deploy-name", name: "name", required: true, list: "plugin-names",
    autocomplete: "off", spellcheck: "false", "aria-describedby": "deploy-name-help",
  });
  const signature = h("input", {
    id: "deploy-signature", name: "signature", autocomplete: "off", spellcheck: "false",
    "aria-describedby": "deploy-signature-help",
  });
  const result = h("output", { id: "deploy-result", for: "deploy-file deploy-name deploy-signature" });
  const button = h("button", { type: "submit" }, "Deploy");
  file.addEventListener("change", () => {
    // A file named after a loaded plugin most likely is its next version.
    const stem = file.files[0]?.name.replace(/\.wasm$/, "");
    const known = [...names.options].some((o) => o.value === stem);
    if (!name.value && known) name.value = stem;
  });
  const form = h("form", { id: "deploy", class: "panel", onsubmit: submit },
    h("h2", {}, "Deploy a version"),
    h("p", { class: "help" }, "The host checks the component (its world, imports, migrations and signature) before it switches; if it refuses, the running version keeps serving."),
    h("div", { class: "fields" },
      h("div", {}, h("label", { for: file.id }, "Component (.wasm)"), file),
      h("div", {}, h("label", { for: name.id }, "Plugin or rule name"), name,
        h("p", { id: "deploy-name-help", class: "help" }, "Must be the name in the component's manifest.")),
      h("div", {}, h("label", { for: signature.id }, "Signature (optional)"), signature,
        h("p", { id: "deploy-signature-help", class: "help" },
          "Hex ed25519 signature of the file's bytes by a trusted key (what ",
          h("code", {}, "mercato deploy --key"), " sends); needed when the host has trusted keys."))),
    button, names, result);
  return form;

  async function submit(event) {
    event.preventDefault();
    const chosen = file.files[0];
    if (!chosen || !name.value.trim()) return;
    const target = name.value.trim();
    button.disabled = true;
    result.replaceChildren(h("p", { class: "loading" }, `Deploying ${chosen.name} as ${target}…`));
    const headers = signature.value.trim() ? { "x-mercato-signature": signature.value.trim() } : {};
    try {
      const answer = await api("PUT", `/admin/plugins/${encodeURIComponent(target)}`,
        { bytes: await chosen.arrayBuffer(), headers });
      result.replaceChildren(deployed(answer));
      say(answer.unchanged
        ? `${target}: these bytes serve already (${answer.current.version}); nothing changed.`
        : `Deployed ${target} ${answer.current.version} (previous: ${answer.previous?.version ?? "none"}).`, "ok");
      await refresh();
    } catch (error) {
      result.replaceChildren(refused(error));
      say(`Deploy of ${target} refused: ${describe(error)}`, "error");
    } finally {
      button.disabled = false;
    }
  }
}

function deployed(answer) {
  return h("dl", { class: "answer ok" },
    h("dt", {}, "Name"), h("dd", {}, answer.name),
    h("dt", {}, "Serving"), h("dd", {}, answer.current.version, " ", short(answer.current.sha256)),
    h("dt", {}, "Previous"), h("dd", {}, answer.previous ? answer.previous.version : "none"),
    h("dt", {}, "Unchanged"), h("dd", {}, answer.unchanged ? "yes: these bytes serve already" : "no"));
}

// What a refused signature means, by the host's code.
const SIGNATURE = {
  unsigned_component: "missing: the host has trusted keys and every deploy must be signed",
  bad_signature: "not valid: no trusted key signed these bytes",
};

function refused(error) {
  const code = error instanceof ApiError ? error.code : "console_error";
  return h("dl", { class: "answer error" },
    h("dt", {}, "Refused"), h("dd", {}, h("code", {}, code), error.status ? ` (${error.status})` : ""),
    SIGNATURE[code] && [h("dt", {}, "Signature"), h("dd", {}, SIGNATURE[code])],
    h("dt", {}, "Message"), h("dd", {}, error.message));
}
