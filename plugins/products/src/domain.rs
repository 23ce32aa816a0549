//! Pure catalog rules: what a valid product and a valid price change are.
//! SKU and currency rules are the SDK's, shared with orders and inventory.
use mercato_sdk::validate::{self, Invalid, check_currency, check_sku};
use serde_json::{Map, Value};

/// Largest price accepted, in minor units: the SDK's limit on any amount.
pub const MAX_PRICE_MINOR: i64 = validate::MAX_AMOUNT_MINOR;
/// Largest serialized `attributes` object.
pub const MAX_ATTRIBUTES_BYTES: usize = 16 * 1024;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 2000;
/// The seller of products published without one (and of every product
/// published before sellers existed: migration 0003's default).
pub const DEFAULT_SELLER: &str = "default";

/// Seller ids are 1-64 characters of `[a-z0-9_-]`: they travel in URLs
/// (`/search/sellers/{seller_id}/dashboard`) and other contexts' tables.
pub fn check_seller_id(raw: &str) -> Result<(), Invalid> {
    let well_formed = (1..=64).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if well_formed {
        Ok(())
    } else {
        Err(Invalid::new(
            "invalid_seller_id",
            "seller_id must be 1-64 lower-case letters, digits, '_' or '-'",
        ))
    }
}

/// Prices are integer minor units from 0 to [`MAX_PRICE_MINOR`].
pub fn check_price(price_minor: i64) -> Result<(), Invalid> {
    if (0..=MAX_PRICE_MINOR).contains(&price_minor) {
        Ok(())
    } else {
        Err(Invalid::new(
            "invalid_price",
            format!("price_minor must be between 0 and {MAX_PRICE_MINOR}"),
        ))
    }
}

/// A product as submitted.
#[derive(Debug, Clone)]
pub struct NewProduct {
    pub sku: String,
    pub name: String,
    pub price_minor: i64,
    pub currency: String,
    pub attributes: Option<Value>,
    /// `None`: the default seller.
    pub seller_id: Option<String>,
    pub description: Option<String>,
}

/// A product that passed validation; attributes are always an object.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidProduct {
    pub sku: String,
    pub name: String,
    pub price_minor: i64,
    pub currency: String,
    pub attributes: Map<String, Value>,
    pub seller_id: String,
    /// Trimmed; `None` when absent or blank.
    pub description: Option<String>,
}

pub fn validate(new: NewProduct) -> Result<ValidProduct, Invalid> {
    check_sku(&new.sku)?;
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(Invalid::new(
            "invalid_name",
            "name must be 1-200 characters",
        ));
    }
    check_price(new.price_minor)?;
    check_currency(&new.currency)?;
    let attributes = match new.attributes {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map,
        Some(_) => {
            return Err(Invalid::new(
                "invalid_attributes",
                "attributes must be a JSON object",
            ));
        }
    };
    if Value::Object(attributes.clone()).to_string().len() > MAX_ATTRIBUTES_BYTES {
        return Err(Invalid::new(
            "invalid_attributes",
            format!("attributes exceed {MAX_ATTRIBUTES_BYTES} bytes"),
        ));
    }
    let seller_id = new.seller_id.unwrap_or_else(|| DEFAULT_SELLER.to_owned());
    check_seller_id(&seller_id)?;
    let description = new
        .description
        .as_deref()
        .map(str::trim)
        .filter(|d| !d.is_empty());
    if description.is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_CHARS) {
        return Err(Invalid::new(
            "invalid_description",
            format!("description must be at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    Ok(ValidProduct {
        sku: new.sku,
        name: name.to_owned(),
        price_minor: new.price_minor,
        currency: new.currency,
        attributes,
        seller_id,
        description: description.map(str::to_owned),
    })
}

/// The outcome of a price change request against the current price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PriceChange {
    /// Record price version `version`.
    NewVersion { version: i64, price_minor: i64 },
    /// The price is already this; nothing to record.
    Unchanged,
}

pub fn change_price(
    current_version: i64,
    current_price: i64,
    requested: i64,
) -> Result<PriceChange, Invalid> {
    check_price(requested)?;
    Ok(if requested == current_price {
        PriceChange::Unchanged
    } else {
        PriceChange::NewVersion {
            version: current_version + 1,
            price_minor: requested,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn product() -> NewProduct {
        NewProduct {
            sku: "TEE-RED-M".into(),
            name: " Red tee ".into(),
            price_minor: 1999,
            currency: "EUR".into(),
            attributes: Some(json!({ "size": "M" })),
            seller_id: None,
            description: None,
        }
    }

    #[test]
    fn a_valid_product_is_normalised() {
        let valid = validate(product()).unwrap();
        assert_eq!(valid.name, "Red tee");
        assert_eq!(valid.attributes["size"], "M");
    }

    #[test]
    fn a_product_without_seller_belongs_to_the_default_seller() {
        let valid = validate(product()).unwrap();
        assert_eq!(
            (valid.seller_id.as_str(), valid.description),
            ("default", None)
        );
        let valid = validate(NewProduct {
            seller_id: Some("acme_2-b".into()),
            description: Some("  Soft cotton.  ".into()),
            ..product()
        })
        .unwrap();
        assert_eq!(valid.seller_id, "acme_2-b");
        assert_eq!(valid.description.as_deref(), Some("Soft cotton."));
    }

    #[test]
    fn seller_ids_are_1_to_64_lower_case_url_safe_characters() {
        for ok in ["a", "default", "acme-1_x", &"s".repeat(64)] {
            assert_eq!(check_seller_id(ok), Ok(()), "{ok}");
        }
        for bad in ["", "Acme", "a b", "a.b", "é", "a/b", &"s".repeat(65)] {
            assert_eq!(
                check_seller_id(bad).unwrap_err().code,
                "invalid_seller_id",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn descriptions_are_trimmed_and_at_most_2000_characters() {
        let with = |d: String| {
            validate(NewProduct {
                description: Some(d),
                ..product()
            })
        };
        // Characters, not bytes: 2000 two-byte letters fit.
        assert_eq!(
            with("é".repeat(2000))
                .unwrap()
                .description
                .map(|d| d.chars().count()),
            Some(2000)
        );
        assert_eq!(with("   ".into()).unwrap().description, None);
        assert_eq!(
            with("é".repeat(2001)).unwrap_err().code,
            "invalid_description"
        );
    }

    #[test]
    fn missing_attributes_become_an_empty_object() {
        let valid = validate(NewProduct {
            attributes: None,
            ..product()
        })
        .unwrap();
        assert!(valid.attributes.is_empty());
    }

    #[test]
    fn bad_fields_are_refused_with_their_code() {
        let cases = [
            (
                NewProduct {
                    sku: "".into(),
                    ..product()
                },
                "invalid_sku",
            ),
            (
                NewProduct {
                    sku: "a b".into(),
                    ..product()
                },
                "invalid_sku",
            ),
            (
                NewProduct {
                    name: "  ".into(),
                    ..product()
                },
                "invalid_name",
            ),
            (
                NewProduct {
                    price_minor: -1,
                    ..product()
                },
                "invalid_price",
            ),
            (
                NewProduct {
                    currency: "eur".into(),
                    ..product()
                },
                "invalid_currency",
            ),
            (
                NewProduct {
                    attributes: Some(json!([1])),
                    ..product()
                },
                "invalid_attributes",
            ),
            (
                NewProduct {
                    seller_id: Some("Big Shop".into()),
                    ..product()
                },
                "invalid_seller_id",
            ),
        ];
        for (new, code) in cases {
            assert_eq!(validate(new).unwrap_err().code, code);
        }
    }

    #[test]
    fn a_price_change_appends_the_next_version() {
        assert_eq!(
            change_price(3, 1999, 2499),
            Ok(PriceChange::NewVersion {
                version: 4,
                price_minor: 2499
            })
        );
        assert_eq!(change_price(3, 1999, 1999), Ok(PriceChange::Unchanged));
        assert_eq!(change_price(3, 1999, -5).unwrap_err().code, "invalid_price");
    }
}
