//! Glue shared by the rule test components (`rule-flat-v1`/`-v2`,
//! `rule-hostile`, `rule-forbidden-import`). Each of them names its rule and
//! says how it evaluates a cart (and, optionally, checks a config); [`rule!`]
//! writes the `rule` (and `rule-config`) interface around that, so the
//! components differ only in what they test.
//!
//! The example rules in `plugins/rules/` keep their own glue on purpose: a
//! partner copies one of them whole, with nothing but `wit/coupon-rule.wit`
//! (`docs/coupon-rules.md`).
#![no_std]

/// Implements the `rule` interface and exports it: `describe` answers `name`,
/// the calling crate's package version and `description`; `evaluate` calls
/// `evaluate(cart, config)`. With `validate_config: f` (world
/// `coupon-rule-with-config`) it also implements `rule-config`, whose
/// `validate-config` calls `f(config)`.
///
/// Invoke it in the module where the component's `wit_bindgen::generate!`
/// put `exports`, `mercato` and `export!` (they are resolved there).
#[macro_export]
macro_rules! rule {
    (name: $name:expr, description: $description:expr, evaluate: $evaluate:expr,
     validate_config: $validate:expr $(,)?) => {
        impl exports::mercato::plugin::rule_config::Guest for Rule {
            fn validate_config(
                config: ::std::string::String,
            ) -> ::core::result::Result<(), ::std::string::String> {
                ($validate)(config)
            }
        }

        $crate::rule! { name: $name, description: $description, evaluate: $evaluate }
    };
    (name: $name:expr, description: $description:expr, evaluate: $evaluate:expr $(,)?) => {
        struct Rule;

        impl exports::mercato::plugin::rule::Guest for Rule {
            fn describe() -> mercato::plugin::rule_types::RuleManifest {
                mercato::plugin::rule_types::RuleManifest {
                    name: ::std::string::String::from($name),
                    version: ::std::string::String::from(env!("CARGO_PKG_VERSION")),
                    description: ::std::string::String::from($description),
                }
            }

            fn evaluate(
                cart: mercato::plugin::rule_types::Cart,
                config: ::std::string::String,
            ) -> ::core::result::Result<
                mercato::plugin::rule_types::Adjustment,
                ::std::string::String,
            > {
                ($evaluate)(cart, config)
            }
        }

        export!(Rule);
    };
}
