//! The one HTTP error type: every non-plugin error body is
//! `{"error": {"code", "message", "request_id"?}}`.
use super::server::BodyTimeout;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::time::Duration;

/// An error answered by the host itself.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 404: no plugin is mounted at this path.
    #[error("no plugin is mounted at /{0}")]
    UnknownPlugin(String),
    /// 404: no host route matches.
    #[error("no route for {0}")]
    NoRoute(String),
    /// 405: the host route exists, the method does not (the `Allow` header
    /// lists those that do).
    #[error("{0} is not allowed on {1}; the Allow header lists the methods that are")]
    MethodNotAllowed(String, String),
    /// 413: the body exceeds the configured limit.
    #[error("request body exceeds {0} bytes")]
    BodyTooLarge(usize),
    /// 408: the request body did not arrive within `http.body_read_timeout_ms`.
    #[error("the request body did not arrive within {} ms", .0.as_millis())]
    RequestTimeout(Duration),
    /// 400: a malformed header or body.
    #[error("{1}")]
    BadRequest(&'static str, String),
    /// 401: admin route without a valid token.
    #[error("a valid admin token is required (Authorization: Bearer …)")]
    Unauthorized,
    /// 401: a plugin route that needs a key, called without one.
    #[error(
        "this route needs {0} key (Authorization: Bearer …); create one with `mercato keys create`"
    )]
    AuthenticationRequired(&'static str),
    /// 401: a credential that is no key of this shop, or a revoked one.
    #[error("the API key is invalid or revoked")]
    InvalidApiKey,
    /// 403: a valid key whose role may not call this route.
    #[error("a {role} key may not call this route; it needs {need} key")]
    Forbidden {
        /// The caller's kind of key.
        role: &'static str,
        /// What the route needs, with its article.
        need: &'static str,
    },
    /// 409: the same Idempotency-Key is in flight.
    #[error("a request with this Idempotency-Key is still in progress; retry later")]
    KeyInProgress,
    /// 422: the Idempotency-Key was used with a different request.
    #[error("this Idempotency-Key was already used with a different request")]
    KeyReused,
    /// 500: the plugin trapped, timed out or exceeded a limit. Logged in full.
    #[error(
        "the {plugin} plugin failed ({kind}); the host log has details under request id {request_id}"
    )]
    PluginFailed {
        /// Plugin name.
        plugin: String,
        /// trap, timeout, out_of_memory…
        kind: &'static str,
        /// Request id.
        request_id: String,
    },
    /// 500: anything else; details are logged, never sent.
    #[error("internal error; the host log has details under request id {request_id}")]
    Internal {
        /// Stable code.
        code: &'static str,
        /// Request id.
        request_id: String,
    },
    /// 4xx/5xx with its own code: a deploy or rollback that was refused.
    #[error("{message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Stable code.
        code: &'static str,
        /// Why.
        message: String,
    },
    /// 503: the host is shutting down.
    #[error("the host is shutting down")]
    ShuttingDown,
}

impl ApiError {
    /// The answer to a body that `axum::body::to_bytes` could not read within
    /// `limit` bytes: 408 when it came too slowly, else 413.
    pub(super) fn unreadable_body(error: &axum::Error, limit: usize) -> ApiError {
        match body_timeout(error) {
            Some(timeout) => ApiError::RequestTimeout(timeout),
            None => ApiError::BodyTooLarge(limit),
        }
    }

    /// The HTTP status this error answers with.
    pub(super) fn status(&self) -> StatusCode {
        self.status_and_code().0
    }

    fn status_and_code(&self) -> (StatusCode, String) {
        match self {
            ApiError::UnknownPlugin(_) => (StatusCode::NOT_FOUND, "unknown_plugin".into()),
            ApiError::NoRoute(_) => (StatusCode::NOT_FOUND, "not_found".into()),
            ApiError::MethodNotAllowed(..) => {
                (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed".into())
            }
            ApiError::BodyTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large".into()),
            ApiError::RequestTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "request_timeout".into()),
            ApiError::BadRequest(code, _) => (StatusCode::BAD_REQUEST, (*code).into()),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized".into()),
            ApiError::AuthenticationRequired(_) => {
                (StatusCode::UNAUTHORIZED, "authentication_required".into())
            }
            ApiError::InvalidApiKey => (StatusCode::UNAUTHORIZED, "invalid_api_key".into()),
            ApiError::Forbidden { .. } => (StatusCode::FORBIDDEN, "forbidden".into()),
            ApiError::KeyInProgress => (StatusCode::CONFLICT, "idempotency_key_in_use".into()),
            ApiError::KeyReused => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused".into(),
            ),
            ApiError::PluginFailed { kind, .. } => {
                (StatusCode::INTERNAL_SERVER_ERROR, format!("plugin_{kind}"))
            }
            ApiError::Internal { code, .. } => (StatusCode::INTERNAL_SERVER_ERROR, (*code).into()),
            ApiError::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "shutting_down".into()),
            ApiError::Refused { status, code, .. } => (
                StatusCode::from_u16(*status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY),
                (*code).into(),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let mut error = serde_json::json!({ "code": code, "message": self.to_string() });
        if let ApiError::PluginFailed { request_id, .. } | ApiError::Internal { request_id, .. } =
            &self
        {
            error["request_id"] = request_id.clone().into();
        }
        let mut response = (status, Json(serde_json::json!({ "error": error }))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let ApiError::RequestTimeout(_) = self {
            // The rest of the body may still be on its way; the connection cannot be reused.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// The body deadline, when `error` (or one of its causes) is a [`BodyTimeout`].
pub(super) fn body_timeout(error: &(dyn std::error::Error + 'static)) -> Option<Duration> {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if let Some(BodyTimeout(timeout)) = error.downcast_ref() {
            return Some(*timeout);
        }
        cause = error.source();
    }
    None
}
