//! The notifications bounded context: tells buyers what happened to their
//! orders (in-app inbox messages rendered from editable templates) and tells
//! the shop's partners (signed webhooks sent through the host's outbound
//! outbox, with every attempt logged).
//!
//! A read-side context: it consumes orders, payments and shipping events and
//! emits none. Payment events name only the order, so the buyer is learned
//! from any event carrying both (`order_recipients`); a message whose buyer
//! is not known yet waits and is sent as soon as it is.
//!
//! Routes (mounted at `/notifications`): `GET /[?recipient=&event_type=]`,
//! `GET /templates`, `PUT /templates/{event_type}`, `POST /endpoints`,
//! `GET /endpoints`, `GET /endpoints/{id}`, `DELETE /endpoints/{id}`,
//! `GET /endpoints/{id}/deliveries`. Events: see `docs/architecture/saga.md`.
mod domain;
mod events;
mod http;
mod store;

use domain::SUBSCRIBED_EVENT_TYPES;
use mercato_sdk::prelude::*;

/// The plugin.
pub struct Notifications;

impl Plugin for Notifications {
    fn manifest() -> Manifest {
        let mut manifest = Manifest::new("notifications", env!("CARGO_PKG_VERSION"))
            .migration(
                "0001_notifications.sql",
                include_str!("../../../migrations/notifications/0001_notifications.sql"),
            )
            .migration(
                "0002_append_only.sqlite.sql",
                include_str!("../../../migrations/notifications/0002_append_only.sqlite.sql"),
            )
            .migration(
                "0002_append_only.postgres.sql",
                include_str!("../../../migrations/notifications/0002_append_only.postgres.sql"),
            )
            .migration(
                "0003_default_templates.sql",
                include_str!("../../../migrations/notifications/0003_default_templates.sql"),
            )
            .migration(
                "0004_list_indexes.sql",
                include_str!("../../../migrations/notifications/0004_list_indexes.sql"),
            )
            .openapi(include_str!("../openapi.json"));
        // Delivery reports (`outbound.DeliveryAttempted`) need no subscription:
        // the host sends a plugin the reports of its own requests.
        for event_type in SUBSCRIBED_EVENT_TYPES {
            manifest = manifest.subscribe(event_type);
        }
        manifest
    }

    fn handle_request(req: Request) -> Response {
        Router::new()
            .get("/", http::list_notifications)
            .get("/templates", http::list_templates)
            .put("/templates/{event_type}", http::put_template)
            .post("/endpoints", http::create_endpoint)
            .get("/endpoints", http::list_endpoints)
            .get("/endpoints/{id}", http::get_endpoint)
            .route("DELETE", "/endpoints/{id}", http::disable_endpoint)
            .get("/endpoints/{id}/deliveries", http::list_deliveries)
            .dispatch(req)
    }

    fn handle_event(event: Event) -> Result<(), Error> {
        events::handle(&event)
    }
}

mercato_sdk::export_plugin!(Notifications);
