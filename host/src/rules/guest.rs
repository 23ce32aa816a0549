//! The guest-facing `rules` interface: a domain plugin (coupons) asks the host
//! to run a rule; the rule runs in its own sandbox, never in the caller's store.
use super::{Reason, Rules};
use crate::bindings::Cart;
use crate::bindings::mercato::plugin::{rule_types, rules};
use std::sync::Arc;

/// The rules capability's per-call state: the rules a call may run (`None`
/// while a plugin loads).
#[derive(Default)]
pub struct RulesCall {
    /// The deployed rules.
    pub rules: Option<Arc<Rules>>,
}

impl rule_types::Host for RulesCall {}

/// The guest's view of a rejection.
fn rejection(rejection: super::Rejection) -> rules::Rejection {
    rules::Rejection {
        code: rejection.reason.code().into(),
        message: rejection.to_string(),
        rule_version: rejection.version,
    }
}

/// The answer while a plugin loads: no rule can run yet.
fn loading(rule: &str) -> rules::Rejection {
    rules::Rejection {
        code: Reason::UnknownRule.code().into(),
        message: format!("rule `{rule}`: rules cannot be evaluated while loading"),
        rule_version: None,
    }
}

impl rules::Host for RulesCall {
    async fn validate(
        &mut self,
        rule: String,
        config: String,
        currency: String,
    ) -> wasmtime::Result<Result<(), rules::Rejection>> {
        let Some(registry) = self.rules.clone() else {
            return Ok(Err(loading(&rule)));
        };
        Ok(registry
            .validate(&rule, &config, &currency)
            .await
            .map(|_| ())
            .map_err(rejection))
    }

    async fn evaluate(
        &mut self,
        rule: String,
        cart: Cart,
        config: String,
    ) -> wasmtime::Result<Result<rules::Evaluation, rules::Rejection>> {
        let Some(registry) = self.rules.clone() else {
            return Ok(Err(loading(&rule)));
        };
        Ok(registry
            .evaluate(&rule, &cart, &config)
            .await
            .map(|e| rules::Evaluation {
                adjustment: e.adjustment,
                rule_version: e.version,
                fuel: e.fuel,
                micros: e.micros,
            })
            .map_err(rejection))
    }
}
