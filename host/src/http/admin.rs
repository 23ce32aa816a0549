//! Host routes: health, readiness, metrics and the admin API.
use super::error::ApiError;
use crate::events::router::{dead_letters, outbox_depth};
use crate::host::Host;
use axum::Json;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::net::SocketAddr;
use subtle::ConstantTimeEq;

pub(super) async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub(super) async fn readyz(State(host): State<Host>) -> Result<Json<Value>, ApiError> {
    if host.cancel.is_cancelled() {
        return Err(ApiError::ShuttingDown);
    }
    let plugins: Vec<String> = host
        .registry
        .all()
        .iter()
        .map(|p| p.name.to_string())
        .collect();
    Ok(Json(json!({ "status": "ready", "plugins": plugins })))
}

pub(super) async fn metrics(State(host): State<Host>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        host.metrics.render(),
    )
        .into_response()
}

/// Admin routes need the bearer token; with no token configured they serve
/// loopback clients only.
pub(super) async fn require_admin(
    State(host): State<Host>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    match &host.config.admin_token {
        Some(token) => {
            let presented = request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or_default();
            if !bool::from(presented.as_bytes().ct_eq(token.as_bytes())) {
                return Err(ApiError::Unauthorized);
            }
        }
        None => {
            let loopback = request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .is_some_and(|ConnectInfo(addr)| addr.ip().is_loopback());
            if !loopback {
                return Err(ApiError::LoopbackOnly);
            }
        }
    }
    Ok(next.run(request).await)
}

pub(super) async fn plugins(State(host): State<Host>) -> Json<Value> {
    let plugins: Vec<Value> = host
        .registry
        .all()
        .iter()
        .map(|p| {
            json!({
                "name": &*p.name,
                "version": p.version,
                "sha256": p.sha256,
                "subscriptions": p.subscriptions.iter().map(|s| format!("{}.{}", s.source, s.event_type.as_deref().unwrap_or("*"))).collect::<Vec<_>>(),
                "limits": p.limits,
                "storage": p.db.kind().name(),
            })
        })
        .collect();
    Json(json!({ "plugins": plugins }))
}

pub(super) async fn events(
    State(host): State<Host>,
    headers: axum::http::HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let request_id = super::request_id(&headers);
    let internal = |e: crate::storage::StorageError| {
        tracing::error!(request_id, error = %e, "reading event status failed");
        ApiError::Internal {
            code: "storage_error",
            request_id: request_id.clone(),
        }
    };
    let mut outboxes = Vec::new();
    let mut letters = Vec::new();
    for plugin in host.registry.all() {
        outboxes.push(json!({
            "plugin": &*plugin.name,
            "head": *plugin.head.borrow(),
            "unpublished": outbox_depth(&plugin).await.map_err(internal)?,
        }));
        letters.extend(dead_letters(&plugin).await.map_err(internal)?);
    }
    Ok(Json(json!({
        "outboxes": outboxes,
        "subscribers": host.router.status(&host.registry),
        "dead_letters": letters,
    })))
}
