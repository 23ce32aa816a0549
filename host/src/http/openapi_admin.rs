//! The admin API in `/openapi.json`: every route under `/admin`, each behind
//! the `adminToken` bearer scheme the document defines.
use serde_json::{Map, Value, json};

/// The security schemes: the admin token for `/admin`, and the API keys plugin
/// routes name by their `x-mercato-access` (the admin token also acts as a
/// secret key).
pub(super) fn security_schemes() -> Value {
    json!({
        "adminToken": {
            "type": "http", "scheme": "bearer",
            "description": "The host's admin token: `admin_token` in the configuration, or the file `data_dir/admin-token` (docs/operations.md#admin-token)."
        },
        "secretKey": {
            "type": "http", "scheme": "bearer",
            "description": "A secret API key (`sk_…`, from `POST /admin/keys`): the merchant. The admin token is accepted too (docs/api.md#api-keys-and-roles)."
        },
        "publishableKey": {
            "type": "http", "scheme": "bearer",
            "description": "A publishable API key (`pk_…`): a storefront acting for a buyer (docs/api.md#api-keys-and-roles)."
        },
    })
}

fn error(description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

/// One admin operation: its summary, parameters, body and answers beyond
/// the 401 every one of them can give.
fn operation(summary: &str, parameters: Value, body: Option<Value>, responses: Value) -> Value {
    let mut op = json!({
        "summary": summary, "tags": ["admin"], "security": [{ "adminToken": [] }],
        "parameters": parameters, "responses": responses,
    });
    op["responses"]["401"] = error("`unauthorized`: no or a wrong admin token");
    if let Some(body) = body {
        op["requestBody"] = body;
    }
    op
}

fn name() -> Value {
    json!([{ "name": "name", "in": "path", "required": true, "description": "A plugin's or rule's name.", "schema": { "type": "string", "minLength": 1 } }])
}

fn ok(description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": { "type": "object" } } } })
}

/// Every admin path, by path and method.
pub(super) fn paths(paths: &mut Map<String, Value>) {
    let refused = |codes: &str| error(codes);
    paths.insert(
        "/admin/plugins".into(),
        json!({ "get": operation(
        "Loaded plugins and rules: kind, version, sha256, subscriptions, limits",
        json!([]), None, json!({ "200": ok("`{plugins: [...]}`") })) }),
    );
    paths.insert(
        "/admin/events".into(),
        json!({ "get": operation(
        "Outbox heads, subscriber positions and lag, dead letters",
        json!([]), None, json!({ "200": ok("`{outboxes, subscribers, dead_letters}`") })) }),
    );
    paths.insert(
        "/admin/cluster".into(),
        json!({ "get": operation(
        "The cluster: live hosts, leases, each stream's owner, position and lag (`cluster: null` on a host alone)",
        json!([]), None, json!({ "200": ok("`{cluster, host, hosts, leases, streams}`") })) }),
    );
    paths.insert("/admin/orders/{id}/timeline".into(), json!({ "get": operation(
        "One order's saga across every context: each event that names the order, in commit order, with the plugin and version that handled it (or the dead letter) and its trace id",
        json!([{ "name": "id", "in": "path", "required": true, "description": "The order's id.",
            "schema": { "type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[!-~]+$" } }]), None,
        json!({ "200": ok("`{order_id, entries: [{at, plugin, event_type, event_id, sequence, aggregate_id, trace_id, handled_by: [{plugin, version, at, outcome, error?, attempts?}]}]}`"),
            "400": refused("`invalid_order_id`"), "404": refused("`unknown_order`: no event names it") })) }));
    paths.insert("/admin/plugins/{name}".into(), json!({
        "put": operation(
            "Deploy a component as the new version of plugin or rule `name` (hot swap)",
            json!([name()[0], { "name": "x-mercato-signature", "in": "header", "required": false,
                "description": "Hex ed25519 signature of the body, required when `trusted_keys` is configured.", "schema": { "type": "string" } }]),
            Some(json!({ "required": true, "content": { "application/wasm": { "schema": { "type": "string", "format": "binary" } } } })),
            json!({
                "200": ok("`{name, current, previous, unchanged}`; `unchanged: true` when these bytes serve already"),
                "400": refused("`not_a_component`, `name_mismatch`"),
                "401": refused("`unsigned_component`"),
                "403": refused("`bad_signature`"),
                "409": refused("`name_taken`"),
                "413": refused("`body_too_large`: over `max_component_bytes`"),
                "422": refused("`wrong_world`, `forbidden_import`, `invalid_manifest`, `migration_failed`, `destructive_migration`, `unreadable_migration`"),
            })),
        "delete": operation(
            "Remove plugin or rule `name` from service; its data is kept",
            json!([name()[0], { "name": "force", "in": "query", "required": false,
                "description": "Remove it although other plugins subscribe to it.", "schema": { "type": "boolean" } }]),
            None,
            json!({
                "200": ok("`{name, kind, version, archived_as, unsubscribed, removed_at}`"),
                "400": refused("`invalid_parameter`"),
                "404": refused("`unknown_plugin`"),
                "409": refused("`has_subscribers`"),
            })),
    }));
    paths.insert("/admin/plugins/{name}/rollback".into(), json!({ "post": operation(
        "Return `name` to the version before the current one",
        name(), None,
        json!({ "200": ok("`{name, current, previous, unchanged}`"), "404": refused("`unknown_plugin`"), "409": refused("`no_previous_version`") })) }));
    paths.insert("/admin/plugins/{name}/versions".into(), json!({ "get": operation(
        "The versions of `name`, newest (serving) first",
        name(), None,
        json!({ "200": ok("`{name, versions: [{version, sha256, deployed_at}]}`"), "404": refused("`unknown_plugin`") })) }));
    paths.insert("/admin/plugins/{name}/wipe".into(), json!({ "post": operation(
        "Empty a process-state plugin's database (by default only checkout) and migrate it again",
        name(), None,
        json!({ "200": ok("Wiped: name, version, migrations applied again, wiped_at"), "404": refused("`unknown_plugin`"), "409": refused("`not_wipeable`") })) }));
    paths.insert("/admin/plugins/{name}/rebuild".into(), json!({
        "post": operation(
            "Rebuild read model `name` by replay into a fresh copy, then switch (blue/green)",
            name(), None,
            json!({ "202": ok("The rebuild started: its status"), "404": refused("`unknown_plugin`"),
                "409": refused("`not_a_read_model`, `rebuild_running`, `history_pruned`") })),
        "get": operation(
            "The current or last rebuild of `name`: state, per-source progress, ETA",
            name(), None,
            json!({ "200": ok("`{plugin, state, generation, sources, eta_seconds, started_at, finished_at, error}`"), "404": refused("`no_rebuild`") })),
    }));
    let key = json!({ "type": "object", "required": ["object", "id", "kind", "name", "redacted", "created_at", "revoked_at"], "properties": {
        "object": { "const": "api_key" }, "id": { "type": "string" }, "kind": { "enum": ["secret", "publishable"] },
        "name": { "type": "string" }, "redacted": { "type": "string" }, "created_at": { "type": "string" },
        "revoked_at": { "type": ["string", "null"] }, "key": { "type": "string", "description": "The key itself: only in the answer that creates it." } } });
    let keyed = |description: &str| json!({ "description": description, "content": { "application/json": { "schema": key.clone() } } });
    paths.insert("/admin/keys".into(), json!({
        "get": operation("Every API key (without the key itself), newest first", json!([]), None,
            json!({ "200": ok("`{object: \"list\", data: [api_key], has_more: false}`") })),
        "post": operation(
            "Create a secret (merchant) or publishable (storefront) API key; the answer is the only time the key is shown",
            json!([]),
            Some(json!({ "required": true, "content": { "application/json": { "schema": {
                "type": "object", "required": ["kind"], "additionalProperties": false,
                "properties": { "kind": { "enum": ["secret", "publishable"] },
                    "name": { "type": "string", "maxLength": 100, "pattern": "^[^\\u0000-\\u001F\\u007F-\\u009F]*$", "description": "What the key is for; no control characters." } } } } } })),
            json!({ "201": keyed("The key, with `key` shown this once"), "400": refused("`invalid_json`, `invalid_key_request`") })),
    }));
    paths.insert("/admin/keys/{id}".into(), json!({ "delete": operation(
        "Revoke an API key: from now on it authenticates no one (revoking again changes nothing)",
        json!([{ "name": "id", "in": "path", "required": true, "schema": { "type": "string", "minLength": 1 } }]), None,
        json!({ "200": keyed("The revoked key"), "404": refused("`not_found`") })) }));
    paths.insert("/admin/events/dead-letters/redrive".into(), json!({ "post": operation(
        "Deliver a subscriber's dead-lettered events again",
        json!([]),
        Some(json!({ "required": true, "content": { "application/json": { "schema": {
            "type": "object", "required": ["plugin"], "additionalProperties": false,
            "properties": { "plugin": { "type": "string", "minLength": 1 },
                "event_ids": { "type": "array", "items": { "type": "string" }, "description": "Only these; all when absent." } } } } } })),
        json!({ "200": ok("What was redelivered, and what failed again"), "400": refused("`invalid_json`"), "404": refused("`unknown_plugin`") })) }));
}
