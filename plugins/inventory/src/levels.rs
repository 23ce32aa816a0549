//! `StockLevelChanged`: an item's numbers after every change, for read models
//! (the search plugin's in-stock filter), emitted in the transaction that
//! changed them. Aggregate id: the SKU.
use crate::domain::StockLevel;
use crate::item_json;
use crate::store;
use mercato_sdk::prelude::*;

/// Tells `level` as the item's numbers now, with the same fields
/// `GET /items/{sku}` shows: `sku, on_hand, available, reserved, committed`.
pub fn publish(sku: &str, level: StockLevel) -> Result<(), Error> {
    events::emit("StockLevelChanged", sku, &item_json(sku, level))
}

/// [`publish`] with the numbers read back after a change.
pub fn publish_current(sku: &str) -> Result<(), Error> {
    let level = store::item(sku)?
        .ok_or_else(|| Error::Internal(format!("stock item {sku} vanished mid-call")))?;
    publish(sku, level)
}
