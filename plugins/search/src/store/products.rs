//! `product_search_view`, its word index (`product_search_terms`), its
//! attribute values (`product_search_attributes`) and the stock levels
//! inventory tells (`search_stock_levels`).
use super::matching::{Key, Matched, beyond, order_by};
use super::{ROWS_PER_INSERT, later_of_updated_at, values_list};
use crate::domain::query::ProductSearch;
use crate::domain::text::{Term, name_key};
use mercato_sdk::prelude::*;
use serde_json::{Map, Value};

/// A product as `ProductPublished` tells it.
pub struct Published<'a> {
    pub product_id: &'a str,
    pub sku: &'a str,
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub attributes: &'a Value,
    pub seller_id: &'a str,
    pub price_minor: i64,
    pub currency: &'a str,
    pub version: i64,
    pub at: &'a str,
}

/// A stock level as `StockLevelChanged` tells it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct StockLevel {
    pub sku: String,
    pub on_hand: i64,
    pub available: i64,
    pub reserved: i64,
    pub committed: i64,
}

/// Inserts a published product with the stock of its SKU if inventory has
/// told it; `false` when the product (or its SKU) is already in the view.
pub fn insert_product(p: &Published) -> Result<bool, Error> {
    let stock = db::query(
        "SELECT on_hand, available, updated_at FROM search_stock_levels WHERE sku = $1",
        &[p.sku.into()],
    )?;
    let (on_hand, available, stock_at) = match stock.first() {
        Some(row) => (
            Some(row.int("on_hand")?),
            Some(row.int("available")?),
            Some(row.text("updated_at")?.to_owned()),
        ),
        None => (None, None, None),
    };
    let in_stock = available.is_some_and(|a| a > 0);
    // The later of the product's and its stock's times, whichever source's
    // event arrived first: a replay interleaves sources differently.
    let updated_at = match stock_at {
        Some(at) if at.as_str() > p.at => at,
        _ => p.at.to_owned(),
    };
    let changed = db::execute(
        "INSERT INTO product_search_view (product_id, sku, name, name_key, description, attributes, seller_id, \
         price_minor, currency, price_version, on_hand, available, in_stock, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) ON CONFLICT DO NOTHING",
        &[
            p.product_id.into(),
            p.sku.into(),
            p.name.into(),
            name_key(p.name).into(),
            p.description.into(),
            p.attributes.to_string().into(),
            p.seller_id.into(),
            p.price_minor.into(),
            p.currency.into(),
            p.version.into(),
            on_hand.into(),
            available.into(),
            in_stock.into(),
            p.at.into(),
            updated_at.into(),
        ],
    )?;
    Ok(changed == 1)
}

/// Indexes a product's terms, in a few multi-row statements.
pub fn insert_terms(product_id: &str, terms: &[Term]) -> Result<(), Error> {
    for chunk in terms.chunks(ROWS_PER_INSERT) {
        let mut params: Vec<SqlValue> = Vec::with_capacity(chunk.len() * 4);
        for t in chunk {
            params.push(product_id.into());
            params.push(t.term.as_str().into());
            params.push(t.field.as_str().into());
            params.push(t.field.weight().into());
        }
        db::execute(
            &format!(
                "INSERT INTO product_search_terms (product_id, term, field, weight) VALUES {} ON CONFLICT DO NOTHING",
                values_list(chunk.len(), 4)
            ),
            &params,
        )?;
    }
    Ok(())
}

/// Records a product's attribute values for facets and filters.
pub fn insert_attributes(product_id: &str, values: &[(String, String)]) -> Result<(), Error> {
    for chunk in values.chunks(ROWS_PER_INSERT) {
        let mut params: Vec<SqlValue> = Vec::with_capacity(chunk.len() * 3);
        for (name, value) in chunk {
            params.push(product_id.into());
            params.push(name.as_str().into());
            params.push(value.as_str().into());
        }
        db::execute(
            &format!(
                "INSERT INTO product_search_attributes (product_id, name, value) VALUES {} ON CONFLICT DO NOTHING",
                values_list(chunk.len(), 3)
            ),
            &params,
        )?;
    }
    Ok(())
}

/// Applies a price version newer than the one shown; `false` for an older
/// or repeated one (or a product the view does not hold).
pub fn change_price(
    product_id: &str,
    price_minor: i64,
    currency: &str,
    version: i64,
    seller_id: &str,
    at: &str,
) -> Result<bool, Error> {
    let changed = db::execute(
        &format!(
            "UPDATE product_search_view SET price_minor = $2, currency = $3, price_version = $4, \
             seller_id = $5, {} WHERE product_id = $1 AND price_version < $4",
            later_of_updated_at("$6")
        ),
        &[
            product_id.into(),
            price_minor.into(),
            currency.into(),
            version.into(),
            seller_id.into(),
            at.into(),
        ],
    )?;
    Ok(changed == 1)
}

/// Records a SKU's stock if `sequence` is newer than the one recorded, and
/// copies it onto the SKU's product; `false` for an older or repeated level.
pub fn set_stock(level: &StockLevel, sequence: i64, at: &str) -> Result<bool, Error> {
    let changed = db::execute(
        "INSERT INTO search_stock_levels (sku, on_hand, available, reserved, committed, sequence, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (sku) DO UPDATE SET on_hand = excluded.on_hand, available = excluded.available, \
         reserved = excluded.reserved, committed = excluded.committed, sequence = excluded.sequence, \
         updated_at = excluded.updated_at WHERE search_stock_levels.sequence < excluded.sequence",
        &[
            level.sku.as_str().into(),
            level.on_hand.into(),
            level.available.into(),
            level.reserved.into(),
            level.committed.into(),
            sequence.into(),
            at.into(),
        ],
    )?;
    if changed == 0 {
        return Ok(false);
    }
    db::execute(
        &format!(
            "UPDATE product_search_view SET on_hand = $2, available = $3, in_stock = $4, {} WHERE sku = $1",
            later_of_updated_at("$5")
        ),
        &[
            level.sku.as_str().into(),
            level.on_hand.into(),
            level.available.into(),
            (level.available > 0).into(),
            at.into(),
        ],
    )?;
    Ok(true)
}

/// What a result shows of a product.
const COLUMNS: &str = "p.product_id AS id, p.product_id, p.sku, p.name, p.description, p.attributes, p.seller_id, \
     p.price_minor, p.currency, p.on_hand, p.available, p.in_stock, p.created_at, p.updated_at";

/// One page of the search in the order of `keys` (columns of the match or
/// `tier`), beyond the cursor's key values when there is one, in the
/// direction of travel (`limit` + 1 rows, so the caller sees whether more
/// follow), and the facet counts over the whole match.
///
/// The match runs once: it is the statement's `WITH`, from which the page's
/// ids (numbered in order) and the three facet counts are read together; the
/// page's rows are then read by id.
pub fn page_and_facets(
    search: &ProductSearch,
    keys: &[Key],
    after: Option<Vec<SqlValue>>,
    forward: bool,
    limit: i64,
) -> Result<(Vec<Value>, Value), Error> {
    let matched = Matched::new(search, true);
    let mut sql = matched.sql.clone();
    let m = matched.ranked("p.product_id, p.created_at, p.price_minor, p.seller_id, p.in_stock");
    let condition = match after {
        Some(values) => format!(" WHERE {}", beyond(&mut sql, keys, values, forward)),
        None => String::new(),
    };
    let n = sql.bind(limit + 1);
    // The page is cut first (a top-n sort), then numbered; attribute values
    // are looked up by the match's ids (`IN`), which SQLite's planner would
    // otherwise drive from the whole attribute table.
    let rows = db::query(
        &format!(
            "WITH r AS ({m}) \
             SELECT 'page' AS facet, pg.product_id AS name, '' AS value, ROW_NUMBER() OVER (ORDER BY {}) AS n \
               FROM (SELECT * FROM r{condition} ORDER BY {} LIMIT {n}) pg \
             UNION ALL SELECT 'seller_id', r.seller_id, '', COUNT(*) FROM r GROUP BY r.seller_id \
             UNION ALL SELECT 'in_stock', CAST(r.in_stock AS TEXT), '', COUNT(*) FROM r GROUP BY r.in_stock \
             UNION ALL SELECT 'attribute', a.name, a.value, COUNT(*) FROM product_search_attributes a \
               WHERE a.product_id IN (SELECT r.product_id FROM r) GROUP BY a.name, a.value",
            order_by("pg", keys, forward),
            order_by("r", keys, forward),
        ),
        sql.params(),
    )?;
    let mut ids: Vec<(i64, String)> = Vec::new();
    let mut counts: Vec<(String, String, String, i64)> = Vec::new();
    for row in rows.iter() {
        let (facet, name, n) = (row.text("facet")?, row.text("name")?, row.int("n")?);
        if facet == "page" {
            ids.push((n, name.to_owned()));
        } else {
            let value = row.text("value")?.to_owned();
            counts.push((facet.to_owned(), name.to_owned(), value, n));
        }
    }
    ids.sort();
    let ids: Vec<String> = ids.into_iter().map(|(_, id)| id).collect();
    Ok((by_ids(&ids)?, facets(counts)))
}

/// The products with these ids, in this order.
fn by_ids(ids: &[String]) -> Result<Vec<Value>, Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = super::Sql::default();
    let list: Vec<String> = ids.iter().map(|id| sql.bind(id.as_str())).collect();
    let rows = db::query(
        &format!(
            "SELECT {COLUMNS} FROM product_search_view p WHERE p.product_id IN ({})",
            list.join(", ")
        ),
        sql.params(),
    )?;
    let mut found: Vec<Value> = rows
        .to_json_parsing(&["attributes"])
        .into_iter()
        .map(|mut v| {
            v["in_stock"] = Value::Bool(v["in_stock"].as_i64() == Some(1));
            v
        })
        .collect();
    found.sort_by_key(|v| {
        ids.iter()
            .position(|id| v["product_id"].as_str() == Some(id))
    });
    Ok(found)
}

/// The values of `keys` for the cursor's product, if the query's words find
/// it (its filters are left out: see [`Matched::new`]).
pub fn cursor_keys(
    search: &ProductSearch,
    keys: &[Key],
    product_id: &str,
) -> Result<Option<Vec<SqlValue>>, Error> {
    let mut matched = Matched::new(search, false);
    let id = matched.sql.bind(product_id);
    matched.sql.and(format!("p.product_id = {id}"));
    let rows = db::query(
        &matched.ranked("p.product_id, p.created_at, p.price_minor"),
        matched.sql.params(),
    )?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    keys.iter()
        .map(|k| row.value(k.column).cloned())
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Most values listed per attribute facet (the most frequent).
pub const FACET_VALUES_PER_ATTRIBUTE: usize = 20;

/// The facets from their counts, (facet, name, value, n): per seller, in
/// stock or not, and per attribute value.
fn facets(counts: Vec<(String, String, String, i64)>) -> Value {
    let mut sellers = Map::new();
    let mut in_stock = Map::new();
    in_stock.insert("true".into(), 0.into());
    in_stock.insert("false".into(), 0.into());
    let mut values: Vec<(String, String, i64)> = Vec::new();
    for (facet, name, value, n) in counts {
        match facet.as_str() {
            "seller_id" => {
                sellers.insert(name, n.into());
            }
            "in_stock" => {
                let key = if name == "1" { "true" } else { "false" };
                in_stock.insert(key.into(), n.into());
            }
            _ => values.push((name, value, n)),
        }
    }
    // Per attribute, the most frequent values first (ties by value).
    values.sort_by(|a, b| a.0.cmp(&b.0).then(b.2.cmp(&a.2)).then(a.1.cmp(&b.1)));
    let mut attributes = Map::new();
    for (name, value, n) in values {
        let entry = attributes
            .entry(name)
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(values) = entry
            && values.len() < FACET_VALUES_PER_ATTRIBUTE
        {
            values.insert(value, n.into());
        }
    }
    serde_json::json!({
        "seller_id": sellers,
        "in_stock": in_stock,
        "attributes": attributes,
    })
}
