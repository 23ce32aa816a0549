//! `/{plugin}/…` → that plugin's `handle-request`, as one unit of work.
use super::access::ROLE_HEADER;
use super::error::ApiError;
use super::request_id;
use crate::app::App;
use crate::bindings::Request as GuestRequest;
use crate::keys::Role;
use crate::unit_of_work::RequestFailure;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// Headers a plugin may not set: the host frames the response itself.
const HOST_HEADERS: &[&str] = &[
    "content-length",
    "transfer-encoding",
    "connection",
    "x-request-id",
];

pub(super) async fn plugin_root(
    state: State<App>,
    Path(plugin): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    forward(state, plugin, String::new(), method, uri, headers, body).await
}

pub(super) async fn plugin_path(
    state: State<App>,
    Path((plugin, rest)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    forward(state, plugin, rest, method, uri, headers, body).await
}

async fn forward(
    State(app): State<App>,
    plugin_name: String,
    rest: String,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    // Counted only for a running plugin, so every label value is bounded: the
    // plugin's name, a route it documents, a standard method, a class.
    let plugin = app
        .registry()
        .get(&plugin_name)
        .ok_or(ApiError::UnknownPlugin(plugin_name.clone()))?;
    let route = crate::plugin::routes::template(&plugin.openapi, &format!("/{rest}"));
    let method_label: &'static str = match method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    };
    // A method the plugin does not document on a route it documents is
    // answered here, before any key, idempotency record or instance.
    let allowed = crate::plugin::routes::documented_methods(&plugin.openapi, &route)
        .filter(|methods| !methods.contains(&method.as_str()));
    let answered = if let Some(methods) = allowed {
        let mut refused =
            ApiError::MethodNotAllowed(method.to_string(), uri.path().to_owned()).into_response();
        if let Ok(allow) = HeaderValue::from_str(&methods.join(", ")) {
            refused
                .headers_mut()
                .insert(axum::http::header::ALLOW, allow);
        }
        Ok(refused)
    } else {
        authorized_call(&app, plugin, &route, rest, method, uri, headers, body).await
    };
    app.metrics()
        .http_requests
        .with_label_values(&[
            &plugin_name,
            &route,
            method_label,
            status_class(match &answered {
                Ok(response) => response.status(),
                Err(e) => e.status(),
            }),
        ])
        .inc();
    answered
}

/// Checks the caller's role against the route's, then calls the plugin.
#[allow(clippy::too_many_arguments)]
async fn authorized_call(
    app: &App,
    plugin: std::sync::Arc<crate::plugin::Plugin>,
    route: &str,
    rest: String,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    match super::access::caller(app, &headers).and_then(|role| {
        let required = crate::plugin::routes::access(&plugin.openapi, route, method.as_str());
        super::access::check(role, required).map(|()| role)
    }) {
        Ok(role) => call(app, plugin, rest, method, uri, headers, body, role).await,
        Err(refused) => Err(refused),
    }
}

/// An `Idempotency-Key` as the OpenAPI document states it: 1-255 visible
/// ASCII characters, spaces only inside (a tab, which HTTP allows in a
/// header, is not part of a key).
fn well_formed_key(key: &str) -> bool {
    (1..=255).contains(&key.len())
        && key.bytes().all(|b| (b' '..=b'~').contains(&b))
        && !key.starts_with(' ')
        && !key.ends_with(' ')
}

fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

#[allow(clippy::too_many_arguments)]
async fn call(
    app: &App,
    plugin: std::sync::Arc<crate::plugin::Plugin>,
    rest: String,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
    role: Role,
) -> Result<Response, ApiError> {
    let request_id = request_id(&headers);
    let plugin_name = plugin.name.to_string();
    let limit = app.config().max_body_bytes;
    let body = axum::body::to_bytes(body, limit)
        .await
        .map_err(|e| ApiError::unreadable_body(&e, limit))?;
    // Only methods that change something take a key: any other method is
    // the plugin's to refuse (405), never an idempotency conflict.
    let changes = matches!(
        method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    let idempotency_key = match headers.get("idempotency-key").filter(|_| changes) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .filter(|k| well_formed_key(k))
                .ok_or_else(|| {
                    ApiError::BadRequest(
                        "invalid_idempotency_key",
                        "Idempotency-Key must be 1-255 visible ASCII characters".into(),
                    )
                })?
                .to_owned(),
        ),
    };
    // A plugin never sees the caller's credential (a hostile plugin could
    // keep a merchant's key), only the role the host found in it.
    let mut guest_headers: Vec<(String, String)> = headers
        .iter()
        .filter(|(k, _)| *k != axum::http::header::AUTHORIZATION && k.as_str() != ROLE_HEADER)
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    guest_headers.push((ROLE_HEADER.to_owned(), role.as_str().to_owned()));
    let request = GuestRequest {
        method: method.as_str().to_owned(),
        path: format!("/{rest}"),
        query: uri.query().unwrap_or_default().to_owned(),
        headers: guest_headers,
        body: body.to_vec(),
    };
    let answer = app
        .calls()
        .call_request(
            &plugin,
            request,
            idempotency_key,
            &request_id,
            super::request_trace(),
        )
        .await
        .map_err(|failure| match failure {
            RequestFailure::Call(e) => ApiError::PluginFailed {
                plugin: plugin_name.clone(),
                kind: e.kind(),
                request_id: request_id.clone(),
            },
            RequestFailure::KeyInProgress => ApiError::KeyInProgress,
            RequestFailure::KeyReused => ApiError::KeyReused,
            RequestFailure::InvalidStatus(_) | RequestFailure::Storage(_) => {
                tracing::error!(plugin = %plugin_name, request_id, error = %failure, "request failed");
                ApiError::Internal {
                    code: match failure {
                        RequestFailure::InvalidStatus(_) => "plugin_invalid_response",
                        _ => "storage_error",
                    },
                    request_id: request_id.clone(),
                }
            }
        })?;
    let status =
        StatusCode::from_u16(answer.response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, answer.response.body).into_response();
    let out = response.headers_mut();
    // The plugin's content type replaces the default one for raw bytes.
    if answer
        .response
        .headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("content-type"))
    {
        out.remove(axum::http::header::CONTENT_TYPE);
    }
    for (name, value) in answer.response.headers {
        if HOST_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            continue;
        }
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            out.append(name, value);
        }
    }
    if answer.replayed {
        out.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}
