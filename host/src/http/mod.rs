//! The HTTP gateway (axum): plugin routes, host routes, admin API.
//!
//! [`app`] builds the router (tests drive it directly); [`serve`] runs it on a
//! listener with the `[http]` limits (see `server`) and shuts down gracefully:
//! in-flight calls finish, then event routing stops.
mod access;
mod admin;
mod admin_cluster;
mod admin_keys;
mod error;
mod gateway;
mod openapi;
mod openapi_admin;
mod server;

pub use error::ApiError;

use crate::app::App;
use axum::Router;
use axum::http::{HeaderMap, HeaderName, Uri};
use axum::routing::{any, get};
use std::time::Duration;
use tokio::net::TcpListener;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client-chosen `x-request-id` the host keeps.
const MAX_REQUEST_ID: usize = 128;

/// A client's `x-request-id` is echoed and named on every log line of its
/// request, so only a short one of visible ASCII is kept; another is dropped
/// and the host makes its own. A hostile id cannot then bloat each line.
async fn drop_unfit_request_id(mut req: axum::extract::Request) -> axum::extract::Request {
    let fit = req.headers().get(REQUEST_ID).is_none_or(|id| {
        id.len() <= MAX_REQUEST_ID && id.as_bytes().iter().all(u8::is_ascii_graphic)
    });
    if !fit {
        req.headers_mut().remove(REQUEST_ID);
    }
    req
}

fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

async fn no_route(uri: Uri) -> ApiError {
    ApiError::NoRoute(uri.path().to_owned())
}

/// A host route asked with a method it does not take: a JSON error, with
/// the `Allow` header axum adds.
async fn method_not_allowed(method: axum::http::Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed(method.to_string(), uri.path().to_owned())
}

/// The complete router for `host`.
pub fn app(app: App) -> Router {
    let admin = Router::new()
        .route("/admin/plugins", get(admin::plugins))
        .route("/admin/events", get(admin::events))
        .route("/admin/cluster", get(admin_cluster::cluster))
        .route(
            "/admin/plugins/{name}",
            axum::routing::put(admin::deploy).delete(admin::remove),
        )
        .route(
            "/admin/plugins/{name}/rollback",
            axum::routing::post(admin::rollback),
        )
        .route("/admin/plugins/{name}/versions", get(admin::versions))
        .route(
            "/admin/plugins/{name}/wipe",
            axum::routing::post(admin::wipe),
        )
        .route(
            "/admin/plugins/{name}/rebuild",
            axum::routing::post(admin::start_rebuild).get(admin::rebuild_status),
        )
        .route(
            "/admin/keys",
            get(admin_keys::list).post(admin_keys::create),
        )
        .route(
            "/admin/keys/{id}",
            axum::routing::delete(admin_keys::revoke),
        )
        .route(
            "/admin/events/dead-letters/redrive",
            axum::routing::post(admin::redrive),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            admin::require_admin,
        ));
    Router::new()
        .route("/healthz", get(admin::healthz))
        .route("/readyz", get(admin::readyz))
        .route("/metrics", get(admin::metrics))
        .route("/openapi.json", get(openapi::openapi))
        .merge(admin)
        .route("/{plugin}", any(gateway::plugin_root))
        .route("/{plugin}/", any(gateway::plugin_root))
        .route("/{plugin}/{*rest}", any(gateway::plugin_path))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(no_route)
        .with_state(app)
        // Every line logged while serving a request names it: its id is
        // set (outermost layer) before this span opens. The path only, as a
        // query may carry a client secret.
        .layer(TraceLayer::new_for_http().make_span_with(
            |req: &axum::http::Request<axum::body::Body>| {
                tracing::info_span!(
                    "request",
                    method = %req.method(),
                    path = req.uri().path(),
                    request_id = req
                        .headers()
                        .get(REQUEST_ID)
                        .and_then(|id| id.to_str().ok())
                        .unwrap_or_default(),
                )
            },
        ))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(axum::middleware::map_request(drop_unfit_request_id))
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains in-flight
/// requests (up to the configured grace period) and stops event routing.
pub async fn serve(
    app: App,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let grace = Duration::from_millis(app.config().shutdown_grace_ms);
    server::run(
        self::app(app.clone()),
        listener,
        &app.config().http,
        grace,
        shutdown,
    )
    .await;
    app.shutdown().await;
    Ok(())
}
