//! Inventory's tables. Stock changes are relative, guarded UPDATEs: the guard
//! restates the invariant, so a change that raced with another (PostgreSQL
//! runs calls concurrently) changes no row instead of overselling, and the
//! caller sees it in the changed-row count.
use crate::domain::{DEFAULT_RESERVATION_TTL_MS, Reservation, ReservationStatus, StockLevel};
use mercato_sdk::prelude::*;

const TTL_KEY: &str = "reservation_ttl_ms";

/// The stock of `sku`, if it exists.
pub fn item(sku: &str) -> Result<Option<StockLevel>, Error> {
    db::query(
        "SELECT on_hand, reserved, committed FROM stock_items WHERE sku = $1",
        &[sku.into()],
    )?
    .parse_first()
}

/// Creates the item; false when the SKU already exists.
pub fn insert_item(sku: &str, on_hand: i64, now: &str) -> Result<bool, Error> {
    let changed = db::execute(
        "INSERT INTO stock_items (sku, on_hand, reserved, committed, version, created_at, updated_at) \
         VALUES ($1, $2, 0, 0, 1, $3, $3) ON CONFLICT (sku) DO NOTHING",
        &[sku.into(), on_hand.into(), now.into()],
    )?;
    Ok(changed == 1)
}

/// One relative change to an item's stock columns: `set` moves them by `$2`
/// and `guard` restates the invariant the change must keep, so a change that
/// raced with another changes no row and reports false.
fn change_stock(sku: &str, amount: i64, now: &str, set: &str, guard: &str) -> Result<bool, Error> {
    let changed = db::execute(
        &format!(
            "UPDATE stock_items SET {set}, version = version + 1, updated_at = $3 \
             WHERE sku = $1 AND {guard}"
        ),
        &[sku.into(), amount.into(), now.into()],
    )?;
    Ok(changed == 1)
}

/// Moves on_hand by `delta`; false when that would undercut what is promised.
pub fn adjust_on_hand(sku: &str, delta: i64, now: &str) -> Result<bool, Error> {
    change_stock(
        sku,
        delta,
        now,
        "on_hand = on_hand + $2",
        "on_hand + $2 - reserved - committed >= 0",
    )
}

/// Holds `quantity` units; false when fewer are available.
pub fn reserve_stock(sku: &str, quantity: i64, now: &str) -> Result<bool, Error> {
    change_stock(
        sku,
        quantity,
        now,
        "reserved = reserved + $2",
        "on_hand - reserved - committed >= $2",
    )
}

/// Gives back `quantity` held units; false when fewer are held.
pub fn release_stock(sku: &str, quantity: i64, now: &str) -> Result<bool, Error> {
    change_stock(
        sku,
        quantity,
        now,
        "reserved = reserved - $2",
        "reserved >= $2",
    )
}

/// Turns `quantity` held units into sold ones; false when fewer are held.
pub fn commit_stock(sku: &str, quantity: i64, now: &str) -> Result<bool, Error> {
    change_stock(
        sku,
        quantity,
        now,
        "reserved = reserved - $2, committed = committed + $2",
        "reserved >= $2",
    )
}

/// The order's reservations, oldest first.
pub fn reservations(order_id: &str) -> Result<Vec<Reservation>, Error> {
    db::query(
        "SELECT id, sku, quantity, status, expires_at FROM stock_reservations \
         WHERE order_id = $1 ORDER BY created_at, sku",
        &[order_id.into()],
    )?
    .parse_all()
}

/// Records a new RESERVED reservation. The caller has checked that the order
/// has none, so a duplicate is a bug and fails the call.
pub fn insert_reservation(
    order_id: &str,
    sku: &str,
    quantity: i64,
    expires_at: &str,
    now: &str,
) -> Result<(), Error> {
    db::execute(
        "INSERT INTO stock_reservations \
         (id, order_id, sku, quantity, status, expires_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 'RESERVED', $5, $6, $6)",
        &[
            new_id().into(),
            order_id.into(),
            sku.into(),
            quantity.into(),
            expires_at.into(),
            now.into(),
        ],
    )?;
    Ok(())
}

/// Moves a RESERVED reservation to its final status; false when it has
/// already left RESERVED.
pub fn settle_reservation(id: &str, status: ReservationStatus, now: &str) -> Result<bool, Error> {
    let changed = db::execute(
        "UPDATE stock_reservations SET status = $2, updated_at = $3 \
         WHERE id = $1 AND status = 'RESERVED'",
        &[id.into(), status.as_str().into(), now.into()],
    )?;
    Ok(changed == 1)
}

/// What a ledger entry records.
#[derive(Debug, Clone, Copy)]
pub enum MovementKind {
    Received,
    Adjusted,
    Reserved,
    Released,
    Committed,
}

impl MovementKind {
    fn as_str(self) -> &'static str {
        match self {
            MovementKind::Received => "RECEIVED",
            MovementKind::Adjusted => "ADJUSTED",
            MovementKind::Reserved => "RESERVED",
            MovementKind::Released => "RELEASED",
            MovementKind::Committed => "COMMITTED",
        }
    }
}

/// Appends to the stock ledger.
pub fn record_movement(
    sku: &str,
    kind: MovementKind,
    quantity: i64,
    order_id: Option<&str>,
    reason: &str,
    now: &str,
) -> Result<(), Error> {
    db::execute(
        "INSERT INTO stock_movements (id, sku, kind, quantity, order_id, reason, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            new_id().into(),
            sku.into(),
            kind.as_str().into(),
            quantity.into(),
            order_id.into(),
            reason.into(),
            now.into(),
        ],
    )?;
    Ok(())
}

/// How long new reservations are held.
pub fn reservation_ttl_ms() -> Result<u64, Error> {
    let rows = db::query(
        "SELECT value FROM inventory_settings WHERE key = $1",
        &[TTL_KEY.into()],
    )?;
    match rows.first() {
        None => Ok(DEFAULT_RESERVATION_TTL_MS),
        Some(row) => {
            let value = row.text("value")?;
            value
                .parse()
                .map_err(|_| Error::Internal(format!("stored {TTL_KEY} is not a number: {value}")))
        }
    }
}

/// Sets how long new reservations are held (existing ones keep their expiry).
pub fn set_reservation_ttl_ms(ms: u64) -> Result<(), Error> {
    db::execute(
        "INSERT INTO inventory_settings (key, value) VALUES ($1, $2) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        &[TTL_KEY.into(), ms.to_string().into()],
    )?;
    Ok(())
}
