//! Who called: the role the host found in the caller's API key, and the
//! client secret a buyer reads back an object with (Stripe's PaymentIntent
//! `client_secret`). The host checks each route's declared role
//! (`x-mercato-access` in the OpenAPI fragment) before the plugin runs; a
//! plugin uses [`Request::role`] for what depends on the object, such as
//! which buyer's order this is.
use crate::http::{HttpError, Request};

/// The caller's role, from least to most trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// No key.
    Public,
    /// A publishable key: a storefront acting for a buyer.
    Buyer,
    /// A secret key: the merchant.
    Merchant,
}

/// The header the host puts the role in (any client-sent one is dropped).
pub const ROLE_HEADER: &str = "x-mercato-role";

impl Request {
    /// The caller's role; `Public` when the host gave none.
    pub fn role(&self) -> Role {
        match self.header(ROLE_HEADER) {
            Some("merchant") => Role::Merchant,
            Some("buyer") => Role::Buyer,
            _ => Role::Public,
        }
    }

    /// Lets the merchant read any object, and anyone else only the one
    /// whose `client_secret` query parameter is `secret` (the object's, as
    /// answered when it was made). Without the parameter: 403
    /// `client_secret_required`; with another one, or for an object that
    /// has none: 404 `not_found`, as if there were no such object, so a
    /// guess tells nothing.
    pub fn authorize_client_secret(
        &self,
        secret: Option<&str>,
        what: &str,
    ) -> Result<(), HttpError> {
        if self.role() == Role::Merchant {
            return Ok(());
        }
        let presented = self.query_param("client_secret").unwrap_or_default();
        if presented.is_empty() {
            return Err(HttpError::new(
                403,
                "client_secret_required",
                &format!(
                    "reading a {what} with a publishable key needs ?client_secret=, as answered when it was made"
                ),
            ));
        }
        match secret {
            Some(secret) if equal(secret.as_bytes(), presented.as_bytes()) => Ok(()),
            _ => Err(HttpError::not_found(
                "not_found",
                &format!("no {what} with this id and client secret"),
            )),
        }
    }
}

/// Compares without stopping at the first difference, so the time taken
/// says nothing about how much of a guess was right.
fn equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A new client secret for the object `id`: `{id}_secret_` and 32 random
/// hex digits.
pub fn new_client_secret(id: &str) -> String {
    format!("{id}_secret_{}", uuid::Uuid::new_v4().simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(role: Option<&str>, query: &str) -> Request {
        let mut req = Request::from_parts("GET", "/x", query, Vec::new());
        if let Some(role) = role {
            req.headers.push((ROLE_HEADER.into(), role.into()));
        }
        req
    }

    #[test]
    fn the_merchant_reads_anything_and_a_buyer_only_with_the_secret() {
        let secret = new_client_secret("o1");
        assert!(secret.starts_with("o1_secret_") && secret.len() == "o1_secret_".len() + 32);
        assert_ne!(secret, new_client_secret("o1"));
        let merchant = request(Some("merchant"), "");
        assert_eq!(merchant.role(), Role::Merchant);
        assert!(merchant.authorize_client_secret(None, "order").is_ok());

        let buyer = request(Some("buyer"), &format!("client_secret={secret}"));
        assert_eq!(buyer.role(), Role::Buyer);
        assert!(
            buyer
                .authorize_client_secret(Some(&secret), "order")
                .is_ok()
        );
        let other = new_client_secret("o1");
        assert_eq!(
            buyer
                .authorize_client_secret(Some(&other), "order")
                .unwrap_err()
                .status,
            404
        );
        assert_eq!(
            buyer
                .authorize_client_secret(None, "order")
                .unwrap_err()
                .status,
            404,
            "an object made before client secrets is the merchant's only"
        );
        let bare = request(Some("buyer"), "");
        assert_eq!(
            bare.authorize_client_secret(Some(&secret), "order")
                .unwrap_err()
                .code,
            "client_secret_required"
        );
        assert_eq!(request(Some("admin"), "").role(), Role::Public);
        assert_eq!(request(None, "").role(), Role::Public);
    }
}
