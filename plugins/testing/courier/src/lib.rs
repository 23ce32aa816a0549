//! Test plugin for the outbound capability: `POST /send` queues a request
//! (and records it, so a test sees that both commit or neither), and every
//! delivery report the host hands back is stored in `reports`.
use mercato_sdk::outbound::{self, Outgoing};
use mercato_sdk::prelude::*;
use serde::Deserialize;
use serde_json::json;

/// The plugin.
pub struct Courier;

impl Plugin for Courier {
    fn manifest() -> Manifest {
        Manifest::new("courier", env!("CARGO_PKG_VERSION")).migration(
            "0001_courier.sql",
            include_str!("../migrations/0001_courier.sql"),
        )
    }

    fn handle_request(req: Request) -> Response {
        Router::new()
            .post("/send", send)
            .get("/send", send_while_reading)
            .get("/reports", reports)
            .dispatch(req)
    }

    fn handle_event(event: Event) -> Result<(), Error> {
        let Some(report) = outbound::attempt(&event) else {
            return Ok(());
        };
        let r = report?;
        db::execute(
            "INSERT INTO reports (key, attempt, outcome, status, error, duration_ms, response_body) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                r.key.as_str().into(),
                i64::from(r.attempt).into(),
                r.outcome.as_str().into(),
                r.status.map(i64::from).into(),
                r.error.clone().into(),
                (r.duration_ms as i64).into(),
                r.response_body.as_str().into(),
            ],
        )?;
        Ok(())
    }
}

#[derive(Deserialize)]
struct SendBody {
    url: String,
    key: String,
    #[serde(default = "post")]
    method: String,
    #[serde(default)]
    headers: Vec<(String, String)>,
    #[serde(default)]
    body: String,
    /// Repeat the body this many times (large bodies without large requests).
    #[serde(default)]
    repeat: Option<usize>,
    /// `"error"`: fail the call after queueing, so nothing may be sent.
    #[serde(default)]
    then: Option<String>,
}

fn post() -> String {
    "POST".into()
}

fn refused(e: Error) -> HttpError {
    match e {
        Error::Denied(m) => HttpError::new(403, "denied", &m),
        Error::Invalid(m) => HttpError::unprocessable("invalid", &m),
        other => HttpError::new(500, "internal", &format!("{other:?}")),
    }
}

fn send(req: &Request) -> HttpResult {
    let b: SendBody = req.json()?;
    db::execute(
        "INSERT INTO sent (key, url) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        &[b.key.as_str().into(), b.url.as_str().into()],
    )?;
    let body = b.body.repeat(b.repeat.unwrap_or(1)).into_bytes();
    let request = Outgoing {
        method: b.method,
        url: b.url,
        headers: b.headers,
        body,
    };
    outbound::send(request, &b.key).map_err(refused)?;
    if b.then.as_deref() == Some("error") {
        return Err(HttpError::new(500, "asked_to_fail", "failing after send"));
    }
    Ok(Response::json(201, &json!({ "key": b.key })))
}

fn send_while_reading(_req: &Request) -> HttpResult {
    outbound::send(
        Outgoing::post_json("https://example.com/", Vec::new()),
        "read-only",
    )
    .map_err(refused)?;
    Ok(Response::json(200, &json!({ "sent": true })))
}

fn reports(req: &Request) -> HttpResult {
    let key = req.query_param("key").unwrap_or_default();
    let rows = db::query(
        "SELECT attempt, outcome, status, error, duration_ms, response_body FROM reports \
         WHERE key = $1 ORDER BY attempt",
        &[key.as_str().into()],
    )?;
    let mut out = Vec::new();
    for r in rows.iter() {
        out.push(json!({
            "attempt": r.int("attempt")?,
            "outcome": r.text("outcome")?,
            "status": r.opt_int("status")?,
            "error": r.opt_text("error")?,
            "duration_ms": r.int("duration_ms")?,
            "response_body": r.text("response_body")?,
        }));
    }
    Ok(Response::json(200, &json!({ "reports": out })))
}

#[cfg(feature = "export")]
mercato_sdk::export_plugin!(Courier);
