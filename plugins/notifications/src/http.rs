//! The HTTP handlers: inbox listing, templates and webhook endpoints.
use crate::domain::delivery::DeliveryStatus;
use crate::domain::webhook::{self, EventTypesInput};
use crate::domain::{SUBSCRIBED_EVENT_TYPES, is_subscribed, template};
use crate::store::{self, webhooks};
use mercato_sdk::list::{self, ListQuery};
use mercato_sdk::prelude::*;
use serde::Deserialize;
use serde_json::json;

/// `GET /[?recipient=…&event_type=…]`: notifications newest first by
/// `(created_at, id)`. Without `recipient` it lists everyone's (the merchant's
/// view), those still waiting for their recipient included.
pub fn list_notifications(req: &Request) -> HttpResult {
    let query = ListQuery::parse(req, &["recipient", "event_type"])?;
    let mut listing = store::notification_listing();
    if let Some(recipient) = query.filter("recipient") {
        listing = listing.condition("recipient = $?", recipient.into());
    }
    if let Some(event_type) = query.filter("event_type") {
        listing = listing.condition("event_type = $?", event_type_filter(event_type)?.into());
    }
    query.respond(listing)
}

/// The `event_type` filter: a type this context speaks about, or a 400
/// (a misspelt type would otherwise list nothing, silently).
fn event_type_filter(raw: &str) -> Result<&str, HttpError> {
    if is_subscribed(raw) {
        Ok(raw)
    } else {
        Err(HttpError::bad_request(
            "invalid_event_type",
            &format!(
                "event_type must be one of {}, got `{raw}`",
                SUBSCRIBED_EVENT_TYPES.join(", ")
            ),
        ))
    }
}

/// `GET /templates`: every template, by event type.
pub fn list_templates(_req: &Request) -> HttpResult {
    let templates: Vec<_> = store::templates()?
        .iter()
        .map(store::Template::to_json)
        .collect();
    Ok(Response::json(200, &json!({ "templates": templates })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateBody {
    subject: String,
    body: String,
}

/// `PUT /templates/{event_type}`: replaces a template. Only later
/// notifications use it; recorded ones keep their text.
pub fn put_template(req: &Request) -> HttpResult {
    let event_type = req.param("event_type");
    if !is_subscribed(event_type) {
        return Err(HttpError::not_found(
            "unknown_event_type",
            &format!("notifications has no template for `{event_type}`"),
        ));
    }
    let body: TemplateBody = req.json()?;
    template::check(&body.subject, &body.body)?;
    store::save_template(event_type, &body.subject, &body.body, &clock::now())?;
    let saved = store::template(event_type)?
        .ok_or_else(|| HttpError::from(Error::Internal("template vanished".into())))?;
    Ok(Response::json(200, &saved.to_json()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointBody {
    url: String,
    event_types: EventTypesInput,
}

/// `POST /endpoints`: registers an endpoint. Its signing secret is in this
/// answer only.
pub fn create_endpoint(req: &Request) -> HttpResult {
    let body: EndpointBody = req.json()?;
    webhook::check_url(&body.url)?;
    let event_types = webhook::normalise_event_types(body.event_types)?;
    let id = new_id();
    let secret = webhook::secret_from(&new_id(), &new_id());
    let now = clock::now();
    webhooks::insert_endpoint(
        &webhooks::NewEndpoint {
            id: &id,
            url: &body.url,
            event_types: &event_types,
            secret: &secret,
        },
        &now,
    )?;
    Ok(Response::json(
        201,
        &json!({
            "id": id,
            "url": body.url,
            "event_types": event_types,
            "secret": secret,
            "created_at": now,
        }),
    ))
}

/// `GET /endpoints`: every live endpoint newest first by `(created_at, id)`,
/// without secrets.
pub fn list_endpoints(req: &Request) -> HttpResult {
    let query = ListQuery::parse(req, &[])?;
    let listing = webhooks::endpoint_listing().condition_fixed("disabled_at IS NULL");
    let (rows, has_more) = query.fetch(listing)?;
    let endpoints = rows
        .into_iter()
        .map(|row| webhooks::Endpoint::from_json(row)?.to_json())
        .collect::<Result<Vec<_>, _>>()?;
    Ok(list::page(endpoints, has_more))
}

/// A live endpoint. A deleted (disabled) one is gone from the API, as a
/// deleted object is: 404 on every route, though its row and deliveries are
/// kept and deliveries already queued are still attempted.
fn load_endpoint(id: &str) -> Result<webhooks::Endpoint, HttpError> {
    webhooks::endpoint(id)?
        .filter(|e| e.disabled_at.is_none())
        .ok_or_else(|| {
            HttpError::not_found("unknown_endpoint", &format!("no webhook endpoint {id}"))
        })
}

/// `GET /endpoints/{id}`: one endpoint, without its secret.
pub fn get_endpoint(req: &Request) -> HttpResult {
    Ok(Response::json(
        200,
        &load_endpoint(req.param("id"))?.to_json()?,
    ))
}

/// `DELETE /endpoints/{id}`: deletes the endpoint (keeps it as disabled);
/// events after this get no delivery. Answers the endpoint with its
/// `disabled_at`; afterwards it is 404 like an id never created.
pub fn disable_endpoint(req: &Request) -> HttpResult {
    let mut endpoint = load_endpoint(req.param("id"))?;
    let now = clock::now();
    webhooks::disable_endpoint(&endpoint.id, &now)?;
    endpoint.disabled_at = Some(now);
    Ok(Response::json(200, &endpoint.to_json()?))
}

/// `GET /endpoints/{id}/deliveries[?status=…]`: the endpoint's deliveries
/// newest first by `(created_at, id)`, each with its attempt log.
pub fn list_deliveries(req: &Request) -> HttpResult {
    let query = ListQuery::parse(req, &["status"])?;
    let endpoint = load_endpoint(req.param("id"))?;
    let mut listing = webhooks::delivery_listing(&endpoint.id);
    if let Some(status) = query.filter("status") {
        listing = listing.condition("status = $?", delivery_status(status)?.as_str().into());
    }
    let (mut deliveries, has_more) = query.fetch(listing)?;
    webhooks::attach_attempts(&mut deliveries)?;
    Ok(list::page(deliveries, has_more))
}

/// The `status` filter of deliveries: a stored status, or a 400 naming them.
fn delivery_status(raw: &str) -> Result<DeliveryStatus, HttpError> {
    DeliveryStatus::parse(raw).ok_or_else(|| {
        let all: Vec<&str> = DeliveryStatus::ALL.iter().map(|s| s.as_str()).collect();
        HttpError::bad_request(
            "invalid_status",
            &format!("status must be one of {}, got `{raw}`", all.join(", ")),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_type_filter_takes_subscribed_types_only() {
        assert_eq!(
            event_type_filter("orders.OrderPaid"),
            Ok("orders.OrderPaid")
        );
        for raw in ["", "OrderPaid", "orders.OrderShipped", "*"] {
            let e = event_type_filter(raw).unwrap_err();
            assert_eq!((e.status, e.code.as_str()), (400, "invalid_event_type"));
            assert!(e.message.contains("orders.OrderPlaced"), "{}", e.message);
        }
    }

    #[test]
    fn the_status_filter_takes_the_stored_spellings_only() {
        for status in DeliveryStatus::ALL {
            assert_eq!(delivery_status(status.as_str()), Ok(status));
        }
        for raw in ["", "delivered", "DEAD"] {
            let e = delivery_status(raw).unwrap_err();
            assert_eq!((e.status, e.code.as_str()), (400, "invalid_status"));
            assert!(
                e.message.contains("PENDING, DELIVERED, FAILED"),
                "{}",
                e.message
            );
        }
    }
}
