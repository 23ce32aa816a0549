//! Test plugin: writes notes and emits `NoteCreated`. The request can ask the
//! handler to fail after writing (`"then": "error" | "trap"`), so tests can prove
//! that a failed call leaves neither row nor event.
use mercato_sdk::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};

/// The plugin; other components can wrap it (see `plugins/testing/`).
pub struct Notes;

impl Plugin for Notes {
    fn manifest() -> Manifest {
        Manifest::new("notes", env!("CARGO_PKG_VERSION")).migration(
            "0001_create_notes.sql",
            include_str!("../migrations/0001_create_notes.sql"),
        )
    }

    fn handle_request(req: Request) -> Response {
        Router::new()
            .post("/notes", create)
            .post("/notes/bulk", bulk)
            .get("/notes", count)
            .get("/notes/{id}", get)
            .dispatch(req)
    }
}

#[derive(Deserialize)]
struct NewNote {
    id: String,
    body: String,
    #[serde(default)]
    then: Option<String>,
    #[serde(default)]
    delay_ms: Option<u64>,
    /// Keeps the call busy this long after writing (tests of in-flight calls).
    #[serde(default)]
    busy_ms: Option<u64>,
    /// Passed through to subscribers in the event payload (see the audit plugin).
    #[serde(default)]
    audit: Option<Value>,
}

fn create(req: &Request) -> HttpResult {
    let note: NewNote = req.json()?;
    if note.id.is_empty() {
        return Err(HttpError::unprocessable(
            "invalid_id",
            "id must not be empty",
        ));
    }
    insert(&note.id, &note.body)?;
    let payload = json!({ "id": note.id, "body": note.body, "audit": note.audit });
    match note.delay_ms {
        Some(ms) => events::emit_after("NoteCreated", &note.id, &payload, ms)?,
        None => events::emit("NoteCreated", &note.id, &payload)?,
    }
    if let Some(ms) = note.busy_ms {
        let until = clock::now_millis() + ms;
        while clock::now_millis() < until {}
    }
    match note.then.as_deref() {
        Some("error") => Err(HttpError::new(
            500,
            "planned_failure",
            "failing after the write",
        )),
        Some("trap") => panic!("planned trap after the write"),
        _ => Ok(Response::json(201, &json!({ "id": note.id }))),
    }
}

fn insert(id: &str, body: &str) -> Result<(), HttpError> {
    let changed = db::execute(
        "INSERT INTO notes (id, body, created_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
        &[id.into(), body.into(), clock::now().into()],
    )?;
    if changed == 0 {
        return Err(HttpError::conflict(
            "note_exists",
            &format!("note {id} exists"),
        ));
    }
    Ok(())
}

#[derive(Deserialize)]
struct Bulk {
    prefix: String,
    count: u32,
}

fn bulk(req: &Request) -> HttpResult {
    let bulk: Bulk = req.json()?;
    for i in 0..bulk.count {
        let id = format!("{}-{i:05}", bulk.prefix);
        insert(&id, "bulk")?;
        events::emit(
            "NoteCreated",
            &id,
            &json!({ "id": id, "body": "bulk", "n": i }),
        )?;
    }
    Ok(Response::json(201, &json!({ "created": bulk.count })))
}

fn get(req: &Request) -> HttpResult {
    let rows = db::query(
        "SELECT id, body, created_at FROM notes WHERE id = $1",
        &[req.param("id").into()],
    )?;
    let row = rows.first().ok_or_else(|| {
        HttpError::not_found("note_not_found", &format!("no note {}", req.param("id")))
    })?;
    Ok(Response::json(
        200,
        &json!({ "id": row.text("id")?, "body": row.text("body")?, "created_at": row.text("created_at")? }),
    ))
}

fn count(_req: &Request) -> HttpResult {
    let rows = db::query("SELECT COUNT(*) AS n FROM notes", &[])?;
    let n = rows.first().map(|r| r.int("n")).transpose()?.unwrap_or(0);
    Ok(Response::json(200, &json!({ "count": n })))
}

#[cfg(feature = "export")]
mercato_sdk::export_plugin!(Notes);
