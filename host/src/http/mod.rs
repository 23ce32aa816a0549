//! The HTTP gateway (axum): plugin routes, host routes, admin API.
//!
//! [`app`] builds the router (tests drive it directly); [`serve`] runs it on a
//! listener with the `[http]` limits (see `server`) and shuts down gracefully:
//! in-flight calls finish, then event routing stops.
mod access;
mod admin;
mod admin_cluster;
mod admin_keys;
mod console;
mod error;
mod gateway;
mod openapi;
mod openapi_admin;
mod server;

pub use error::ApiError;

use crate::app::App;
use crate::trace::TraceContext;
use axum::Router;
use axum::http::{HeaderMap, HeaderName, Uri};
use axum::routing::{any, get};
use std::time::Duration;
use tokio::net::TcpListener;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tracing::Instrument;

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

tokio::task_local! {
    /// The trace context of the request being served (see [`request_span`]).
    static REQUEST_TRACE: TraceContext;
}

/// Serves a request in its `request` span, which continues the client's
/// `traceparent` (or starts a trace) and is the parent of the plugin call:
/// the trace id then names every line logged for the request, and every
/// span and event the call makes. The path only, as a query may carry a
/// client secret. The parent is set before the span is first entered, the
/// moment its exported form is made.
async fn request_span(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let (span, parent) = {
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
        let span = tracing::info_span!(
            "request",
            method = %req.method(),
            path = req.uri().path(),
            request_id = header(REQUEST_ID.as_str()).unwrap_or_default(),
            trace_id = tracing::field::Empty,
        );
        (span, header("traceparent").and_then(TraceContext::parse))
    };
    let trace = crate::trace::enter(&span, parent);
    REQUEST_TRACE
        .scope(trace, next.run(req).instrument(span))
        .await
}

/// The trace context of the request this task serves, if any.
fn request_trace() -> Option<TraceContext> {
    REQUEST_TRACE.try_with(|trace| *trace).ok()
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
        .route("/admin/orders/{id}/timeline", get(admin::order_timeline))
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
        .merge(console::routes(app.clone()))
        .route("/{plugin}", any(gateway::plugin_root))
        .route("/{plugin}/", any(gateway::plugin_root))
        .route("/{plugin}/{*rest}", any(gateway::plugin_path))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(no_route)
        .with_state(app)
        // tower-http's request and response lines go in the request's span.
        .layer(
            TraceLayer::new_for_http().make_span_with(
                |_: &axum::http::Request<axum::body::Body>| tracing::Span::current(),
            ),
        )
        // Every line logged while serving a request names it and its trace:
        // its id is set (outermost layer) before this span opens.
        .layer(axum::middleware::from_fn(request_span))
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
