//! Test plugin: a read model of the `notes` plugin. It records every
//! `notes.NoteCreated` and answers what it has seen, so the tests can rebuild
//! it by replay and compare it row for row. Being a read model, it may not
//! emit (`POST /tally/emit` proves the host refuses).
use mercato_sdk::prelude::*;
use serde_json::json;

/// The plugin.
pub struct Tally;

impl Plugin for Tally {
    fn manifest() -> Manifest {
        Manifest::new("tally", env!("CARGO_PKG_VERSION"))
            .migration(
                "0001_tally.sql",
                include_str!("../migrations/0001_tally.sql"),
            )
            .subscribe("notes.NoteCreated")
            .read_model()
    }

    fn handle_request(req: Request) -> Response {
        Router::new()
            .get("/", seen)
            .post("/emit", emit)
            .dispatch(req)
    }

    fn handle_event(event: Event) -> Result<(), Error> {
        let note: serde_json::Value = events::payload(&event)?;
        db::execute(
            "INSERT INTO seen_notes (id, body, sequence) VALUES ($1, $2, $3)",
            &[
                note["id"].as_str().unwrap_or_default().into(),
                note["body"].as_str().unwrap_or_default().into(),
                (event.sequence as i64).into(),
            ],
        )?;
        Ok(())
    }
}

fn seen(_req: &Request) -> HttpResult {
    let rows = db::query(
        "SELECT id, body, sequence FROM seen_notes ORDER BY sequence",
        &[],
    )?;
    Ok(Response::json(
        200,
        &json!({ "count": rows.len(), "notes": rows.to_json() }),
    ))
}

fn emit(_req: &Request) -> HttpResult {
    events::emit("Tallied", "x", &json!({}))
        .map_err(|e| HttpError::new(403, "denied", &format!("{e:?}")))?;
    Ok(Response::json(201, &json!({})))
}

#[cfg(feature = "export")]
mercato_sdk::export_plugin!(Tally);
