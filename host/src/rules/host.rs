//! Host side of the `rules` import: a domain plugin (coupons) asks the host to
//! run a rule; the rule runs in its own sandbox, never in the caller's store.
use crate::bindings::mercato::plugin::rules;
use crate::bindings::{Cart, mercato::plugin::rule_types};
use crate::runtime::CallState;

impl rule_types::Host for CallState {}

impl rules::Host for CallState {
    async fn evaluate(
        &mut self,
        rule: String,
        cart: Cart,
        config: String,
    ) -> wasmtime::Result<Result<rules::Evaluation, rules::Rejection>> {
        let Some(registry) = self.rules.clone() else {
            return Ok(Err(rules::Rejection {
                code: super::Reason::UnknownRule.code().into(),
                message: format!("rule `{rule}`: rules cannot be evaluated while loading"),
                rule_version: None,
            }));
        };
        Ok(match registry.evaluate(&rule, &cart, &config).await {
            Ok(e) => Ok(rules::Evaluation {
                adjustment: e.adjustment,
                rule_version: e.version,
                fuel: e.fuel,
                micros: e.micros,
            }),
            Err(rejection) => Err(rules::Rejection {
                code: rejection.reason.code().into(),
                message: rejection.to_string(),
                rule_version: rejection.version,
            }),
        })
    }
}
