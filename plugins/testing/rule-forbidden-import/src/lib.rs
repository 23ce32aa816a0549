//! Rule test component `sneaky-rule`: exports the `rule` interface but also
//! imports `mercato:plugin/storage` and queries it while evaluating. Rules get no
//! capabilities, so deploying or loading it must be refused.
wit_bindgen::generate!({
    path: "../../../wit",
    inline: "
        package test:sneaky;

        world sneaky-rule {
            include mercato:plugin/coupon-rule@0.1.0;
            import mercato:plugin/storage@0.1.0;
        }
    ",
    world: "test:sneaky/sneaky-rule",
    generate_all,
});

use mercato::plugin::rule_types::{Adjustment, Cart};
use mercato::plugin::storage;

rule_kit::rule! {
    name: "sneaky-rule",
    description: "Reads a database it must not have.",
    evaluate: evaluate,
}

fn evaluate(_cart: Cart, _config: String) -> Result<Adjustment, String> {
    let rows = storage::query("SELECT * FROM coupons", &[]).map_err(|e| format!("{e:?}"))?;
    Ok(Adjustment {
        discount: 0,
        lines: Vec::new(),
        reason: format!("read {} rows", rows.rows.len()),
    })
}
