//! The catalog's tables: every SQL statement of the context lives here.
//!
//! Prices are versioned: `products.version` names the current row of the
//! append-only `product_pricing`, and moves only by a version-checked update.
use crate::domain::ValidProduct;
use mercato_sdk::list::Listing;
use mercato_sdk::prelude::*;
use serde_json::Value;

/// Inserts the product at version 1 with its variant; `false` when the SKU is
/// taken. The product row is written first, so the caller must fail the call
/// (rolling it back) on `false`.
pub fn insert_product(id: &str, product: &ValidProduct, now: &str) -> Result<bool, Error> {
    let attributes = Value::Object(product.attributes.clone()).to_string();
    db::execute(
        "INSERT INTO products (id, name, attributes_json, version, created_at, updated_at, seller_id, description) \
         VALUES ($1, $2, $3, 1, $4, $4, $5, $6)",
        &[
            id.into(),
            product.name.as_str().into(),
            attributes.into(),
            now.into(),
            product.seller_id.as_str().into(),
            product.description.as_deref().into(),
        ],
    )?;
    let inserted = db::execute(
        "INSERT INTO product_variants (id, product_id, sku, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (sku) DO NOTHING",
        &[
            new_id().into(),
            id.into(),
            product.sku.as_str().into(),
            now.into(),
        ],
    )?;
    Ok(inserted != 0)
}

/// Appends price version `version` of the product.
pub fn record_price(
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

/// Records that the product's first version was published.
pub fn record_publication(id: &str, now: &str) -> Result<(), Error> {
    db::execute(
        "INSERT INTO product_publications (id, product_id, version, published_at) VALUES ($1, $2, 1, $3)",
        &[new_id().into(), id.into(), now.into()],
    )?;
    Ok(())
}

/// Moves the product from `version` to `next`; `false` when a concurrent
/// change moved it first (optimistic concurrency: that change wins).
pub fn advance_version(id: &str, version: i64, next: i64, now: &str) -> Result<bool, Error> {
    let changed = db::execute(
        "UPDATE products SET version = $1, updated_at = $2 WHERE id = $3 AND version = $4",
        &[next.into(), now.into(), id.into(), version.into()],
    )?;
    Ok(changed != 0)
}

const PRODUCT_SELECT: &str = "SELECT p.id, v.sku, p.name, pr.price_minor, pr.currency, \
     p.attributes_json AS attributes, p.seller_id, p.description, p.version, p.created_at, p.updated_at \
     FROM products p \
     JOIN product_variants v ON v.product_id = p.id \
     JOIN product_pricing pr ON pr.product_id = p.id AND pr.version = p.version";

/// The JSON columns of [`PRODUCT_SELECT`], stored as text.
const JSON_COLUMNS: &[&str] = &["attributes"];

/// The product at its current price, with its full price history.
pub fn product(id: &str) -> Result<Option<Value>, Error> {
    let rows = db::query(&format!("{PRODUCT_SELECT} WHERE p.id = $1"), &[id.into()])?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let mut product = row.to_json_parsing(JSON_COLUMNS);
    let history = db::query(
        "SELECT version, price_minor, currency, effective_at FROM product_pricing WHERE product_id = $1 ORDER BY version",
        &[id.into()],
    )?;
    product["price_history"] = history.to_json().into();
    Ok(Some(product))
}

/// The catalog as a list (each product at its current price, without its
/// history): the columns and joins of [`PRODUCT_SELECT`], so a product reads
/// the same in the list as on its own, newest first by `(created_at, id)`.
pub fn product_listing() -> Listing {
    let (columns, tables) = select_parts(PRODUCT_SELECT);
    Listing::new(tables, columns)
        .sorted_by("p.created_at", "p.id")
        .json_columns(JSON_COLUMNS)
}

/// `SELECT columns FROM tables` split into its columns and its tables.
fn select_parts(select: &str) -> (&str, &str) {
    select
        .strip_prefix("SELECT ")
        .and_then(|rest| rest.split_once(" FROM "))
        .expect("PRODUCT_SELECT is `SELECT … FROM …`")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_selects_what_a_single_product_read_selects() {
        let (columns, tables) = select_parts(PRODUCT_SELECT);
        assert!(columns.starts_with("p.id, v.sku, p.name"), "{columns}");
        assert!(columns.ends_with("p.updated_at"), "{columns}");
        assert!(tables.starts_with("products p JOIN"), "{tables}");
        assert_eq!(format!("SELECT {columns} FROM {tables}"), PRODUCT_SELECT);
    }
}
