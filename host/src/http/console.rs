//! The operator's console at `/admin/console`: a static page (HTML, vanilla
//! JS modules, CSS) embedded in the binary, so it works offline and needs no
//! CDN. The page holds no data and is served without the admin token; its
//! script asks the operator for the token and sends it with every call to the
//! admin API, the same API `curl` and the CLI use: the console adds no
//! privileged route of its own.
//!
//! Only `config.json` (where the trace UI is) sits behind the token: it names
//! internal infrastructure.
use super::error::ApiError;
use crate::app::App;
use axum::Json;
use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

/// The environment variable naming the trace UI, a URL with `{trace_id}`.
const TRACE_URL_VAR: &str = "MERCATO_TRACE_URL";

/// Nothing but the console's own files may load or be called; no inline
/// script or style, so injected markup could run nothing; no framing.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'";

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

/// An embedded file of `console/`, by name.
macro_rules! asset {
    ($name:literal, $content_type:expr) => {
        Asset {
            name: $name,
            content_type: $content_type,
            body: include_bytes!(concat!("console/", $name)),
        }
    };
}

const SCRIPT: &str = "text/javascript; charset=utf-8";

const INDEX: Asset = asset!("index.html", "text/html; charset=utf-8");

/// What `/admin/console/assets/{file}` serves; anything else is a 404.
const ASSETS: &[Asset] = &[
    asset!("console.css", "text/css; charset=utf-8"),
    asset!("console.js", SCRIPT),
    asset!("api.js", SCRIPT),
    asset!("dom.js", SCRIPT),
    asset!("plugins.js", SCRIPT),
    asset!("events.js", SCRIPT),
    asset!("orders.js", SCRIPT),
    asset!("rules.js", SCRIPT),
];

/// The console's routes. The page and its assets are public (they hold no
/// data); `config.json` needs the admin token.
pub(super) fn routes(app: App) -> Router<App> {
    let trace_url = trace_url(std::env::var(TRACE_URL_VAR).ok());
    let config = Router::new()
        .route(
            "/admin/console/config.json",
            get(move || std::future::ready(config_json(trace_url.clone()))),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            app,
            super::admin::require_admin,
        ));
    Router::new()
        .route("/admin/console", get(index))
        .route("/admin/console/", get(index))
        .route("/admin/console/assets/{file}", get(asset))
        .merge(config)
}

async fn index(headers: HeaderMap) -> Response {
    serve(&INDEX, &headers)
}

async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().find(|a| a.name == file) {
        Some(asset) => serve(asset, &headers),
        None => ApiError::NoRoute(format!("/admin/console/assets/{file}")).into_response(),
    }
}

/// An asset with its headers. `no-cache` with an ETag: a browser revalidates
/// each time (a 304 costs nothing), so a host upgraded to new assets is never
/// shown with stale ones.
fn serve(asset: &Asset, request: &HeaderMap) -> Response {
    let etag = etag(asset);
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, asset.content_type)], asset.body).into_response()
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(value) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, value);
    }
    secure(headers);
    response
}

fn secure(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Hash routes carry order ids; a followed trace link need not learn them.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

/// A strong ETag per asset: the start of its sha256, computed once.
fn etag(asset: &Asset) -> &'static str {
    static TAGS: LazyLock<Vec<(&'static str, String)>> = LazyLock::new(|| {
        std::iter::once(&INDEX)
            .chain(ASSETS)
            .map(|a| {
                let digest = hex::encode(Sha256::digest(a.body));
                (a.name, format!("\"{}\"", &digest[..16]))
            })
            .collect()
    });
    TAGS.iter()
        .find(|(name, _)| *name == asset.name)
        .map_or("", |(_, tag)| tag.as_str())
}

fn config_json(trace_url: Option<String>) -> Response {
    let mut response = Json(json!({ "trace_url": trace_url })).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    secure(headers);
    response
}

/// The trace UI template from the environment, if it is usable: an http(s)
/// URL with a `{trace_id}` placeholder. Another value is logged and ignored,
/// so the console shows trace ids as text rather than broken links.
fn trace_url(raw: Option<String>) -> Option<String> {
    let raw = raw?.trim().to_owned();
    if raw.is_empty() {
        return None;
    }
    let example = raw.replace("{trace_id}", "0123456789abcdef0123456789abcdef");
    let usable = raw.contains("{trace_id}")
        && url::Url::parse(&example).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
    if !usable {
        tracing::warn!(
            value = %raw,
            "{TRACE_URL_VAR} is not an http(s) URL with {{trace_id}} in it; the console shows trace ids without links"
        );
        return None;
    }
    Some(raw)
}

/// The console's entries in `/openapi.json`.
pub(super) fn openapi_paths(paths: &mut serde_json::Map<String, Value>) {
    let error = |description: &str| json!({ "description": description, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } });
    let text = json!({ "type": "string" });
    paths.insert(
        "/admin/console".into(),
        json!({ "get": {
            "summary": "The operator's console (a static page; it asks for the admin token and calls the admin API with it)",
            "tags": ["console"],
            "responses": { "200": { "description": "The page", "content": { "text/html": { "schema": text } } } },
        } }),
    );
    paths.insert(
        "/admin/console/assets/{file}".into(),
        json!({ "get": {
            "summary": "A script or style sheet of the console",
            "tags": ["console"],
            "parameters": [{ "name": "file", "in": "path", "required": true,
                "description": "The asset's file name.", "example": "console.js",
                "schema": { "type": "string", "pattern": "^[a-z]+\\.(js|css)$" } }],
            "responses": {
                "200": { "description": "The asset", "content": {
                    "text/javascript": { "schema": text }, "text/css": { "schema": text } } },
                "404": error("`not_found`: no such asset"),
            },
        } }),
    );
    paths.insert(
        "/admin/console/config.json".into(),
        json!({ "get": {
            "summary": "The console's settings: the trace UI's URL template (`MERCATO_TRACE_URL`), or null",
            "tags": ["console"],
            "security": [{ "adminToken": [] }],
            "responses": {
                "200": { "description": "`{trace_url}`", "content": { "application/json": { "schema": {
                    "type": "object", "required": ["trace_url"],
                    "properties": { "trace_url": { "type": ["string", "null"] } } } } } },
                "401": error("`unauthorized`: no or a wrong admin token"),
            },
        } }),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trace_url_needs_a_placeholder_and_an_http_scheme() {
        let jaeger = "http://localhost:16686/trace/{trace_id}";
        assert_eq!(trace_url(Some(jaeger.into())).as_deref(), Some(jaeger));
        assert_eq!(trace_url(None), None);
        assert_eq!(trace_url(Some("  ".into())), None);
        assert_eq!(trace_url(Some("http://localhost:16686/".into())), None);
        assert_eq!(
            trace_url(Some("javascript:alert('{trace_id}')".into())),
            None
        );
    }

    #[test]
    fn every_asset_has_a_distinct_name_and_tag() {
        let mut tags: Vec<&str> = ASSETS.iter().map(etag).collect();
        tags.push(etag(&INDEX));
        tags.sort();
        tags.dedup();
        assert_eq!(tags.len(), ASSETS.len() + 1);
        assert!(tags.iter().all(|t| t.len() == 18));
    }
}
