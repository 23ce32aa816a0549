//! `orders.OrderPaid` as shipping reads it: the order a shipment is made for.
//! A payload that breaks the event contract is refused with [`Invalid`]
//! (`invalid_order_paid`); the caller dead-letters it.
use mercato_sdk::address::ShippingAddress;
use mercato_sdk::validate::{Invalid, check_sku};
use serde::{Deserialize, Serialize};

/// `orders.OrderPaid`: only what shipping needs. The money fields are
/// payments' and orders' facts, not the parcel's, and are ignored, as is any
/// field orders adds later. Orders paid before orders carried addresses have
/// no `buyer_id`, `items` or `shipping_address`.
#[derive(Debug, Clone, Deserialize)]
pub struct OrderPaid {
    pub order_id: String,
    #[serde(default)]
    pub buyer_id: Option<String>,
    #[serde(default)]
    pub items: Vec<Item>,
    #[serde(default)]
    pub shipping_address: Option<ShippingAddress>,
}

/// A line of the parcel: what goes in the box, as snapshotted at payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub sku: String,
    pub quantity: i64,
}

/// A paid order to ship, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaidOrder {
    pub order_id: String,
    pub buyer_id: String,
    pub items: Vec<Item>,
    pub shipping_address: ShippingAddress,
}

impl OrderPaid {
    /// The order to ship; `None` when it has no shipping address (an order
    /// from before addresses: nothing to ship to, nothing to create). An
    /// order with an address but no buyer, no items or a bad line breaks the
    /// event contract.
    pub fn into_paid_order(self) -> Result<Option<PaidOrder>, Invalid> {
        let Some(address) = self.shipping_address else {
            return Ok(None);
        };
        let broken = |what: &str| {
            Invalid::new(
                "invalid_order_paid",
                format!("OrderPaid {}: {what}", self.order_id),
            )
        };
        if self.order_id.is_empty() {
            return Err(broken("order_id is empty"));
        }
        let buyer_id = match self.buyer_id {
            Some(buyer) if !buyer.is_empty() => buyer,
            _ => return Err(broken("buyer_id is missing")),
        };
        if self.items.is_empty() {
            return Err(broken("items is empty"));
        }
        for item in &self.items {
            check_sku(&item.sku).map_err(|e| broken(&e.message))?;
            if item.quantity < 1 {
                return Err(broken(&format!("quantity of {} is below 1", item.sku)));
            }
        }
        let shipping_address = address.validated().map_err(|e| broken(&e.message))?;
        Ok(Some(PaidOrder {
            order_id: self.order_id,
            buyer_id,
            items: self.items,
            shipping_address,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn paid(patch: Value) -> Result<Option<PaidOrder>, Invalid> {
        let mut payload = json!({
            "order_id": "o-1",
            "intent_id": "i-1",
            "amount_minor": 2_500,
            "currency": "EUR",
            "buyer_id": "b-1",
            "items": [{ "sku": "TSHIRT-M", "quantity": 2, "unit_price_minor": 1_250 }],
            "shipping_address": {
                "name": " Ada Lovelace ", "line1": "12 St James's Square",
                "city": "London", "postal_code": "SW1Y 4JH", "country": "GB",
            },
        });
        for (k, v) in patch.as_object().unwrap() {
            payload[k] = v.clone();
        }
        serde_json::from_value::<OrderPaid>(payload)
            .expect("well-formed payload")
            .into_paid_order()
    }

    #[test]
    fn a_paid_order_with_an_address_is_shipped_with_snapshots() {
        let order = paid(json!({})).unwrap().unwrap();
        assert_eq!(order.order_id, "o-1");
        assert_eq!(order.buyer_id, "b-1");
        assert_eq!(
            order.items,
            [Item {
                sku: "TSHIRT-M".into(),
                quantity: 2
            }]
        );
        assert_eq!(
            order.shipping_address.name, "Ada Lovelace",
            "validated, so trimmed"
        );
        assert_eq!(
            serde_json::to_value(&order.items).unwrap(),
            json!([{ "sku": "TSHIRT-M", "quantity": 2 }]),
            "prices are not the parcel's"
        );
    }

    #[test]
    fn an_order_paid_without_an_address_ships_nothing() {
        assert_eq!(paid(json!({ "shipping_address": null })), Ok(None));
        let old =
            json!({ "order_id": "o-1", "intent_id": "i", "amount_minor": 1, "currency": "EUR" });
        let old: OrderPaid = serde_json::from_value(old).unwrap();
        assert_eq!(old.into_paid_order(), Ok(None));
    }

    #[test]
    fn an_order_paid_breaking_the_contract_is_refused() {
        let address = |field: &str, value: Value| {
            let mut a = json!({ "name": "A", "line1": "L", "city": "C", "postal_code": "1", "country": "DE" });
            a[field] = value;
            json!({ "shipping_address": a })
        };
        for patch in [
            json!({ "order_id": "" }),
            json!({ "buyer_id": null }),
            json!({ "buyer_id": "" }),
            json!({ "items": [] }),
            json!({ "items": [{ "sku": "bad sku", "quantity": 1 }] }),
            json!({ "items": [{ "sku": "A", "quantity": 0 }] }),
            address("country", json!("XX")),
            address("city", json!(" ")),
        ] {
            assert_eq!(
                paid(patch.clone()).unwrap_err().code,
                "invalid_order_paid",
                "{patch}"
            );
        }
        assert!(
            paid(address("country", json!("XX")))
                .unwrap_err()
                .message
                .contains("shipping_address.country"),
        );
    }
}
