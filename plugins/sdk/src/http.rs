//! Requests, responses, a small router and JSON error bodies.
use crate::Error;
use crate::bindings::mercato::plugin::types as wit;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A request routed to this plugin; `path` is relative to the plugin's mount point.
#[derive(Debug, Clone)]
pub struct Request {
    /// Upper-case HTTP method.
    pub method: String,
    /// Path below the plugin's mount point, starting with `/`.
    pub path: String,
    /// Raw query string without `?`.
    pub query: String,
    /// Header names are lower case.
    pub headers: Vec<(String, String)>,
    /// Raw body.
    pub body: Vec<u8>,
    params: Vec<(String, String)>,
}

impl Request {
    #[doc(hidden)]
    pub fn from_wit(req: wit::Request) -> Self {
        Request {
            method: req.method,
            path: req.path,
            query: req.query,
            headers: req.headers,
            body: req.body,
            params: Vec::new(),
        }
    }

    /// A request without a body, for native tests of handlers.
    pub fn from_parts(
        method: &str,
        path: &str,
        query: &str,
        headers: Vec<(String, String)>,
    ) -> Self {
        Request {
            method: method.to_owned(),
            path: path.to_owned(),
            query: query.to_owned(),
            headers,
            body: Vec::new(),
            params: Vec::new(),
        }
    }

    /// A path parameter captured by the route (`{id}`); empty if absent.
    pub fn param(&self, name: &str) -> &str {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// A query-string parameter, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == name).then(|| percent_decode(v))
        })
    }

    /// A query parameter the route cannot do without: 400 `missing_<name>`
    /// when it is absent or empty.
    pub fn required_query_param(&self, name: &str) -> Result<String, HttpError> {
        self.query_param(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                HttpError::bad_request(
                    &format!("missing_{name}"),
                    &format!("query parameter {name} is required, e.g. ?{name}=…"),
                )
            })
    }

    /// A header value (names are matched case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON; a malformed body is a 400 `invalid_json`.
    /// A number with a zero fraction (`1500.0`) is an integer, as JSON Schema
    /// counts it, so an integer field takes it.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, HttpError> {
        let invalid = |e: serde_json::Error| {
            HttpError::bad_request("invalid_json", &format!("request body: {e}"))
        };
        match serde_json::from_slice(&self.body) {
            Ok(value) => Ok(value),
            // Only a body that failed on a float is parsed again.
            Err(e) if e.to_string().contains("floating point") => {
                let mut value: serde_json::Value =
                    serde_json::from_slice(&self.body).map_err(invalid)?;
                integral_floats_as_integers(&mut value);
                serde_json::from_value(value).map_err(|_| invalid(e))
            }
            Err(e) => Err(invalid(e)),
        }
    }
}

/// Turns every number with a zero fraction that an `i64` holds into that
/// integer, inside arrays and objects too (JSON Schema counts `1500.0` as an
/// integer; a plugin reading fields one by one calls this on a refusal).
pub fn integral_floats_as_integers(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|_| n.is_f64())
                && f.fract() == 0.0
                && (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&f)
            {
                // Exact: `f` is integral and inside the range.
                *n = serde_json::Number::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats_as_integers),
        Value::Object(map) => map.values_mut().for_each(integral_floats_as_integers),
        _ => {}
    }
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A response. Any 2xx status commits the call's transaction; another
/// status commits only when [`Response::committed`] says so.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
    /// Commit the call's work although the status is not 2xx.
    pub commit: bool,
}

impl Response {
    /// A JSON response.
    pub fn json<T: Serialize>(status: u16, value: &T) -> Self {
        Response {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: serde_json::to_vec(value).unwrap_or_default(),
            commit: false,
        }
    }

    /// An empty response.
    pub fn empty(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            commit: false,
        }
    }

    /// Commits the call's work (its writes and events) whatever the status:
    /// for an answer that is not a success but records what happened, as a
    /// declined card answers 402 with the failed attempt kept. Without it a
    /// non-2xx answer rolls everything back.
    pub fn committed(mut self) -> Self {
        self.commit = true;
        self
    }

    /// `{"error": {"code", "message"}}` with `status`.
    pub fn error(status: u16, code: &str, message: &str) -> Self {
        Response::json(
            status,
            &serde_json::json!({ "error": { "code": code, "message": message } }),
        )
    }

    #[doc(hidden)]
    pub fn into_wit(self) -> wit::Response {
        wit::Response {
            status: self.status,
            headers: self.headers,
            body: self.body,
            commit: self.commit,
        }
    }
}

/// A handler's failure, rendered as a JSON error body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    /// HTTP status (4xx or 5xx).
    pub status: u16,
    /// Stable machine-readable code, e.g. `unknown_sku`.
    pub code: String,
    /// What was wrong, for a human.
    pub message: String,
}

impl HttpError {
    /// An error with any status.
    pub fn new(status: u16, code: &str, message: &str) -> Self {
        HttpError {
            status,
            code: code.to_owned(),
            message: message.to_owned(),
        }
    }
    /// 400.
    pub fn bad_request(code: &str, message: &str) -> Self {
        Self::new(400, code, message)
    }
    /// 404.
    pub fn not_found(code: &str, message: &str) -> Self {
        Self::new(404, code, message)
    }
    /// 409.
    pub fn conflict(code: &str, message: &str) -> Self {
        Self::new(409, code, message)
    }
    /// 422.
    pub fn unprocessable(code: &str, message: &str) -> Self {
        Self::new(422, code, message)
    }
}

impl From<HttpError> for Response {
    fn from(e: HttpError) -> Self {
        Response::error(e.status, &e.code, &e.message)
    }
}

/// Host errors become HTTP errors with the matching status.
impl From<Error> for HttpError {
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid(m) => HttpError::new(400, "invalid", &m),
            Error::NotFound(m) => HttpError::new(404, "not_found", &m),
            Error::Conflict(m) => HttpError::new(409, "conflict", &m),
            Error::Denied(m) => HttpError::new(403, "denied", &m),
            Error::Internal(m) => HttpError::new(500, "internal", &m),
        }
    }
}

/// What handlers return.
pub type HttpResult = Result<Response, HttpError>;

type Handler = fn(&Request) -> HttpResult;

/// Matches method and path patterns such as `/notes/{id}` and calls the handler.
#[derive(Default)]
pub struct Router {
    routes: Vec<(&'static str, &'static str, Handler)>,
}

impl Router {
    /// An empty router.
    pub fn new() -> Self {
        Router::default()
    }

    /// Adds a route for `method`.
    pub fn route(mut self, method: &'static str, pattern: &'static str, handler: Handler) -> Self {
        self.routes.push((method, pattern, handler));
        self
    }

    /// Adds a GET route.
    pub fn get(self, pattern: &'static str, handler: Handler) -> Self {
        self.route("GET", pattern, handler)
    }

    /// Adds a POST route.
    pub fn post(self, pattern: &'static str, handler: Handler) -> Self {
        self.route("POST", pattern, handler)
    }

    /// Adds a PUT route.
    pub fn put(self, pattern: &'static str, handler: Handler) -> Self {
        self.route("PUT", pattern, handler)
    }

    /// Routes `req`: 404 for an unknown path, 405 for a known path with
    /// another method (its `Allow` header lists the path's methods).
    pub fn dispatch(&self, mut req: Request) -> Response {
        let mut allowed: Vec<&str> = Vec::new();
        for (method, pattern, handler) in &self.routes {
            let Some(params) = match_path(pattern, &req.path) else {
                continue;
            };
            if *method == req.method {
                req.params = params;
                return handler(&req).unwrap_or_else(Response::from);
            }
            if !allowed.contains(method) {
                allowed.push(method);
            }
        }
        if !allowed.is_empty() {
            let allow = allowed.join(", ");
            let mut response = Response::error(
                405,
                "method_not_allowed",
                &format!("{} is not allowed here; allowed: {allow}", req.method),
            );
            response.headers.push(("allow".into(), allow));
            response
        } else {
            Response::error(404, "not_found", &format!("no route for {}", req.path))
        }
    }
}

fn match_path(pattern: &str, path: &str) -> Option<Vec<(String, String)>> {
    let mut params = Vec::new();
    let mut pattern_parts = pattern.trim_matches('/').split('/');
    let mut path_parts = path.trim_matches('/').split('/');
    loop {
        match (pattern_parts.next(), path_parts.next()) {
            (None, None) => return Some(params),
            (Some(p), Some(s)) if p.starts_with('{') && p.ends_with('}') && !s.is_empty() => {
                params.push((p[1..p.len() - 1].to_owned(), percent_decode(s)));
            }
            (Some(p), Some(s)) if p == s => {}
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_path_with_another_method_is_a_405_naming_the_allowed_ones() {
        fn ok(_: &Request) -> HttpResult {
            Ok(Response::empty(200))
        }
        let router = Router::new()
            .get("/items", ok)
            .post("/items", ok)
            .get("/items/{id}", ok);
        let request = |method: &str, path: &str| Request {
            method: method.into(),
            path: path.into(),
            query: String::new(),
            headers: Vec::new(),
            body: Vec::new(),
            params: Vec::new(),
        };
        let refused = router.dispatch(request("DELETE", "/items"));
        assert_eq!(refused.status, 405);
        assert!(
            refused
                .headers
                .contains(&("allow".to_owned(), "GET, POST".to_owned()))
        );
        let body: serde_json::Value = serde_json::from_slice(&refused.body).unwrap();
        assert_eq!(body["error"]["code"], "method_not_allowed");
        assert_eq!(router.dispatch(request("GET", "/nope")).status, 404);
        assert_eq!(router.dispatch(request("POST", "/items")).status, 200);
    }

    #[test]
    fn integral_numbers_written_as_floats_are_integers() {
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct Body {
            amount_minor: i64,
            lines: Vec<u32>,
        }
        let request = |body: &str| Request {
            method: "POST".into(),
            path: "/".into(),
            query: String::new(),
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
            params: Vec::new(),
        };
        assert_eq!(
            request(r#"{"amount_minor": 226035547.0, "lines": [1.0, 2]}"#)
                .json::<Body>()
                .unwrap(),
            Body {
                amount_minor: 226_035_547,
                lines: vec![1, 2]
            }
        );
        // A real fraction stays refused, with the first error's message.
        let refused = request(r#"{"amount_minor": 1.5, "lines": []}"#)
            .json::<Body>()
            .unwrap_err();
        assert_eq!(refused.code, "invalid_json");
        assert!(
            refused.message.contains("floating point"),
            "{}",
            refused.message
        );
        let huge = request(r#"{"amount_minor": 1e300, "lines": []}"#).json::<Body>();
        assert!(huge.is_err());
    }

    #[test]
    fn paths_match_with_parameters() {
        assert_eq!(
            match_path("/notes/{id}", "/notes/a%20b"),
            Some(vec![("id".into(), "a b".into())])
        );
        assert_eq!(match_path("/notes", "/notes/"), Some(vec![]));
        assert_eq!(match_path("/notes/{id}", "/notes"), None);
        assert_eq!(match_path("/notes/{id}", "/notes/1/x"), None);
        assert_eq!(match_path("/", ""), Some(vec![]));
    }

    #[test]
    fn percent_decoding_keeps_invalid_escapes() {
        assert_eq!(percent_decode("a%2Fb+c"), "a/b c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
