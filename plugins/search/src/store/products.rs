//! `product_search_view`, its word index (`product_search_terms`), its
//! attribute values (`product_search_attributes`) and the stock levels
//! inventory tells (`search_stock_levels`).
use super::{ROWS_PER_INSERT, Sql, later_of_updated_at, values_list};
use crate::domain::query::ProductSearch;
use crate::domain::text::{Candidate, Term, prefix_upper_bound};
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
        "INSERT INTO product_search_view (product_id, sku, name, description, attributes, seller_id, \
         price_minor, currency, price_version, on_hand, available, in_stock, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT DO NOTHING",
        &[
            p.product_id.into(),
            p.sku.into(),
            p.name.into(),
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

/// The conditions of a search, on `product_search_view p`: each query word
/// must start a term of the product (as a whole word or a prefix), and each
/// filter hold.
pub fn matching(search: &ProductSearch) -> Sql {
    let mut sql = Sql::default();
    for word in search.distinct_words() {
        let from = sql.bind(word.as_str());
        let range = match prefix_upper_bound(&word) {
            Some(bound) => format!("t.term >= {from} AND t.term < {}", sql.bind(bound)),
            None => format!("t.term >= {from}"),
        };
        sql.and(format!(
            "p.product_id IN (SELECT t.product_id FROM product_search_terms t WHERE {range})"
        ));
    }
    if let Some(in_stock) = search.in_stock {
        let v = sql.bind(in_stock);
        sql.and(format!("p.in_stock = {v}"));
    }
    if let Some(min) = search.price_min_minor {
        let v = sql.bind(min);
        sql.and(format!("p.price_minor >= {v}"));
    }
    if let Some(max) = search.price_max_minor {
        let v = sql.bind(max);
        sql.and(format!("p.price_minor <= {v}"));
    }
    if let Some(currency) = &search.currency {
        let v = sql.bind(currency.as_str());
        sql.and(format!("p.currency = {v}"));
    }
    if let Some(seller) = &search.seller_id {
        let v = sql.bind(seller.as_str());
        sql.and(format!("p.seller_id = {v}"));
    }
    for (name, value) in &search.attributes {
        let (n, v) = (sql.bind(name.as_str()), sql.bind(value.as_str()));
        sql.and(format!(
            "p.product_id IN (SELECT a.product_id FROM product_search_attributes a WHERE a.name = {n} AND a.value = {v})"
        ));
    }
    sql
}

/// What a result shows of a product.
const COLUMNS: &str = "p.product_id AS id, p.product_id, p.sku, p.name, p.description, p.attributes, p.seller_id, \
     p.price_minor, p.currency, p.on_hand, p.available, p.in_stock, p.created_at, p.updated_at";

fn shaped(rows: &db::Rows) -> Vec<Value> {
    rows.to_json_parsing(&["attributes"])
        .into_iter()
        .map(|mut v| {
            v["in_stock"] = Value::Bool(v["in_stock"].as_i64() == Some(1));
            v
        })
        .collect()
}

/// Every match of a relevance search, newest first, with what ranking needs.
pub fn candidates(matching: &Sql) -> Result<Vec<Candidate>, Error> {
    db::query(
        &format!(
            "SELECT p.product_id, p.name, p.created_at FROM product_search_view p{} \
             ORDER BY p.created_at DESC, p.product_id DESC",
            matching.where_clause()
        ),
        matching.params(),
    )?
    .parse_all()
}

/// The products with these ids, in this order.
pub fn by_ids(ids: &[String]) -> Result<Vec<Value>, Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = Sql::default();
    let list: Vec<String> = ids.iter().map(|id| sql.bind(id.as_str())).collect();
    let rows = db::query(
        &format!(
            "SELECT {COLUMNS} FROM product_search_view p WHERE p.product_id IN ({})",
            list.join(", ")
        ),
        sql.params(),
    )?;
    let mut found = shaped(&rows);
    found.sort_by_key(|v| {
        ids.iter()
            .position(|id| v["product_id"].as_str() == Some(id))
    });
    Ok(found)
}

/// The sort key of `product_id` (`column`), if the view holds the product.
pub fn sort_key(product_id: &str, column: &str) -> Result<Option<SqlValue>, Error> {
    let rows = db::query(
        &format!("SELECT {column} AS k FROM product_search_view WHERE product_id = $1"),
        &[product_id.into()],
    )?;
    rows.first().map(|row| row.value("k").cloned()).transpose()
}

/// One page ordered by (`column`, id), ascending or descending, after
/// (`after`: the cursor's key and id, in the direction of travel); `limit`
/// + 1 rows, so the caller sees whether more follow.
pub fn sorted_page(
    mut sql: Sql,
    column: &str,
    descending: bool,
    after: Option<(SqlValue, String)>,
    limit: i64,
) -> Result<Vec<Value>, Error> {
    if let Some((key, id)) = after {
        let (k, i) = (sql.bind(key), sql.bind(id));
        let cmp = if descending { "<" } else { ">" };
        sql.and(format!("(p.{column}, p.product_id) {cmp} ({k}, {i})"));
    }
    let direction = if descending { "DESC" } else { "ASC" };
    let n = sql.bind(limit + 1);
    let rows = db::query(
        &format!(
            "SELECT {COLUMNS} FROM product_search_view p{} ORDER BY p.{column} {direction}, p.product_id {direction} LIMIT {n}",
            sql.where_clause()
        ),
        sql.params(),
    )?;
    Ok(shaped(&rows))
}

/// Most values listed per attribute facet (the most frequent).
pub const FACET_VALUES_PER_ATTRIBUTE: usize = 20;

/// Counts over the whole match: per seller, in stock or not, and per
/// attribute value.
pub fn facets(matching: &Sql) -> Result<Value, Error> {
    let filter = matching.where_clause();
    let params = matching.params();
    let mut sellers = Map::new();
    let rows = db::query(
        &format!(
            "SELECT p.seller_id AS k, COUNT(*) AS n FROM product_search_view p{filter} GROUP BY p.seller_id"
        ),
        params,
    )?;
    for row in rows.iter() {
        sellers.insert(row.text("k")?.to_owned(), row.int("n")?.into());
    }
    let mut in_stock = Map::new();
    in_stock.insert("true".into(), 0.into());
    in_stock.insert("false".into(), 0.into());
    let rows = db::query(
        &format!(
            "SELECT p.in_stock AS k, COUNT(*) AS n FROM product_search_view p{filter} GROUP BY p.in_stock"
        ),
        params,
    )?;
    for row in rows.iter() {
        let key = if row.int("k")? == 1 { "true" } else { "false" };
        in_stock.insert(key.into(), row.int("n")?.into());
    }
    let mut attributes = Map::new();
    let rows = db::query(
        &format!(
            "SELECT a.name AS name, a.value AS value, COUNT(*) AS n FROM product_search_attributes a \
             JOIN product_search_view p ON p.product_id = a.product_id{filter} \
             GROUP BY a.name, a.value ORDER BY a.name, COUNT(*) DESC, a.value"
        ),
        params,
    )?;
    for row in rows.iter() {
        let entry = attributes
            .entry(row.text("name")?.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(values) = entry
            && values.len() < FACET_VALUES_PER_ATTRIBUTE
        {
            values.insert(row.text("value")?.to_owned(), row.int("n")?.into());
        }
    }
    Ok(serde_json::json!({
        "seller_id": sellers,
        "in_stock": in_stock,
        "attributes": attributes,
    }))
}
