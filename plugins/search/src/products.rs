//! `product_search_view` from products' and inventory's events, and
//! `GET /search/products`.
use crate::domain::query::{self, ProductSearch, Sort};
use crate::domain::text::{self, facet_values, index_terms};
use crate::domain::views::normalize_time;
use crate::sellers;
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
    crate::store::sellers::lock_allocation()?;
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
    crate::store::sellers::lock_allocation()?;
    let sequence = i64::try_from(event.sequence).unwrap_or(i64::MAX);
    store::set_stock(&level, sequence, &normalize_time(&event.occurred_at))?;
    Ok(())
}

/// `GET /search/products`: one page of the match, and facets over all of it.
pub fn search(req: &Request) -> HttpResult {
    let search = query::product_search(&req.query)?;
    let matching = store::matching(&search);
    let (data, has_more) = match search.sort {
        Sort::Relevance => relevance_page(&search, &matching)?,
        Sort::Newest => sorted_page(&search, &matching, "created_at", true)?,
        Sort::PriceAsc => sorted_page(&search, &matching, "price_minor", false)?,
        Sort::PriceDesc => sorted_page(&search, &matching, "price_minor", true)?,
    };
    let facets = store::facets(&matching)?;
    Ok(Response::json(
        200,
        &json!({ "object": "list", "data": data, "has_more": has_more, "facets": facets }),
    ))
}

fn unknown_cursor(id: &str) -> HttpError {
    HttpError::bad_request("invalid_cursor", &format!("no object `{id}` in this list"))
}

/// Relevance needs every match ranked (ranking is per query): the matches'
/// ids, names and times are read, ordered by [`text::by_relevance`], and the
/// page cut around the cursor, which must be a product of this match.
fn relevance_page(
    search: &ProductSearch,
    matching: &crate::store::Sql,
) -> Result<(Vec<Value>, bool), HttpError> {
    let ranked = text::by_relevance(&search.words, store::candidates(matching)?);
    let ids: Vec<String> = ranked.into_iter().map(|c| c.product_id).collect();
    let limit = usize::try_from(search.limit).unwrap_or(1);
    let (start, end, has_more) = query::window(&ids, search.cursor.as_ref(), limit)
        .ok_or_else(|| unknown_cursor(cursor_id(search.cursor.as_ref())))?;
    Ok((store::by_ids(&ids[start..end])?, has_more))
}

fn cursor_id(cursor: Option<&Cursor>) -> &str {
    match cursor {
        Some(Cursor::StartingAfter(id) | Cursor::EndingBefore(id)) => id,
        None => "",
    }
}

/// Price and newest orders page in SQL, after the cursor's (key, id) as the
/// list convention does: `starting_after` continues in the sort's direction,
/// `ending_before` goes back against it (the page is then turned round).
fn sorted_page(
    search: &ProductSearch,
    matching: &crate::store::Sql,
    column: &str,
    descending: bool,
) -> Result<(Vec<Value>, bool), HttpError> {
    let (after, forward) = match &search.cursor {
        None => (None, true),
        Some(cursor) => {
            let id = cursor_id(Some(cursor));
            let key = store::sort_key(id, column)?.ok_or_else(|| unknown_cursor(id))?;
            (
                Some((key, id.to_owned())),
                matches!(cursor, Cursor::StartingAfter(_)),
            )
        }
    };
    let mut data = store::sorted_page(
        matching.clone(),
        column,
        descending == forward,
        after,
        search.limit,
    )?;
    let has_more = data.len() as i64 > search.limit;
    data.truncate(usize::try_from(search.limit).unwrap_or(0));
    if !forward {
        data.reverse();
    }
    Ok((data, has_more))
}
