//! `GET /openapi.json`: one OpenAPI 3.1 document for the running shop. Each
//! plugin documents itself through its manifest (a fragment with paths relative
//! to its mount point); the host mounts the paths under `/{plugin}`, namespaces
//! the plugin's components as `{plugin}.{Name}`, adds the responses the host
//! itself can give (408, 413, 500) and documents its own routes.
use crate::app::App;
use crate::keys::Role;
use crate::plugin::Plugin;
use axum::Json;
use axum::extract::State;
use serde_json::{Map, Value, json};

const METHODS: &[&str] = &["get", "put", "post", "delete", "patch", "head", "options"];

pub(super) async fn openapi(State(app): State<App>) -> Json<Value> {
    Json(document(&app.registry().all()))
}

fn document(plugins: &[std::sync::Arc<Plugin>]) -> Value {
    let mut paths = host_paths();
    let mut schemas = Map::new();
    let mut responses = Map::new();
    schemas.insert("Error".into(), error_schema());
    responses.insert(
        "HostError".into(),
        json!({ "description": "An error answered by the host", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }),
    );
    for plugin in plugins {
        let Value::Object(fragment) = namespaced(&plugin.name, &plugin.openapi) else {
            continue;
        };
        if let Some(Value::Object(plugin_paths)) = fragment.get("paths") {
            for (path, item) in plugin_paths {
                let mut item = item.clone();
                for method in METHODS {
                    if let Some(Value::Object(op)) = item.get_mut(*method) {
                        op.entry("tags").or_insert_with(|| json!([&*plugin.name]));
                        let access = op
                            .get("x-mercato-access")
                            .and_then(Value::as_str)
                            .and_then(Role::parse)
                            .unwrap_or(Role::Merchant);
                        op.insert("security".into(), security(access));
                        if *method != "get" && *method != "head" {
                            idempotency_key(op);
                        }
                        let responses = op.entry("responses").or_insert_with(|| json!({}));
                        if let Value::Object(r) = responses {
                            if access > Role::Public {
                                r.entry("401").or_insert_with(
                                    || json!({ "$ref": "#/components/responses/HostError" }),
                                );
                            }
                            if access > Role::Buyer {
                                r.entry("403").or_insert_with(
                                    || json!({ "$ref": "#/components/responses/HostError" }),
                                );
                            }
                            r.entry("408").or_insert_with(
                                || json!({ "$ref": "#/components/responses/HostError" }),
                            );
                            r.entry("413").or_insert_with(
                                || json!({ "$ref": "#/components/responses/HostError" }),
                            );
                            r.entry("500").or_insert_with(
                                || json!({ "$ref": "#/components/responses/HostError" }),
                            );
                        }
                    }
                }
                let mounted = match path.as_str() {
                    "/" => format!("/{}", plugin.name),
                    _ => format!("/{}{}", plugin.name, path),
                };
                paths.insert(mounted, item);
            }
        }
        if let Some(Value::Object(components)) = fragment.get("components") {
            for (kind, target) in [("schemas", &mut schemas), ("responses", &mut responses)] {
                if let Some(Value::Object(entries)) = components.get(kind) {
                    for (name, value) in entries {
                        target.insert(format!("{}.{name}", plugin.name), value.clone());
                    }
                }
            }
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Mercato",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The shop's HTTP API. Plugin routes are mounted under /{plugin}; every error body is {\"error\": {\"code\", \"message\"}}.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": responses,
            "securitySchemes": super::openapi_admin::security_schemes(),
        },
    })
}

/// Documents the host's `Idempotency-Key` on an operation that changes
/// something, replacing whatever the plugin wrote for it, and the answers
/// the host gives about it (400 malformed, 409 in flight, 422 reused).
fn idempotency_key(op: &mut Map<String, Value>) {
    let parameters = op.entry("parameters").or_insert_with(|| json!([]));
    if let Value::Array(list) = parameters {
        list.retain(|p| {
            !p["name"]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case("idempotency-key"))
        });
        list.push(json!({
            "name": "Idempotency-Key", "in": "header", "required": false,
            "description": "Replays the first answer to a retried request (the host's, see docs/api.md#plugin-routes).",
            "schema": { "type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]([ -~]*[!-~])?$" }
        }));
    }
    if let Some(Value::Object(responses)) = op.get_mut("responses") {
        for status in ["400", "409", "422"] {
            responses
                .entry(status)
                .or_insert_with(|| json!({ "$ref": "#/components/responses/HostError" }));
        }
    }
}

/// The `security` of an operation anyone with `access` may call: none for a
/// public one (an empty requirement), else the keys that carry the role.
fn security(access: Role) -> Value {
    match access {
        Role::Public => json!([{}, { "publishableKey": [] }, { "secretKey": [] }]),
        Role::Buyer => json!([{ "publishableKey": [] }, { "secretKey": [] }]),
        Role::Merchant => json!([{ "secretKey": [] }]),
    }
}

/// Rewrites the plugin's local component references to their namespaced names.
fn namespaced(plugin: &str, fragment: &Value) -> Value {
    if fragment.is_null() {
        return Value::Null;
    }
    let text = fragment
        .to_string()
        .replace(
            "\"#/components/schemas/",
            &format!("\"#/components/schemas/{plugin}."),
        )
        .replace(
            "\"#/components/responses/",
            &format!("\"#/components/responses/{plugin}."),
        );
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

fn error_schema() -> Value {
    json!({
        "type": "object",
        "required": ["error"],
        "properties": { "error": { "type": "object", "required": ["code", "message"], "properties": {
            "code": { "type": "string" }, "message": { "type": "string" }, "request_id": { "type": "string" } } } }
    })
}

fn host_paths() -> Map<String, Value> {
    let ok = |description: &str| json!({ "200": { "description": description } });
    let mut paths = Map::new();
    paths.insert("/healthz".into(), json!({ "get": { "summary": "Liveness", "tags": ["host"], "responses": ok("The process runs") } }));
    paths.insert(
        "/readyz".into(),
        json!({ "get": { "summary": "Readiness and loaded plugins", "tags": ["host"], "responses": { "200": { "description": "Ready" }, "503": { "$ref": "#/components/responses/HostError" } } } }),
    );
    paths.insert("/metrics".into(), json!({ "get": { "summary": "Prometheus metrics", "tags": ["host"], "responses": ok("Prometheus text") } }));
    paths.insert("/openapi.json".into(), json!({ "get": { "summary": "This document", "tags": ["host"], "responses": ok("OpenAPI 3.1") } }));
    super::openapi_admin::paths(&mut paths);
    super::console::openapi_paths(&mut paths);
    paths
}
