//! The HTTP handlers: inbox listing, templates and webhook endpoints.
use crate::domain::webhook::{self, EventTypesInput};
use crate::domain::{is_subscribed, parse_limit, template};
use crate::store::{self, webhooks};
use mercato_sdk::prelude::*;
use serde::Deserialize;
use serde_json::json;

/// `GET /?recipient=…&limit=…`: the recipient's notifications, newest first.
pub fn list_notifications(req: &Request) -> HttpResult {
    let recipient = req.required_query_param("recipient")?;
    let limit = parse_limit(req.query_param("limit").as_deref())?;
    let notifications = store::notifications_of(&recipient, limit)?;
    Ok(Response::json(
        200,
        &json!({ "notifications": notifications }),
    ))
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

/// `GET /endpoints`: every endpoint, disabled ones included, without secrets.
pub fn list_endpoints(_req: &Request) -> HttpResult {
    let endpoints = webhooks::endpoints()?
        .iter()
        .map(webhooks::Endpoint::to_json)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Response::json(200, &json!({ "endpoints": endpoints })))
}

fn load_endpoint(id: &str) -> Result<webhooks::Endpoint, HttpError> {
    webhooks::endpoint(id)?.ok_or_else(|| {
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

/// `DELETE /endpoints/{id}`: disables the endpoint; events after this get no
/// delivery. Idempotent: disabling again keeps the first `disabled_at`.
pub fn disable_endpoint(req: &Request) -> HttpResult {
    let endpoint = load_endpoint(req.param("id"))?;
    webhooks::disable_endpoint(&endpoint.id, &clock::now())?;
    Ok(Response::json(
        200,
        &load_endpoint(&endpoint.id)?.to_json()?,
    ))
}

/// `GET /endpoints/{id}/deliveries?limit=…`: deliveries newest first, each
/// with its attempt log.
pub fn list_deliveries(req: &Request) -> HttpResult {
    let endpoint = load_endpoint(req.param("id"))?;
    let limit = parse_limit(req.query_param("limit").as_deref())?;
    let deliveries = webhooks::deliveries_of(&endpoint.id, limit)?;
    Ok(Response::json(200, &json!({ "deliveries": deliveries })))
}
