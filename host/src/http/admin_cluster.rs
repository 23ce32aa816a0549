//! `GET /admin/cluster`: the hosts of this host's cluster, their leases, and
//! each stream's owner, position and lag as the databases have them.
use super::error::ApiError;
use crate::app::App;
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

pub(super) async fn cluster(
    State(app): State<App>,
    headers: axum::http::HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let request_id = super::request_id(&headers);
    let internal = |e: &dyn std::fmt::Display| {
        tracing::error!(request_id, error = %e, "reading cluster status failed");
        ApiError::Internal {
            code: "storage_error",
            request_id: request_id.clone(),
        }
    };
    let streams = app
        .relay()
        .stored_status()
        .await
        .map_err(|e| internal(&e))?;
    let Some(cluster) = app.cluster() else {
        // A host alone runs every stream itself.
        let streams: Vec<Value> = streams
            .iter()
            .map(|s| json!({ "subscriber": s.subscriber, "source": s.source, "owner": null, "position": s.position, "head": s.position + s.lag, "lag": s.lag }))
            .collect();
        return Ok(Json(json!({
            "cluster": null, "host": null, "hosts": [], "leases": [], "streams": streams,
        })));
    };
    let (hosts, leases) = cluster.leases().status().await.map_err(|e| internal(&e))?;
    let owner = |name: &str| {
        leases
            .iter()
            .find(|l| l.name == name && l.expires_in_ms > 0)
            .map(|l| l.owner.clone())
    };
    let streams: Vec<Value> = streams
        .iter()
        .map(|s| {
            json!({
                "subscriber": s.subscriber,
                "source": s.source,
                "owner": owner(&format!("stream:{}:{}", s.subscriber, s.source)),
                "position": s.position,
                "head": s.position + s.lag,
                "lag": s.lag,
            })
        })
        .collect();
    Ok(Json(json!({
        "cluster": cluster.config().name,
        "host": cluster.host(),
        "hosts": hosts,
        "leases": leases,
        "streams": streams,
    })))
}
