//! Test plugin that misbehaves on request: runs arbitrary SQL (ATTACH, extension
//! loading, writes to host tables, other schemas), loops forever, allocates
//! without bound, panics. Tests prove the host contains each of these.
use mercato_sdk::prelude::*;
use serde::Deserialize;
use serde_json::json;

struct Hostile;

/// A slot the tests overwrite in the built component (same length, padded
/// with spaces) to make a copy of this plugin whose second migration is any
/// SQL (`tests/common` `hostile_with_migration`). While it still holds its
/// dots, the plugin has no second migration.
const MIGRATION_SLOT: &str = include_str!("../migration-slot.sql");

impl Plugin for Hostile {
    fn manifest() -> Manifest {
        let manifest = Manifest::new("hostile", env!("CARGO_PKG_VERSION")).migration(
            "0001_create_loot.sql",
            include_str!("../migrations/0001_create_loot.sql"),
        );
        // Read through black_box so the check is not folded away at compile time.
        let slot: &'static str = std::hint::black_box(MIGRATION_SLOT);
        if slot.ends_with('.') {
            manifest
        } else {
            manifest.migration("0002_patched.sql", slot.trim_end())
        }
    }

    fn handle_request(req: Request) -> Response {
        Router::new()
            .post("/sql", sql)
            .get("/sql", sql)
            .get("/loop", spin)
            .post("/alloc", alloc)
            .get("/panic", |_| panic!("hostile plugin panics on purpose"))
            .get("/stderr", stderr)
            .post("/emit", emit)
            .post("/emit-invalid", emit_invalid)
            .post("/emit-many", emit_many)
            // Every header it is given, as a plugin harvesting credentials would.
            .get("/headers", |req| Ok(Response::json(200, &req.headers)))
            .dispatch(req)
    }
}

#[derive(Deserialize)]
struct Sql {
    sql: String,
}

/// Runs the statement: 200 when the host allowed it (so a successful attack also
/// commits and the test can see the damage), 403 with the host's error when refused.
fn sql(req: &Request) -> HttpResult {
    let statement = match req.query_param("q") {
        Some(q) => q,
        None => req.json::<Sql>()?.sql,
    };
    Ok(match db::query(&statement, &[]) {
        Ok(rows) => Response::json(200, &json!({ "allowed": true, "rows": rows.len() })),
        Err(e) => Response::json(403, &json!({ "allowed": false, "error": format!("{e:?}") })),
    })
}

fn spin(_req: &Request) -> HttpResult {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

#[derive(Deserialize)]
struct Alloc {
    mib: usize,
}

fn alloc(req: &Request) -> HttpResult {
    let Alloc { mib } = req.json()?;
    let mut v: Vec<u8> = Vec::with_capacity(mib << 20);
    v.resize(mib << 20, 1);
    Ok(Response::json(
        200,
        &json!({ "allocated_mib": mib, "check": std::hint::black_box(&v).len() }),
    ))
}

fn stderr(_req: &Request) -> HttpResult {
    eprintln!("hostile plugin writes to stderr");
    println!("hostile plugin writes to stdout");
    Ok(Response::empty(204))
}

fn emit(_req: &Request) -> HttpResult {
    events::emit("Ping", "hostile", &json!({ "from": "hostile" }))?;
    Ok(Response::empty(202))
}

#[derive(Deserialize)]
struct EmitMany {
    count: usize,
    bytes: usize,
}

/// Emits `count` events of `bytes` bytes each: events are held by the host
/// until the call commits. 200 when all were accepted, 403 with the host's error.
fn emit_many(req: &Request) -> HttpResult {
    let EmitMany { count, bytes } = req.json()?;
    let payload = format!("\"{}\"", "x".repeat(bytes.saturating_sub(2)));
    for i in 0..count {
        if let Err(e) =
            mercato_sdk::bindings::mercato::plugin::outbox::emit("Blob", "hostile", &payload, None)
        {
            return Ok(Response::json(
                403,
                &json!({ "accepted": i, "error": format!("{e:?}") }),
            ));
        }
    }
    Ok(Response::json(200, &json!({ "accepted": count })))
}

fn emit_invalid(_req: &Request) -> HttpResult {
    mercato_sdk::bindings::mercato::plugin::outbox::emit("Ping", "hostile", "{not json", None)?;
    Ok(Response::empty(202))
}

mercato_sdk::export_plugin!(Hostile);
