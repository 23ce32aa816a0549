//! `/admin/keys`: the merchant's API keys (see `keys`). A key is shown once,
//! in the answer that creates it.
use super::error::ApiError;
use crate::app::App;
use crate::keys::{KeyError, KeyInfo, KeyKind};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateKey {
    kind: KeyKind,
    #[serde(default)]
    name: String,
}

fn shown(info: &KeyInfo) -> Value {
    let mut value = serde_json::to_value(info).unwrap_or_default();
    value["object"] = "api_key".into();
    value
}

fn refused(e: KeyError) -> ApiError {
    match e {
        KeyError::Invalid(message) => ApiError::BadRequest("invalid_key_request", message),
        KeyError::NotFound(_) => ApiError::Refused {
            status: 404,
            code: "not_found",
            message: e.to_string(),
        },
        KeyError::Io { .. } | KeyError::Corrupt { .. } => {
            tracing::error!(error = %e, "storing API keys failed");
            ApiError::Internal {
                code: "storage_error",
                request_id: String::new(),
            }
        }
    }
}

pub(super) async fn create(
    State(app): State<App>,
    body: Result<Json<CreateKey>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(body) = body.map_err(|e| match super::error::body_timeout(&e) {
        Some(timeout) => ApiError::RequestTimeout(timeout),
        None => ApiError::BadRequest("invalid_json", e.body_text()),
    })?;
    let (info, key) = app.keys().create(body.kind, &body.name).map_err(refused)?;
    tracing::info!(id = %info.id, kind = ?info.kind, "API key created");
    let mut answer = shown(&info);
    answer["key"] = key.into();
    Ok((StatusCode::CREATED, Json(answer)))
}

pub(super) async fn list(State(app): State<App>) -> Json<Value> {
    let data: Vec<Value> = app.keys().list().iter().map(shown).collect();
    Json(json!({ "object": "list", "data": data, "has_more": false }))
}

pub(super) async fn revoke(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let info = app.keys().revoke(&id).map_err(refused)?;
    tracing::info!(id = %info.id, "API key revoked");
    Ok(Json(shown(&info)))
}
