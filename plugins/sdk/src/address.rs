//! Shipping addresses: the one rule orders and checkout both apply, and the
//! snapshot shipping receives in `OrderPaid`.
use crate::validate::Invalid;
use serde::{Deserialize, Serialize};

/// A postal address to ship to, as given by the buyer and snapshotted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShippingAddress {
    /// The recipient's name.
    pub name: String,
    /// Street and number.
    pub line1: String,
    /// Apartment, floor, company; optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    /// City or town.
    pub city: String,
    /// Postal code as written locally (letters, digits, spaces, `-`).
    pub postal_code: String,
    /// ISO 3166-1 alpha-2 country code, upper case (`DE`, `US`).
    pub country: String,
}

/// Longest name, line or city, in characters.
pub const MAX_FIELD_CHARS: usize = 200;

/// Every ISO 3166-1 alpha-2 code in use.
const COUNTRIES: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ \
CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR \
GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP \
KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT \
MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW \
SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG \
UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

/// Whether `code` is an assigned ISO 3166-1 alpha-2 code (upper case).
pub fn is_country(code: &str) -> bool {
    code.len() == 2 && COUNTRIES.split(' ').any(|c| c == code)
}

impl ShippingAddress {
    /// Checks every field; the refusal (`invalid_shipping_address`) names the
    /// first field that is wrong. Fields are trimmed first.
    pub fn validated(self) -> Result<Self, Invalid> {
        let bad = |field: &str, rule: &str| {
            Invalid::new(
                "invalid_shipping_address",
                format!("shipping_address.{field} {rule}"),
            )
        };
        let text = |field: &str, raw: String| -> Result<String, Invalid> {
            let value = raw.trim().to_owned();
            if value.is_empty() || value.chars().count() > MAX_FIELD_CHARS {
                return Err(bad(field, "must be 1-200 characters"));
            }
            if value.chars().any(char::is_control) {
                return Err(bad(field, "must not contain control characters"));
            }
            Ok(value)
        };
        let line2 = match self.line2.map(|l| l.trim().to_owned()) {
            None => None,
            Some(l) if l.is_empty() => None,
            Some(l) => Some(text("line2", l)?),
        };
        let postal_code = self.postal_code.trim().to_owned();
        if !(1..=16).contains(&postal_code.len())
            || !postal_code
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b' ' || b == b'-')
        {
            return Err(bad(
                "postal_code",
                "must be 1-16 letters, digits, spaces or '-'",
            ));
        }
        if !is_country(&self.country) {
            return Err(bad(
                "country",
                "must be an ISO 3166-1 alpha-2 code such as DE or US",
            ));
        }
        Ok(ShippingAddress {
            name: text("name", self.name)?,
            line1: text("line1", self.line1)?,
            line2,
            city: text("city", self.city)?,
            postal_code,
            country: self.country,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address() -> ShippingAddress {
        ShippingAddress {
            name: " Ada Lovelace ".into(),
            line1: "12 St James's Square".into(),
            line2: Some("".into()),
            city: "London".into(),
            postal_code: "SW1Y 4JH".into(),
            country: "GB".into(),
        }
    }

    #[test]
    fn a_valid_address_is_trimmed_and_an_empty_line2_dropped() {
        let a = address().validated().unwrap();
        assert_eq!(a.name, "Ada Lovelace");
        assert_eq!(a.line2, None);
        assert_eq!(
            serde_json::to_value(&a).unwrap().get("line2"),
            None,
            "absent line2 is not serialized"
        );
    }

    #[test]
    fn each_bad_field_is_named() {
        type Break = fn(&mut ShippingAddress);
        let cases: [(Break, &str); 6] = [
            (|a| a.name = "  ".into(), "shipping_address.name"),
            (|a| a.line1 = "x".repeat(201), "shipping_address.line1"),
            (|a| a.city = "a\nb".into(), "shipping_address.city"),
            (
                |a| a.postal_code = "12;34".into(),
                "shipping_address.postal_code",
            ),
            (|a| a.country = "gb".into(), "shipping_address.country"),
            (|a| a.country = "XX".into(), "shipping_address.country"),
        ];
        for (break_it, field) in cases {
            let mut a = address();
            break_it(&mut a);
            let e = a.validated().unwrap_err();
            assert_eq!(e.code, "invalid_shipping_address");
            assert!(e.message.starts_with(field), "{}", e.message);
        }
    }

    #[test]
    fn countries_are_assigned_alpha_2_codes() {
        for ok in ["DE", "US", "GB", "JP", "ZW"] {
            assert!(is_country(ok));
        }
        for bad in ["", "D", "DEU", "de", "XX", "UK", "AD AE"] {
            assert!(!is_country(bad), "{bad}");
        }
    }
}
