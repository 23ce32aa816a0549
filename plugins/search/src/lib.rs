//! The search read model: the shop as buyers search it and sellers and staff
//! list it, built only from other contexts' events (WRITE → events → READ).
//! Three views, fully denormalized, rebuildable by replaying the sources'
//! outboxes, with no business logic: rows copy and sum what events say.
//!
//! - `product_search_view` (+ a portable word index) from products' and
//!   inventory's events: `GET /search/products`.
//! - `order_list_view` from orders' and shipping's events: `GET /search/orders`.
//! - `seller_dashboard_view` (+ per day and per product) from payments'
//!   money, split between sellers by the orders' lines:
//!   `GET /search/sellers/{seller_id}/dashboard`.
//!
//! A read model emits no events. Events from different sources arrive in no
//! particular order, so each view keeps what it needs until the rest arrives
//! and no handler fails for ordering.
mod domain;
mod orders;
mod products;
mod sellers;
mod store;

use mercato_sdk::prelude::*;

struct Search;

impl Plugin for Search {
    fn manifest() -> Manifest {
        let mut m = Manifest::new("search", env!("CARGO_PKG_VERSION"))
            .read_model()
            .migration(
                "0001_views.sql",
                include_str!("../../../migrations/search/0001_views.sql"),
            )
            .migration(
                "0002_search_terms.sqlite.sql",
                include_str!("../../../migrations/search/0002_search_terms.sqlite.sql"),
            )
            .migration(
                "0002_search_terms.postgres.sql",
                include_str!("../../../migrations/search/0002_search_terms.postgres.sql"),
            )
            .migration(
                "0003_ranking.sql",
                include_str!("../../../migrations/search/0003_ranking.sql"),
            )
            .openapi(include_str!("../openapi.json"));
        for pattern in SUBSCRIPTIONS {
            m = m.subscribe(pattern);
        }
        m
    }

    fn handle_request(req: Request) -> Response {
        Router::new()
            .get("/products", products::search)
            .get("/orders", orders::list)
            .get("/sellers/{seller_id}/dashboard", sellers::dashboard)
            .dispatch(req)
    }

    fn handle_event(event: Event) -> Result<(), Error> {
        match (event.source.as_str(), event.event_type.as_str()) {
            ("products", "ProductPublished") => products::published(&event),
            ("products", "ProductPriceChanged") => products::price_changed(&event),
            ("inventory", "StockLevelChanged") => products::stock_changed(&event),
            ("orders", "OrderPlaced") => {
                let placed: orders::OrderPlaced = events::payload(&event)?;
                orders::placed(&event, &placed)?;
                sellers::order_placed(&event, &placed)
            }
            ("orders", _) => orders::status_changed(&event),
            ("payments", "PaymentCaptured") => sellers::captured(&event),
            ("payments", "PaymentRefunded") => sellers::refunded(&event),
            (
                "shipping",
                "ShipmentCreated" | "ShipmentDispatched" | "ShipmentDelivered" | "ShipmentReturned"
                | "ShipmentLost" | "ShipmentCancelled",
            ) => orders::shipment_reported(&event),
            // Anything else a wildcard brings (a new event type) builds nothing.
            _ => Ok(()),
        }
    }
}

/// What the views are built from.
const SUBSCRIPTIONS: [&str; 6] = [
    "products.*",
    "inventory.StockLevelChanged",
    "orders.*",
    "payments.PaymentCaptured",
    "payments.PaymentRefunded",
    "shipping.*",
];

mercato_sdk::export_plugin!(Search);

#[cfg(test)]
mod tests;
