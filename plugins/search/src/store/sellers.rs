//! The seller dashboard: order lines and payments as their events tell them,
//! each payment's split between sellers, and the sums per seller, day and
//! product.
use super::{ROWS_PER_INSERT, Sql, values_list};
use crate::domain::allocate::{Line, Share};
use crate::domain::views::SkuTotal;
use mercato_sdk::prelude::*;
use serde_json::{Value, json};

/// Records the order's SKUs (first telling wins).
pub fn insert_lines(order_id: &str, currency: &str, lines: &[SkuTotal]) -> Result<(), Error> {
    for chunk in lines.chunks(ROWS_PER_INSERT) {
        let mut params: Vec<SqlValue> = Vec::with_capacity(chunk.len() * 5);
        for l in chunk {
            params.push(order_id.into());
            params.push(l.sku.as_str().into());
            params.push(l.quantity.into());
            params.push(l.line_total_minor.into());
            params.push(currency.into());
        }
        db::execute(
            &format!(
                "INSERT INTO seller_order_lines (order_id, sku, quantity, line_total_minor, currency) \
                 VALUES {} ON CONFLICT DO NOTHING",
                values_list(chunk.len(), 5)
            ),
            &params,
        )?;
    }
    Ok(())
}

/// A captured or refunded amount as payments tells it.
pub struct Payment<'a> {
    /// `capture:<intent_id>` or `refund:<refund_id>`.
    pub key: &'a str,
    /// `CAPTURE` or `REFUND`.
    pub kind: &'a str,
    pub order_id: &'a str,
    pub amount_minor: i64,
    pub currency: Option<&'a str>,
    pub occurred_at: &'a str,
    pub day: &'a str,
}

/// Records a payment, not yet allocated (a repeated key records nothing).
pub fn insert_payment(p: &Payment) -> Result<(), Error> {
    db::execute(
        "INSERT INTO seller_payments (payment_key, kind, order_id, amount_minor, currency, day, occurred_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (payment_key) DO NOTHING",
        &[
            p.key.into(),
            p.kind.into(),
            p.order_id.into(),
            p.amount_minor.into(),
            p.currency.into(),
            p.day.into(),
            p.occurred_at.into(),
        ],
    )?;
    Ok(())
}

/// The currency of a recorded payment.
pub fn payment_currency(key: &str) -> Result<Option<String>, Error> {
    let rows = db::query(
        "SELECT currency FROM seller_payments WHERE payment_key = $1",
        &[key.into()],
    )?;
    Ok(match rows.first() {
        Some(row) => row.opt_text("currency")?.map(str::to_owned),
        None => None,
    })
}

/// The order's SKUs with their sellers and the order's currency, once the
/// order and the seller of every SKU are known; `None` before.
pub fn allocatable_lines(order_id: &str) -> Result<Option<(Vec<Line>, String)>, Error> {
    let rows = db::query(
        "SELECT l.sku, l.quantity, l.line_total_minor, l.currency, p.seller_id \
         FROM seller_order_lines l LEFT JOIN product_search_view p ON p.sku = l.sku \
         WHERE l.order_id = $1 ORDER BY l.sku",
        &[order_id.into()],
    )?;
    let mut lines = Vec::new();
    let mut currency = None;
    for row in rows.iter() {
        let Some(seller_id) = row.opt_text("seller_id")? else {
            return Ok(None);
        };
        currency = Some(row.text("currency")?.to_owned());
        lines.push(Line {
            sku: row.text("sku")?.to_owned(),
            seller_id: seller_id.to_owned(),
            quantity: row.int("quantity")?,
            line_total_minor: row.int("line_total_minor")?,
        });
    }
    Ok(currency.map(|c| (lines, c)))
}

/// A payment waiting for its split.
#[derive(Debug, serde::Deserialize)]
pub struct Pending {
    pub payment_key: String,
    pub kind: String,
    pub amount_minor: i64,
    pub currency: Option<String>,
    pub day: String,
}

/// The order's payments not yet split, oldest first.
pub fn pending_payments(order_id: &str) -> Result<Vec<Pending>, Error> {
    db::query(
        "SELECT payment_key, kind, amount_minor, currency, day FROM seller_payments \
         WHERE order_id = $1 AND allocated_at IS NULL ORDER BY occurred_at, payment_key",
        &[order_id.into()],
    )?
    .parse_all()
}

/// Orders with a payment waiting for the seller of `sku`.
pub fn orders_waiting_for(sku: &str) -> Result<Vec<String>, Error> {
    let rows = db::query(
        "SELECT DISTINCT p.order_id AS order_id FROM seller_payments p \
         JOIN seller_order_lines l ON l.order_id = p.order_id \
         WHERE l.sku = $1 AND p.allocated_at IS NULL",
        &[sku.into()],
    )?;
    rows.iter()
        .map(|r| r.text("order_id").map(str::to_owned))
        .collect()
}

/// Marks a payment split at `at`; `false` if it already was.
pub fn mark_allocated(key: &str, at: &str) -> Result<bool, Error> {
    let changed = db::execute(
        "UPDATE seller_payments SET allocated_at = $2 WHERE payment_key = $1 AND allocated_at IS NULL",
        &[key.into(), at.into()],
    )?;
    Ok(changed == 1)
}

/// Records a payment's parts.
pub fn insert_shares(key: &str, shares: &[Share]) -> Result<(), Error> {
    for chunk in shares.chunks(ROWS_PER_INSERT) {
        let mut params: Vec<SqlValue> = Vec::with_capacity(chunk.len() * 5);
        for s in chunk {
            params.push(key.into());
            params.push(s.seller_id.as_str().into());
            params.push(s.sku.as_str().into());
            params.push(s.amount_minor.into());
            params.push(s.units.into());
        }
        db::execute(
            &format!(
                "INSERT INTO seller_allocations (payment_key, seller_id, sku, amount_minor, units) VALUES {}",
                values_list(chunk.len(), 5)
            ),
            &params,
        )?;
    }
    Ok(())
}

/// What one payment adds to one seller's sums.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Sums {
    pub gross_minor: i64,
    pub refunds_minor: i64,
    pub orders: i64,
    pub units: i64,
}

/// Adds `s` to the seller's all-time and daily sums in `currency`; `at`
/// (an event's time) moves the all-time row's `updated_at` if later.
pub fn add_sums(
    seller_id: &str,
    currency: &str,
    day: &str,
    s: &Sums,
    at: &str,
) -> Result<(), Error> {
    let net = s.gross_minor - s.refunds_minor;
    let values = |extra: SqlValue| -> Vec<SqlValue> {
        vec![
            seller_id.into(),
            currency.into(),
            extra,
            s.gross_minor.into(),
            s.refunds_minor.into(),
            net.into(),
            s.orders.into(),
            s.units.into(),
        ]
    };
    // Columns qualified: in DO UPDATE a bare column is ambiguous on PostgreSQL.
    let add = |table: &str| {
        format!(
            "gross_minor = {table}.gross_minor + excluded.gross_minor, \
             refunds_minor = {table}.refunds_minor + excluded.refunds_minor, \
             net_minor = {table}.net_minor + excluded.net_minor, \
             orders = {table}.orders + excluded.orders, units = {table}.units + excluded.units"
        )
    };
    db::execute(
        &format!(
            "INSERT INTO seller_dashboard_view (seller_id, currency, updated_at, gross_minor, refunds_minor, \
             net_minor, orders, units) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (seller_id, currency) DO UPDATE SET {}, \
             updated_at = CASE WHEN seller_dashboard_view.updated_at < excluded.updated_at \
             THEN excluded.updated_at ELSE seller_dashboard_view.updated_at END",
            add("seller_dashboard_view")
        ),
        &values(at.into()),
    )?;
    db::execute(
        &format!(
            "INSERT INTO seller_daily_sales (seller_id, currency, day, gross_minor, refunds_minor, \
             net_minor, orders, units) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (seller_id, currency, day) DO UPDATE SET {}",
            add("seller_daily_sales")
        ),
        &values(day.into()),
    )?;
    Ok(())
}

/// Adds a captured part to the product's daily sums.
pub fn add_product_sales(currency: &str, day: &str, share: &Share) -> Result<(), Error> {
    db::execute(
        "INSERT INTO seller_product_daily_sales (seller_id, currency, day, sku, units, gross_minor) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (seller_id, currency, day, sku) DO UPDATE SET \
         units = seller_product_daily_sales.units + excluded.units, \
         gross_minor = seller_product_daily_sales.gross_minor + excluded.gross_minor",
        &[
            share.seller_id.as_str().into(),
            currency.into(),
            day.into(),
            share.sku.as_str().into(),
            share.units.into(),
            share.amount_minor.into(),
        ],
    )?;
    Ok(())
}

/// The currencies the seller has sales in.
pub fn currencies(seller_id: &str) -> Result<Vec<String>, Error> {
    let rows = db::query(
        "SELECT currency FROM seller_dashboard_view WHERE seller_id = $1 ORDER BY currency",
        &[seller_id.into()],
    )?;
    rows.iter()
        .map(|r| r.text("currency").map(str::to_owned))
        .collect()
}

/// Whether the catalog (as the view knows it) has products of the seller.
pub fn has_products(seller_id: &str) -> Result<bool, Error> {
    let rows = db::query(
        "SELECT 1 AS one FROM product_search_view WHERE seller_id = $1 LIMIT 1",
        &[seller_id.into()],
    )?;
    Ok(!rows.is_empty())
}

/// `seller_id = $1 AND currency = $2` and the optional day range.
fn scope(seller_id: &str, currency: &str, from: Option<&str>, to: Option<&str>) -> Sql {
    let mut sql = Sql::default();
    let (s, c) = (sql.bind(seller_id), sql.bind(currency));
    sql.and(format!("seller_id = {s} AND currency = {c}"));
    if let Some(from) = from {
        let f = sql.bind(from);
        sql.and(format!("day >= {f}"));
    }
    if let Some(to) = to {
        let t = sql.bind(to);
        sql.and(format!("day <= {t}"));
    }
    sql
}

/// The seller's dashboard in `currency` over the days from `from` to `to`
/// (inclusive; all days when absent): totals, per product, per day.
pub fn dashboard(
    seller_id: &str,
    currency: &str,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<Value, Error> {
    let sql = scope(seller_id, currency, from, to);
    let filter = sql.where_clause();
    let days = db::query(
        &format!(
            "SELECT day, gross_minor, refunds_minor, net_minor, orders, units FROM seller_daily_sales{filter} ORDER BY day"
        ),
        sql.params(),
    )?
    .to_json();
    let mut totals = Sums::default();
    for d in &days {
        totals.gross_minor += d["gross_minor"].as_i64().unwrap_or_default();
        totals.refunds_minor += d["refunds_minor"].as_i64().unwrap_or_default();
        totals.orders += d["orders"].as_i64().unwrap_or_default();
        totals.units += d["units"].as_i64().unwrap_or_default();
    }
    let rows = db::query(
        &format!(
            "SELECT sku, SUM(units) AS units, SUM(gross_minor) AS gross_minor \
             FROM seller_product_daily_sales{filter} GROUP BY sku ORDER BY SUM(gross_minor) DESC, sku"
        ),
        sql.params(),
    )?;
    let mut products = Vec::new();
    for row in rows.iter() {
        products.push(json!({
            "sku": row.text("sku")?,
            "units": row.int("units")?,
            "gross_minor": row.int("gross_minor")?,
        }));
    }
    Ok(json!({
        "seller_id": seller_id,
        "currency": currency,
        "gross_minor": totals.gross_minor,
        "refunds_minor": totals.refunds_minor,
        "net_minor": totals.gross_minor - totals.refunds_minor,
        "orders": totals.orders,
        "units": totals.units,
        "products": products,
        "days": days,
    }))
}
