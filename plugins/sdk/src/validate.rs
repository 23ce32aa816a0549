//! Input rules that more than one context enforces: SKUs, currencies and coupon
//! codes. They live here so a SKU the catalog accepts is one inventory and
//! orders accept too; each context still words its own refusals where its API
//! always has.
//!
//! Pure functions: no host calls, so everything here is unit-tested natively.
use crate::http::HttpError;

/// Why a command was refused: a stable machine-readable code (the API's
/// `error.code`) and a message for humans. Rendered as 422.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Invalid {
    /// Stable code, e.g. `invalid_sku`.
    pub code: &'static str,
    /// What was wrong, for a human.
    pub message: String,
}

impl Invalid {
    /// A refusal with `code` and `message`.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Invalid {
            code,
            message: message.into(),
        }
    }
}

/// Invalid input is 422 in every context: the request was well-formed JSON
/// whose values break a rule.
impl From<Invalid> for HttpError {
    fn from(e: Invalid) -> Self {
        HttpError::unprocessable(e.code, &e.message)
    }
}

/// Largest amount any context accepts, in minor units (10 billion major
/// units): a price, an order total, a payment or refund. Far below `i64::MAX`,
/// so sums of many amounts cannot overflow in practice; and being one limit,
/// every order total the catalog's prices allow is an amount payments takes.
pub const MAX_AMOUNT_MINOR: i64 = 1_000_000_000_000;

/// Longest SKU, in bytes (all of them ASCII).
pub const MAX_SKU_LEN: usize = 64;

/// SKUs are 1-64 characters of `[A-Za-z0-9._-]`: they travel in URLs, events
/// and other contexts' tables, hence the narrow alphabet.
pub fn is_sku(raw: &str) -> bool {
    (1..=MAX_SKU_LEN).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// [`is_sku`] as a refusal (`invalid_sku`).
pub fn check_sku(raw: &str) -> Result<(), Invalid> {
    if is_sku(raw) {
        Ok(())
    } else {
        Err(Invalid::new(
            "invalid_sku",
            "sku must be 1-64 letters, digits, '.', '_' or '-'",
        ))
    }
}

/// An ISO 4217 currency code: three upper-case ASCII letters. Amounts are
/// integer minor units of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Currency(String);

impl Currency {
    /// Checks the shape only (`EUR`, not `eur` or `EURO`); `None` otherwise.
    pub fn parse(raw: &str) -> Option<Self> {
        is_currency(raw).then(|| Currency(raw.to_owned()))
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether `raw` has the shape of an ISO 4217 code (see [`Currency`]).
pub fn is_currency(raw: &str) -> bool {
    raw.len() == 3 && raw.bytes().all(|b| b.is_ascii_uppercase())
}

/// [`Currency::parse`] as a refusal (`invalid_currency`) that quotes the value.
pub fn check_currency(raw: &str) -> Result<Currency, Invalid> {
    Currency::parse(raw).ok_or_else(|| {
        Invalid::new(
            "invalid_currency",
            format!("currency `{raw}` must be an ISO 4217 code such as EUR"),
        )
    })
}

/// A coupon code in canonical (upper-case) form, so lookups are
/// case-insensitive. Orders checks the code a buyer types with the same rule
/// coupons applies when the coupon is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CouponCode(String);

impl CouponCode {
    /// 3-32 characters of `[A-Za-z0-9_-]`, upper-cased; `None` otherwise.
    pub fn parse(raw: &str) -> Option<Self> {
        let well_formed = (3..=32).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        well_formed.then(|| CouponCode(raw.to_ascii_uppercase()))
    }

    /// The canonical code.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The canonical code, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skus_are_1_to_64_url_safe_characters() {
        for ok in ["A", "sku-1", "TSHIRT_RED.XL", &"x".repeat(64), "0"] {
            assert!(is_sku(ok), "{ok}");
            assert_eq!(check_sku(ok), Ok(()));
        }
        for bad in ["", &"x".repeat(65), "a b", "a/b", "é", "a?b", "a%20"] {
            assert!(!is_sku(bad), "{bad}");
            assert_eq!(check_sku(bad).unwrap_err().code, "invalid_sku");
        }
    }

    #[test]
    fn currencies_are_three_upper_case_letters() {
        assert_eq!(Currency::parse("USD").unwrap().as_str(), "USD");
        assert!(is_currency("JPY"));
        for bad in ["usd", "US", "USDX", "U5D", "", "ÉUR"] {
            assert_eq!(Currency::parse(bad), None, "{bad:?}");
            assert!(!is_currency(bad), "{bad:?}");
        }
        let refusal = check_currency("euro").unwrap_err();
        assert_eq!(refusal.code, "invalid_currency");
        assert_eq!(
            refusal.message,
            "currency `euro` must be an ISO 4217 code such as EUR"
        );
    }

    #[test]
    fn coupon_codes_of_3_to_32_allowed_characters_are_upper_cased() {
        let code = |raw: &str| CouponCode::parse(raw).map(CouponCode::into_string);
        assert_eq!(code("abc").as_deref(), Some("ABC"));
        assert_eq!(
            code("Summer_Sale-2026").as_deref(),
            Some("SUMMER_SALE-2026")
        );
        assert_eq!(code(&"x".repeat(32)), Some("X".repeat(32)));
        for bad in [
            "",
            "ab",
            &"x".repeat(33),
            "has space",
            "émile",
            "a.b.c",
            "semi;colon",
        ] {
            assert_eq!(CouponCode::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn invalid_input_is_a_422_with_its_code_and_message() {
        let e: HttpError = Invalid::new("invalid_sku", "bad sku").into();
        assert_eq!(
            (e.status, e.code.as_str(), e.message.as_str()),
            (422, "invalid_sku", "bad sku")
        );
    }
}
