//! Who may call a plugin route. The caller's role comes from the bearer
//! credential (none: public; a publishable key: buyer; a secret key or the
//! admin token: merchant); the route's from its plugin's OpenAPI fragment
//! (`x-mercato-access`, see `plugin::routes::access`). Checked before the
//! plugin runs, so a refused call costs no instance, no SQL and no body read.
use super::error::ApiError;
use crate::app::App;
use crate::keys::Role;
use axum::http::{HeaderMap, header};
use subtle::ConstantTimeEq;

/// The header plugins read the caller's role from. The host sets it on every
/// call and drops whatever a client sent under that name.
pub(super) const ROLE_HEADER: &str = "x-mercato-role";

/// The caller's role; an unknown, revoked or malformed credential is refused
/// rather than treated as none, so a storefront with a stale key hears so.
pub(super) fn caller(app: &App, headers: &HeaderMap) -> Result<Role, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(Role::Public);
    };
    let presented = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or(ApiError::InvalidApiKey)?;
    if bool::from(presented.as_bytes().ct_eq(app.admin_token().as_bytes())) {
        return Ok(Role::Merchant);
    }
    app.keys()
        .authenticate(presented)
        .ok_or(ApiError::InvalidApiKey)
}

/// Refuses `caller` on a route that needs `required`: 401 without a key,
/// 403 with a key of too small a role.
pub(super) fn check(caller: Role, required: Role) -> Result<(), ApiError> {
    if caller >= required {
        return Ok(());
    }
    let need = match required {
        Role::Merchant => "a secret",
        _ => "a publishable or secret",
    };
    match caller {
        Role::Public => Err(ApiError::AuthenticationRequired(need)),
        // Only a buyer's key falls short of a route: name it as issued.
        _ => Err(ApiError::Forbidden {
            role: "publishable",
            need,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_passes_its_routes_and_is_told_what_the_others_need() {
        for (caller, required, allowed) in [
            (Role::Public, Role::Public, true),
            (Role::Public, Role::Buyer, false),
            (Role::Public, Role::Merchant, false),
            (Role::Buyer, Role::Public, true),
            (Role::Buyer, Role::Buyer, true),
            (Role::Buyer, Role::Merchant, false),
            (Role::Merchant, Role::Merchant, true),
        ] {
            assert_eq!(
                check(caller, required).is_ok(),
                allowed,
                "{caller:?} on {required:?}"
            );
        }
        assert!(matches!(
            check(Role::Public, Role::Buyer),
            Err(ApiError::AuthenticationRequired(_))
        ));
        assert!(matches!(
            check(Role::Buyer, Role::Merchant),
            Err(ApiError::Forbidden { .. })
        ));
    }
}
