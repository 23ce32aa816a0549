//! `product_search_view` from products' and inventory's events, and
//! `GET /search/products`.
use crate::domain::query::{self, ProductSearch, Sort};
use crate::domain::text::{facet_values, index_terms};
use crate::domain::views::normalize_time;
use crate::sellers;
use crate::store::matching::Key;
use crate::store::products::{self as store, Published, StockLevel};
use mercato_sdk::list::Cursor;
use mercato_sdk::prelude::*;
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// `products.ProductPublished`. Products published before sellers existed
/// carry no `seller_id` (they belong to `default`) and no description.
#[derive(Deserialize)]
struct ProductPublished {
    product_id: String,
    sku: String,
    name: String,
    price_minor: i64,
    currency: String,
    version: i64,
    #[serde(default)]
    attributes: Option<Value>,
    #[serde(default)]
    seller_id: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

/// `products.ProductPriceChanged`.
#[derive(Deserialize)]
struct ProductPriceChanged {
    product_id: String,
    price_minor: i64,
    currency: String,
    version: i64,
    #[serde(default)]
    seller_id: Option<String>,
}

const DEFAULT_SELLER: &str = "default";

/// Adds a published product, its words and attribute values, then splits the
/// payments that waited for its seller.
pub fn published(event: &Event) -> Result<(), Error> {
    let p: ProductPublished = events::payload(event)?;
    let attributes = match p.attributes {
        Some(Value::Object(map)) => Value::Object(map),
        _ => Value::Object(Map::new()),
    };
    let at = normalize_time(&event.occurred_at);
    // A product and its SKU's stock arrive on two streams: with the lock, the
    // later of the two handlers sees what the earlier one committed.
    crate::store::lock_joins()?;
    let inserted = store::insert_product(&Published {
        product_id: &p.product_id,
        sku: &p.sku,
        name: &p.name,
        description: p.description.as_deref(),
        attributes: &attributes,
        seller_id: p.seller_id.as_deref().unwrap_or(DEFAULT_SELLER),
        price_minor: p.price_minor,
        currency: &p.currency,
        version: p.version,
        at: &at,
    })?;
    if !inserted {
        return Ok(());
    }
    store::insert_terms(
        &p.product_id,
        &index_terms(&p.name, p.description.as_deref(), &attributes),
    )?;
    store::insert_attributes(&p.product_id, &facet_values(&attributes))?;
    sellers::sku_known(&p.sku, &at)
}

/// Shows a newer price version (an older or repeated one changes nothing).
pub fn price_changed(event: &Event) -> Result<(), Error> {
    let p: ProductPriceChanged = events::payload(event)?;
    store::change_price(
        &p.product_id,
        p.price_minor,
        &p.currency,
        p.version,
        p.seller_id.as_deref().unwrap_or(DEFAULT_SELLER),
        &normalize_time(&event.occurred_at),
    )?;
    Ok(())
}

/// Records inventory's numbers for the SKU, whether or not its product is
/// known yet (a product published later takes them on insert).
pub fn stock_changed(event: &Event) -> Result<(), Error> {
    let level: StockLevel = events::payload(event)?;
    crate::store::lock_joins()?;
    let sequence = i64::try_from(event.sequence).unwrap_or(i64::MAX);
    store::set_stock(&level, sequence, &normalize_time(&event.occurred_at))?;
    Ok(())
}

/// `GET /search/products`: one page of the match, and facets over all of it.
pub fn search(req: &Request) -> HttpResult {
    let search = query::product_search(&req.query)?;
    let (data, has_more, facets) = page(&search, keys(search.sort))?;
    Ok(Response::json(
        200,
        &json!({ "object": "list", "data": data, "has_more": has_more, "facets": facets }),
    ))
}

const fn key(column: &'static str, descending: bool) -> Key {
    Key { column, descending }
}

/// The order of each sort: every one ends with the id, so it is total.
fn keys(sort: Sort) -> &'static [Key] {
    const RELEVANCE: [Key; 3] = [
        key("tier", false),
        key("created_at", true),
        key("product_id", true),
    ];
    const NEWEST: [Key; 2] = [key("created_at", true), key("product_id", true)];
    const PRICE_ASC: [Key; 2] = [key("price_minor", false), key("product_id", false)];
    const PRICE_DESC: [Key; 2] = [key("price_minor", true), key("product_id", true)];
    match sort {
        Sort::Relevance => &RELEVANCE,
        Sort::Newest => &NEWEST,
        Sort::PriceAsc => &PRICE_ASC,
        Sort::PriceDesc => &PRICE_DESC,
    }
}

/// One page in the sort's order, after the cursor's keys as the list
/// convention pages: `starting_after` continues in the sort's direction,
/// `ending_before` goes back against it (the page is then turned round).
/// The cursor must be a product the query's words find (else a 404).
fn page(search: &ProductSearch, keys: &[Key]) -> Result<(Vec<Value>, bool, Value), HttpError> {
    let (after, forward) = match &search.list.cursor {
        None => (None, true),
        Some(cursor) => {
            let (Cursor::StartingAfter(id) | Cursor::EndingBefore(id)) = cursor;
            let mut values = None;
            search.list.check_cursors(|other| {
                let found = store::cursor_keys(search, keys, other)?;
                let exists = found.is_some();
                if other == id && values.is_none() {
                    values = found;
                }
                Ok(exists)
            })?;
            if search.list.has_both_cursors() {
                // The ranked search pages from one cursor only.
                return Err(HttpError::bad_request(
                    "invalid_cursor",
                    "give starting_after or ending_before, not both",
                ));
            }
            (values, matches!(cursor, Cursor::StartingAfter(_)))
        }
    };
    let (mut data, facets) = store::page_and_facets(search, keys, after, forward, search.limit)?;
    let has_more = data.len() as i64 > search.limit;
    data.truncate(usize::try_from(search.limit).unwrap_or(0));
    if !forward {
        data.reverse();
    }
    Ok((data, has_more, facets))
}
