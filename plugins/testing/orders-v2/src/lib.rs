//! Hot-swap test plugin: `orders` 2.0.0. The orders plugin plus one expand
//! migration (`orders.channel`, default `'web'`), shown on `GET /orders/{id}`.
//! Everything else is delegated to the orders plugin unchanged.
use mercato_sdk::prelude::*;
use serde_json::Value;

// The orders plugin's source, compiled into this crate rather than linked as
// the `orders` crate: cargo unifies features across the packages of one build,
// so building `-p orders -p orders-v2` (as host/build.rs does) would turn on
// `orders`'s `export` feature and link its exports next to ours. Here its
// `#[cfg(feature = "export")]` sees this crate's features, which have no
// `export`, so only this crate exports the plugin interface.
#[allow(unexpected_cfgs)]
#[path = "../../../orders/src/lib.rs"]
mod orders;

use orders::Orders;

struct OrdersV2;

impl Plugin for OrdersV2 {
    fn manifest() -> Manifest {
        <Orders as Plugin>::manifest()
            .with_version("2.0.0")
            .migration(
                "0005_add_channel.sql",
                include_str!("../migrations/0005_add_channel.sql"),
            )
    }

    fn handle_request(req: Request) -> Response {
        let single_order = req.method == "GET" && {
            let path = req.path.trim_matches('/');
            !path.is_empty() && !path.contains('/')
        };
        let response = <Orders as Plugin>::handle_request(req);
        if !single_order || response.status != 200 {
            return response;
        }
        with_channel(response).unwrap_or_else(|e| HttpError::from(e).into())
    }

    fn handle_event(event: Event) -> Result<(), Error> {
        <Orders as Plugin>::handle_event(event)
    }
}

/// Adds the order's `channel` to a 200 JSON object carrying its `id`; any other
/// body is returned as it is.
fn with_channel(mut response: Response) -> Result<Response, Error> {
    let Ok(Value::Object(mut order)) = serde_json::from_slice::<Value>(&response.body) else {
        return Ok(response);
    };
    let Some(id) = order.get("id").and_then(Value::as_str).map(str::to_owned) else {
        return Ok(response);
    };
    let rows = db::query("SELECT channel FROM orders WHERE id = $1", &[id.into()])?;
    let Some(row) = rows.first() else {
        return Ok(response);
    };
    order.insert("channel".into(), row.text("channel")?.into());
    response.body = serde_json::to_vec(&order)
        .map_err(|e| Error::Internal(format!("serializing the order: {e}")))?;
    Ok(response)
}

mercato_sdk::export_plugin!(OrdersV2);
