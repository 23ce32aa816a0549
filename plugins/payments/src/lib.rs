//! The payments bounded context (work in progress).
use mercato_sdk::prelude::*;

struct Context;

impl Plugin for Context {
    fn manifest() -> Manifest {
        Manifest::new("payments", env!("CARGO_PKG_VERSION"))
    }
}

mercato_sdk::export_plugin!(Context);
