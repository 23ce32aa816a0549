//! The products bounded context: the catalog. Read-heavy and versioned: every
//! price change appends a `product_pricing` row, and other contexts learn of
//! products only through `ProductPublished` / `ProductPriceChanged`.
mod domain;

use domain::{Invalid, NewProduct, PriceChange};
use mercato_sdk::db::Row;
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

impl From<Invalid> for HttpError {
    fn from(e: Invalid) -> Self {
        HttpError::unprocessable(e.code, &e.message)
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
}

fn create(req: &Request) -> HttpResult {
    let body: CreateBody = req.json()?;
    let product = domain::validate(NewProduct {
        sku: body.sku,
        name: body.name,
        price_minor: body.price_minor,
        currency: body.currency,
        attributes: body.attributes,
    })?;
    let id = new_id();
    let now = clock::now();
    let attributes = Value::Object(product.attributes.clone()).to_string();
    db::execute(
        "INSERT INTO products (id, name, attributes_json, version, created_at, updated_at) VALUES ($1, $2, $3, 1, $4, $4)",
        &[
            id.as_str().into(),
            product.name.as_str().into(),
            attributes.into(),
            now.as_str().into(),
        ],
    )?;
    let inserted = db::execute(
        "INSERT INTO product_variants (id, product_id, sku, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (sku) DO NOTHING",
        &[
            new_id().into(),
            id.as_str().into(),
            product.sku.as_str().into(),
            now.as_str().into(),
        ],
    )?;
    if inserted == 0 {
        return Err(HttpError::conflict(
            "sku_exists",
            &format!("a product with sku {} exists", product.sku),
        ));
    }
    record_price(&id, 1, product.price_minor, &product.currency, &now)?;
    db::execute(
        "INSERT INTO product_publications (id, product_id, version, published_at) VALUES ($1, $2, 1, $3)",
        &[new_id().into(), id.as_str().into(), now.as_str().into()],
    )?;
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
        }),
    )?;
    Ok(Response::json(201, &view(&id)?))
}

fn record_price(
    id: &str,
    version: i64,
    price_minor: i64,
    currency: &str,
    now: &str,
) -> Result<(), Error> {
    db::execute(
        "INSERT INTO product_pricing (id, product_id, version, price_minor, currency, effective_at) VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            new_id().into(),
            id.into(),
            version.into(),
            price_minor.into(),
            currency.into(),
            now.into(),
        ],
    )?;
    Ok(())
}

const PRODUCT_SELECT: &str = "SELECT p.id, p.name, p.attributes_json, p.version, p.created_at, p.updated_at, \
     v.sku, pr.price_minor, pr.currency \
     FROM products p \
     JOIN product_variants v ON v.product_id = p.id \
     JOIN product_pricing pr ON pr.product_id = p.id AND pr.version = p.version";

fn product_json(row: &Row<'_>) -> Result<Value, Error> {
    let attributes: Value =
        serde_json::from_str(row.text("attributes_json")?).unwrap_or(Value::Null);
    Ok(json!({
        "id": row.text("id")?,
        "sku": row.text("sku")?,
        "name": row.text("name")?,
        "price_minor": row.int("price_minor")?,
        "currency": row.text("currency")?,
        "attributes": attributes,
        "version": row.int("version")?,
        "created_at": row.text("created_at")?,
        "updated_at": row.text("updated_at")?,
    }))
}

/// The product with its full price history, or 404.
fn view(id: &str) -> Result<Value, HttpError> {
    let rows = db::query(&format!("{PRODUCT_SELECT} WHERE p.id = $1"), &[id.into()])?;
    let row = rows
        .first()
        .ok_or_else(|| HttpError::not_found("unknown_product", &format!("no product {id}")))?;
    let mut product = product_json(&row)?;
    let history = db::query(
        "SELECT version, price_minor, currency, effective_at FROM product_pricing WHERE product_id = $1 ORDER BY version",
        &[id.into()],
    )?;
    product["price_history"] = history
        .iter()
        .map(|r| {
            Ok(json!({
                "version": r.int("version")?,
                "price_minor": r.int("price_minor")?,
                "currency": r.text("currency")?,
                "effective_at": r.text("effective_at")?,
            }))
        })
        .collect::<Result<Vec<_>, Error>>()?
        .into();
    Ok(product)
}

fn get(req: &Request) -> HttpResult {
    Ok(Response::json(200, &view(req.param("id"))?))
}

fn list(req: &Request) -> HttpResult {
    let rows = match req.query_param("sku") {
        Some(sku) => db::query(&format!("{PRODUCT_SELECT} WHERE v.sku = $1"), &[sku.into()])?,
        None => db::query(&format!("{PRODUCT_SELECT} ORDER BY v.sku LIMIT 500"), &[])?,
    };
    let products = rows
        .iter()
        .map(|r| product_json(&r))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Response::json(200, &json!({ "products": products })))
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
    let changed = db::execute(
        "UPDATE products SET version = $1, updated_at = $2 WHERE id = $3 AND version = $4",
        &[next.into(), now.as_str().into(), id.into(), version.into()],
    )?;
    if changed == 0 {
        return Err(HttpError::conflict(
            "concurrent_change",
            "the product changed meanwhile; retry",
        ));
    }
    let currency = current["currency"].as_str().unwrap_or_default().to_owned();
    record_price(id, next, price_minor, &currency, &now)?;
    events::emit(
        "ProductPriceChanged",
        id,
        &json!({
            "product_id": id,
            "sku": current["sku"],
            "price_minor": price_minor,
            "currency": currency,
            "version": next,
        }),
    )?;
    Ok(Response::json(200, &view(id)?))
}

mercato_sdk::export_plugin!(Products);
