//! Benchmark plugin: answers `200 {}` without touching its database or emitting
//! anything, so a call costs only what the host adds (instantiate, call, the
//! unit of work's empty transaction). `host/benches/` measures it against the
//! same work done natively.
use mercato_sdk::prelude::*;
use serde_json::json;

struct Noop;

impl Plugin for Noop {
    fn manifest() -> Manifest {
        Manifest::new("noop", env!("CARGO_PKG_VERSION"))
    }

    fn handle_request(req: Request) -> Response {
        Router::new().post("/", ok).get("/", ok).dispatch(req)
    }
}

fn ok(_req: &Request) -> HttpResult {
    Ok(Response::json(200, &json!({})))
}

mercato_sdk::export_plugin!(Noop);
