//! Host routes: health, readiness, metrics and the admin API.
use super::error::ApiError;
use crate::app::App;
use crate::outbox::store::{list_dead_letters, unpublished};
use crate::plugin::Kind;
use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

pub(super) async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub(super) async fn readyz(State(app): State<App>) -> Result<Json<Value>, ApiError> {
    if app.is_stopping() {
        return Err(ApiError::ShuttingDown);
    }
    let plugins: Vec<String> = app
        .registry()
        .all()
        .iter()
        .map(|p| p.name.to_string())
        .collect();
    Ok(Json(json!({ "status": "ready", "plugins": plugins })))
}

pub(super) async fn metrics(State(app): State<App>) -> Response {
    if let Some(cluster) = app.cluster() {
        app.metrics()
            .cluster_leases
            .with_label_values(&[cluster.config().name.as_str()])
            .set(i64::try_from(cluster.leases().held()).unwrap_or(i64::MAX));
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics().render(),
    )
        .into_response()
}

/// Admin routes need the bearer token, whoever the peer is: a reverse proxy on
/// the same machine makes every client look local.
pub(super) async fn require_admin(
    State(app): State<App>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !bool::from(presented.as_bytes().ct_eq(app.admin_token().as_bytes())) {
        return Err(ApiError::Unauthorized);
    }
    Ok(next.run(request).await)
}

pub(super) async fn plugins(State(app): State<App>) -> Json<Value> {
    let mut plugins: Vec<Value> = app
        .registry()
        .all()
        .iter()
        .map(|p| {
            json!({
                "name": &*p.name,
                "kind": Kind::Domain.as_str(),
                "version": p.version,
                "sha256": p.sha256,
                "subscriptions": p.subscriptions.iter().map(|s| format!("{}.{}", s.source, s.event_type.as_deref().unwrap_or("*"))).collect::<Vec<_>>(),
                "limits": p.limits,
                "storage": p.slot.db.kind().name(),
            })
        })
        .collect();
    plugins.extend(app.rules().all().iter().map(|r| {
        json!({
            "name": &*r.name,
            "kind": Kind::Rule.as_str(),
            "version": r.version,
            "sha256": r.sha256,
            "description": r.description,
            "limits": r.limits,
            "evaluations": r.stats.to_json(),
        })
    }));
    plugins.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Json(json!({ "plugins": plugins }))
}

pub(super) async fn events(
    State(app): State<App>,
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
    for plugin in app.registry().all() {
        outboxes.push(json!({
            "plugin": &*plugin.name,
            "head": *plugin.slot.head.borrow(),
            "unpublished": unpublished(&plugin.slot.db).await.map_err(internal)?,
        }));
        letters.extend(
            list_dead_letters(&plugin.slot.db, &plugin.name)
                .await
                .map_err(internal)?,
        );
    }
    let mut subscribers = Vec::new();
    for stream in app.relay().status() {
        let age = match app.registry().get(&stream.source) {
            Some(source) => crate::events::oldest_unconsumed_secs(&source.slot.db, &stream)
                .await
                .map_err(internal)?,
            None => None,
        };
        let mut entry = serde_json::to_value(&stream).unwrap_or_default();
        entry["oldest_unconsumed_age_seconds"] = json!(age);
        subscribers.push(entry);
    }
    Ok(Json(json!({
        "outboxes": outboxes,
        "subscribers": subscribers,
        "dead_letters": letters,
    })))
}

/// `GET /admin/orders/{id}/timeline`: the order's saga across every
/// context (`events::timeline`).
pub(super) async fn order_timeline(
    State(app): State<App>,
    Path(order_id): Path<String>,
    headers: axum::http::HeaderMap,
) -> Result<Json<Value>, ApiError> {
    if order_id.is_empty()
        || order_id.len() > 128
        || !order_id.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(ApiError::BadRequest(
            "invalid_order_id",
            "an order id is 1-128 visible ASCII characters".into(),
        ));
    }
    let entries = crate::events::timeline::timeline(&app.registry().all(), &order_id)
        .await
        .map_err(|e| {
            let request_id = super::request_id(&headers);
            tracing::error!(request_id, error = %e, "reading an order's timeline failed");
            ApiError::Internal {
                code: "storage_error",
                request_id,
            }
        })?;
    if entries.is_empty() {
        return Err(ApiError::Refused {
            status: 404,
            code: "unknown_order",
            message: format!("no event names order `{order_id}`"),
        });
    }
    Ok(Json(json!({ "order_id": order_id, "entries": entries })))
}

/// Body of `PUT /admin/plugins/{name}`: the component bytes.
pub(super) async fn deploy(
    State(app): State<App>,
    Path(name): Path<String>,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> Result<Json<Value>, ApiError> {
    let limit = app.config().max_component_bytes;
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|e| ApiError::unreadable_body(&e, limit))?;
    let signature = headers
        .get("x-mercato-signature")
        .and_then(|v| v.to_str().ok());
    let switched = app
        .deployer()
        .deploy(Some(&name), &bytes, signature)
        .await
        .map_err(deploy_error)?;
    Ok(Json(serde_json::to_value(switched).unwrap_or_default()))
}

/// `DELETE /admin/plugins/{name}[?force=true]`: takes a plugin or rule out
/// of service (see [`crate::deploy::Deployer::remove`]).
pub(super) async fn remove(
    State(app): State<App>,
    Path(name): Path<String>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Result<Json<Value>, ApiError> {
    let mut force = false;
    for pair in query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        force = match pair {
            "force=true" => true,
            "force=false" => false,
            other => {
                return Err(ApiError::BadRequest(
                    "invalid_parameter",
                    format!("`{other}`: the only parameter is force=true or force=false"),
                ));
            }
        };
    }
    let removed = app
        .deployer()
        .remove(&name, force)
        .await
        .map_err(deploy_error)?;
    Ok(Json(serde_json::to_value(removed).unwrap_or_default()))
}

pub(super) async fn rollback(
    State(app): State<App>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let switched = app.deployer().rollback(&name).await.map_err(deploy_error)?;
    Ok(Json(serde_json::to_value(switched).unwrap_or_default()))
}

pub(super) async fn wipe(
    State(app): State<App>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let wiped = app.deployer().wipe(&name).await.map_err(deploy_error)?;
    Ok(Json(serde_json::to_value(wiped).unwrap_or_default()))
}

pub(super) async fn start_rebuild(
    State(app): State<App>,
    Path(name): Path<String>,
) -> Result<(axum::http::StatusCode, Json<Value>), ApiError> {
    let status = app
        .deployer()
        .start_rebuild(&name)
        .await
        .map_err(deploy_error)?;
    Ok((
        axum::http::StatusCode::ACCEPTED,
        Json(serde_json::to_value(status).unwrap_or_default()),
    ))
}

pub(super) async fn rebuild_status(
    State(app): State<App>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let status = app
        .deployer()
        .rebuild_status(&name)
        .ok_or_else(|| ApiError::Refused {
            status: 404,
            code: "no_rebuild",
            message: format!("no rebuild of `{name}` has run since the host started"),
        })?;
    Ok(Json(serde_json::to_value(status).unwrap_or_default()))
}

pub(super) async fn versions(
    State(app): State<App>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let versions = app.deployer().versions(&name).map_err(deploy_error)?;
    Ok(Json(json!({ "name": name, "versions": versions })))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RedriveBody {
    plugin: String,
    #[serde(default)]
    event_ids: Option<Vec<String>>,
}

pub(super) async fn redrive(
    State(app): State<App>,
    body: Result<Json<RedriveBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body.map_err(|e| match super::error::body_timeout(&e) {
        Some(timeout) => ApiError::RequestTimeout(timeout),
        None => ApiError::BadRequest("invalid_json", e.body_text()),
    })?;
    match app
        .relay()
        .redrive(&body.plugin, body.event_ids.as_deref())
        .await
    {
        Ok(report) => Ok(Json(serde_json::to_value(report).unwrap_or_default())),
        Err(crate::events::RedriveError::UnknownPlugin(p)) => Err(ApiError::UnknownPlugin(p)),
        Err(e) => {
            tracing::error!(error = %e, "redrive failed");
            Err(ApiError::Internal {
                code: "storage_error",
                request_id: String::new(),
            })
        }
    }
}

fn deploy_error(e: crate::deploy::DeployError) -> ApiError {
    let (status, code) = e.status_and_code();
    if status >= 500 {
        tracing::error!(error = %e, "deploy failed");
    } else {
        tracing::warn!(error = %e, "deploy refused; the running version keeps serving");
    }
    ApiError::Refused {
        status,
        code,
        message: e.to_string(),
    }
}
