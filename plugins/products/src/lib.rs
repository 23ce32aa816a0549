//! The products bounded context: the catalog. Read-heavy and versioned: every
//! price change appends a `product_pricing` row, and other contexts learn of
//! products only through `ProductPublished` / `ProductPriceChanged`.
mod domain;
mod store;

use domain::{NewProduct, PriceChange};
use mercato_sdk::list::ListQuery;
use mercato_sdk::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};

struct Products;

impl Plugin for Products {
    fn manifest() -> Manifest {
        Manifest::new("products", env!("CARGO_PKG_VERSION"))
            .migration(
                "0001_catalog.sql",
                include_str!("../../../migrations/products/0001_catalog.sql"),
            )
            .migration(
                "0002_pricing_append_only.sqlite.sql",
                include_str!("../../../migrations/products/0002_pricing_append_only.sqlite.sql"),
            )
            .migration(
                "0002_pricing_append_only.postgres.sql",
                include_str!("../../../migrations/products/0002_pricing_append_only.postgres.sql"),
            )
            .migration(
                "0003_seller_description.sql",
                include_str!("../../../migrations/products/0003_seller_description.sql"),
            )
            .migration(
                "0004_seller_description_checks.sqlite.sql",
                include_str!(
                    "../../../migrations/products/0004_seller_description_checks.sqlite.sql"
                ),
            )
            .migration(
                "0004_seller_description_checks.postgres.sql",
                include_str!(
                    "../../../migrations/products/0004_seller_description_checks.postgres.sql"
                ),
            )
            .openapi(include_str!("../openapi.json"))
    }

    fn handle_request(req: Request) -> Response {
        Router::new()
            .post("/", create)
            .get("/", list)
            .get("/{id}", get)
            .put("/{id}/price", change_price)
            .dispatch(req)
    }
}

#[derive(Deserialize)]
struct CreateBody {
    sku: String,
    name: String,
    price_minor: i64,
    currency: String,
    #[serde(default)]
    attributes: Option<Value>,
    #[serde(default)]
    seller_id: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

fn create(req: &Request) -> HttpResult {
    let body: CreateBody = req.json()?;
    let product = domain::validate(NewProduct {
        sku: body.sku,
        name: body.name,
        price_minor: body.price_minor,
        currency: body.currency,
        attributes: body.attributes,
        seller_id: body.seller_id,
        description: body.description,
    })?;
    let id = new_id();
    let now = clock::now();
    if !store::insert_product(&id, &product, &now)? {
        return Err(HttpError::conflict(
            "sku_exists",
            &format!("a product with sku {} exists", product.sku),
        ));
    }
    store::record_price(&id, 1, product.price_minor, &product.currency, &now)?;
    store::record_publication(&id, &now)?;
    events::emit(
        "ProductPublished",
        &id,
        &json!({
            "product_id": id,
            "sku": product.sku,
            "name": product.name,
            "price_minor": product.price_minor,
            "currency": product.currency,
            "version": 1,
            "attributes": product.attributes,
            "seller_id": product.seller_id,
            "description": product.description,
        }),
    )?;
    Ok(Response::json(201, &view(&id)?))
}

/// The product with its full price history, or 404.
fn view(id: &str) -> Result<Value, HttpError> {
    store::product(id)?
        .ok_or_else(|| HttpError::not_found("unknown_product", &format!("no product {id}")))
}

fn get(req: &Request) -> HttpResult {
    Ok(Response::json(200, &view(req.param("id"))?))
}

/// `GET /products`: the catalog as a list, newest first; `?sku=` narrows it
/// to the product with that SKU (at most one).
fn list(req: &Request) -> HttpResult {
    let query = ListQuery::parse(req, &["sku"])?;
    let mut listing = store::product_listing();
    if let Some(sku) = query.filter("sku") {
        listing = listing.condition("v.sku = $?", sku.into());
    }
    query.respond(listing)
}

#[derive(Deserialize)]
struct PriceBody {
    price_minor: i64,
}

fn change_price(req: &Request) -> HttpResult {
    let body: PriceBody = req.json()?;
    let id = req.param("id");
    let current = view(id)?;
    let version = current["version"].as_i64().unwrap_or_default();
    let price = current["price_minor"].as_i64().unwrap_or_default();
    let PriceChange::NewVersion {
        version: next,
        price_minor,
    } = domain::change_price(version, price, body.price_minor)?
    else {
        return Ok(Response::json(200, &current));
    };
    let now = clock::now();
    // Optimistic concurrency: a concurrent change of the same product loses.
    if !store::advance_version(id, version, next, &now)? {
        return Err(HttpError::conflict(
            "concurrent_change",
            "the product changed meanwhile; retry",
        ));
    }
    let currency = current["currency"].as_str().unwrap_or_default().to_owned();
    store::record_price(id, next, price_minor, &currency, &now)?;
    events::emit(
        "ProductPriceChanged",
        id,
        &json!({
            "product_id": id,
            "sku": current["sku"],
            "price_minor": price_minor,
            "currency": currency,
            "version": next,
            "seller_id": current["seller_id"],
        }),
    )?;
    Ok(Response::json(200, &view(id)?))
}

mercato_sdk::export_plugin!(Products);
