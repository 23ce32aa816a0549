//! Test plugin: records every event it handles. An event's payload can script
//! failures under `"audit"`: `{"fail_times": n}` fails the first n attempts,
//! `{"always_fail": true}` never succeeds, `{"trap": true}` panics,
//! `{"echo_bytes": n}` emits an `Echoed` event carrying n bytes.
use mercato_sdk::prelude::*;
use serde::Deserialize;
use serde_json::json;

/// The plugin; other components can wrap it (see `plugins/testing/`).
pub struct Audit;

#[derive(Deserialize, Default)]
struct Script {
    #[serde(default)]
    fail_times: u32,
    #[serde(default)]
    always_fail: bool,
    #[serde(default)]
    trap: bool,
    #[serde(default)]
    echo_bytes: usize,
}

#[derive(Deserialize)]
struct Payload {
    #[serde(default)]
    audit: Option<Script>,
}

impl Plugin for Audit {
    fn manifest() -> Manifest {
        Manifest::new("audit", env!("CARGO_PKG_VERSION"))
            .subscribe("notes.*")
            .subscribe("hostile.Ping")
            .migration(
                "0001_create_seen.sqlite.sql",
                include_str!("../migrations/0001_create_seen.sqlite.sql"),
            )
            .migration(
                "0001_create_seen.postgres.sql",
                include_str!("../migrations/0001_create_seen.postgres.sql"),
            )
    }

    fn handle_request(req: Request) -> Response {
        Router::new().get("/seen", seen).dispatch(req)
    }

    fn handle_event(event: Event) -> Result<(), Error> {
        let script = events::payload::<Payload>(&event)?
            .audit
            .unwrap_or_default();
        if script.trap {
            panic!("planned trap in handler for {}", event.id);
        }
        if script.always_fail || event.attempt <= script.fail_times {
            return Err(Error::Internal(format!(
                "planned failure, attempt {}",
                event.attempt
            )));
        }
        if script.echo_bytes > 0 {
            events::emit(
                "Echoed",
                &event.id,
                &json!({ "padding": "x".repeat(script.echo_bytes) }),
            )?;
        }
        db::execute(
            "INSERT INTO seen (event_id, source, event_type, sequence, attempt, payload) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                event.id.as_str().into(),
                event.source.as_str().into(),
                event.event_type.as_str().into(),
                (event.sequence as i64).into(),
                event.attempt.into(),
                event.payload.as_str().into(),
            ],
        )?;
        Ok(())
    }
}

fn seen(req: &Request) -> HttpResult {
    let rows = match req.query_param("source") {
        Some(source) => db::query(
            "SELECT event_id, source, event_type, sequence, attempt FROM seen WHERE source = $1 ORDER BY n",
            &[source.into()],
        )?,
        None => db::query(
            "SELECT event_id, source, event_type, sequence, attempt FROM seen ORDER BY n",
            &[],
        )?,
    };
    let events = rows
        .iter()
        .map(|r| {
            Ok(json!({
                "event_id": r.text("event_id")?,
                "source": r.text("source")?,
                "event_type": r.text("event_type")?,
                "sequence": r.int("sequence")?,
                "attempt": r.int("attempt")?,
            }))
        })
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(Response::json(200, &json!({ "events": events })))
}

#[cfg(feature = "export")]
mercato_sdk::export_plugin!(Audit);
