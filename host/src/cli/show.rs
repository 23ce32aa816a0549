//! What the admin commands print for a person: short tables and one-line
//! summaries of the admin API's answers (`--json` prints the answer itself).
//! Pure, so every shape is unit-tested.
use serde_json::Value;

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn short(sha: &Value) -> String {
    text(sha).chars().take(12).collect()
}

/// Left-aligned columns, two spaces apart, with a header row.
fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    let mut out = vec![line(header.iter().map(|h| h.to_string()).collect())];
    out.extend(rows.into_iter().map(line));
    out.join("\n")
}

/// `GET /admin/plugins`: a row per plugin or rule.
pub fn plugins(body: &Value) -> String {
    let rows = body["plugins"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let detail = match p["kind"].as_str() {
                Some("rule") => format!("calls {}", text(&p["evaluations"]["calls"])),
                _ => {
                    let subs: Vec<String> = p["subscriptions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(text)
                        .collect();
                    if subs.is_empty() {
                        "-".into()
                    } else {
                        subs.join(", ")
                    }
                }
            };
            vec![
                text(&p["name"]),
                text(&p["kind"]),
                text(&p["version"]),
                short(&p["sha256"]),
                text(&p["storage"]),
                detail,
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "KIND",
            "VERSION",
            "SHA256",
            "STORAGE",
            "SUBSCRIBES TO / CALLS",
        ],
        rows,
    )
}

/// `GET /admin/plugins/{name}/versions`: newest first, the first serving.
pub fn versions(body: &Value) -> String {
    let rows = body["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, v)| {
            vec![
                text(&v["version"]),
                short(&v["sha256"]),
                match text(&v["deployed_at"]) {
                    at if at.is_empty() => "-".into(),
                    at => at,
                },
                if i == 0 {
                    "serving".into()
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    format!(
        "{}\n{}",
        text(&body["name"]),
        table(&["VERSION", "SHA256", "DEPLOYED AT", ""], rows)
    )
}

/// A deploy's or rollback's answer.
pub fn switched(body: &Value, verb: &str) -> String {
    let (name, current) = (text(&body["name"]), &body["current"]);
    if body["unchanged"] == true {
        return format!(
            "{name} {} ({}) serves already: nothing changed",
            text(&current["version"]),
            short(&current["sha256"])
        );
    }
    let mut line = format!(
        "{verb} {name} {} ({})",
        text(&current["version"]),
        short(&current["sha256"])
    );
    if body["previous"].is_object() {
        line += &format!(", replacing {}", text(&body["previous"]["version"]));
    }
    line
}

/// A removal's answer.
pub fn removed(body: &Value) -> String {
    let mut line = format!(
        "removed {} {} {}",
        text(&body["kind"]),
        text(&body["name"]),
        text(&body["version"])
    );
    if let Some(store) = body["archived_as"].as_str() {
        line += &format!("; its data is kept in `{store}`");
    }
    let unsubscribed: Vec<String> = body["unsubscribed"]
        .as_array()
        .into_iter()
        .flatten()
        .map(text)
        .collect();
    if !unsubscribed.is_empty() {
        line += &format!("; no longer delivering to {}", unsubscribed.join(", "));
    }
    line
}

/// A finished rebuild.
pub fn rebuilt(body: &Value) -> String {
    let sources: Vec<String> = body["sources"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| format!("{} {}", text(&s["source"]), text(&s["replayed"])))
        .collect();
    format!(
        "rebuilt {} into copy {}: {} (events replayed: {})",
        text(&body["plugin"]),
        text(&body["generation"]),
        text(&body["state"]),
        if sources.is_empty() {
            "none".into()
        } else {
            sources.join(", ")
        }
    )
}

/// `GET /admin/keys`: a row per key.
pub fn keys(body: &Value) -> String {
    let rows: Vec<Vec<String>> = body["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|k| {
            let state = match k["revoked_at"].as_str() {
                Some(at) => format!("revoked {at}"),
                None => "active".into(),
            };
            vec![
                text(&k["id"]),
                text(&k["kind"]),
                text(&k["redacted"]),
                text(&k["name"]),
                text(&k["created_at"]),
                state,
            ]
        })
        .collect();
    if rows.is_empty() {
        return "no API keys yet; create one with `mercato keys create --kind secret`".into();
    }
    table(&["ID", "KIND", "KEY", "NAME", "CREATED", "STATE"], rows)
}

/// A key just made: the key itself, which is never shown again.
pub fn key_created(body: &Value) -> String {
    format!(
        "created {} key {}\n{}\nstore it now: the host keeps only its hash and never shows it again",
        text(&body["kind"]),
        text(&body["id"]),
        text(&body["key"])
    )
}

/// A revoked key.
pub fn key_revoked(body: &Value) -> String {
    format!(
        "revoked {} ({}) at {}",
        text(&body["id"]),
        text(&body["redacted"]),
        text(&body["revoked_at"])
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_show_once_and_list_redacted() {
        let made = key_created(
            &json!({ "id": "key_1", "kind": "secret", "key": "sk_0123456789abcdef", "redacted": "sk_0123…cdef" }),
        );
        assert!(made.contains("sk_0123456789abcdef") && made.contains("never shows it again"));
        let out = keys(&json!({ "data": [
            { "id": "key_1", "kind": "secret", "redacted": "sk_0123…cdef", "name": "backend", "created_at": "2026-12-01T10:00:00.000Z", "revoked_at": null },
            { "id": "key_2", "kind": "publishable", "redacted": "pk_9999…0000", "name": "", "created_at": "2026-12-01T09:00:00.000Z", "revoked_at": "2026-12-01T11:00:00.000Z" },
        ] }));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert!(
            lines[1].contains("active") && lines[2].contains("revoked 2026-12-01T11"),
            "{out}"
        );
        assert!(keys(&json!({ "data": [] })).contains("mercato keys create"));
    }

    #[test]
    fn plugins_are_a_table_with_a_header() {
        let out = plugins(&json!({ "plugins": [
            { "name": "orders", "kind": "domain", "version": "0.1.0", "sha256": "abcdef0123456789", "storage": "sqlite", "subscriptions": ["inventory.*", "payments.*"] },
            { "name": "tiered-spend", "kind": "rule", "version": "1.0.0", "sha256": "99", "evaluations": { "calls": 3 } },
        ] }));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert!(lines[0].starts_with("NAME"), "{out}");
        assert!(
            lines[1].contains("orders")
                && lines[1].contains("abcdef012345 ")
                && lines[1].contains("inventory.*, payments.*"),
            "{out}"
        );
        assert!(
            !lines[1].contains("abcdef0123456"),
            "sha256 is shortened: {out}"
        );
        assert!(
            lines[2].contains("tiered-spend")
                && lines[2].contains("calls 3")
                && lines[2].contains(" - "),
            "{out}"
        );
        // Columns line up.
        assert_eq!(lines[1].find("domain"), lines[2].find("rule"), "{out}");
    }

    #[test]
    fn versions_mark_the_serving_one() {
        let out = versions(&json!({ "name": "orders", "versions": [
            { "version": "2.0.0", "sha256": "aa", "deployed_at": "2026-12-01T10:00:00.000Z" },
            { "version": "0.1.0", "sha256": "bb", "deployed_at": "" },
        ] }));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "orders");
        assert!(
            lines[2].starts_with("2.0.0") && lines[2].ends_with("serving"),
            "{out}"
        );
        assert!(
            lines[3].starts_with("0.1.0") && !lines[3].contains("serving"),
            "{out}"
        );
    }

    #[test]
    fn switches_and_removals_are_one_line() {
        let deployed = json!({ "name": "orders", "current": { "version": "2.0.0", "sha256": "abcdef0123456789" },
            "previous": { "version": "0.1.0" }, "unchanged": false });
        assert_eq!(
            switched(&deployed, "deployed"),
            "deployed orders 2.0.0 (abcdef012345), replacing 0.1.0"
        );
        let same = json!({ "name": "orders", "current": { "version": "2.0.0", "sha256": "ab" }, "previous": null, "unchanged": true });
        assert_eq!(
            switched(&same, "deployed"),
            "orders 2.0.0 (ab) serves already: nothing changed"
        );
        let gone = json!({ "name": "notes", "kind": "plugin", "version": "0.1.0", "archived_as": "notes", "unsubscribed": ["audit"] });
        assert_eq!(
            removed(&gone),
            "removed plugin notes 0.1.0; its data is kept in `notes`; no longer delivering to audit"
        );
        let rule = json!({ "name": "flat", "kind": "rule", "version": "1.0.0", "archived_as": null, "unsubscribed": [] });
        assert_eq!(removed(&rule), "removed rule flat 1.0.0");
        let done = json!({ "plugin": "search", "generation": 2, "state": "switched", "sources": [{ "source": "orders", "replayed": 40 }] });
        assert_eq!(
            rebuilt(&done),
            "rebuilt search into copy 2: switched (events replayed: orders 40)"
        );
    }
}
