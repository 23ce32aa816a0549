//! The coupon-rule world: WASI linked with no capability and nothing of ours
//! but the type-only `rule-types`; clocks frozen at the Unix epoch and a fixed
//! random seed, so a rule prices a cart the same way whenever it runs.
use crate::bindings::RuleManifest;
use crate::bindings::rule::{CouponRule, CouponRulePre};
use crate::runtime::{Call, CallFuture, World};
use std::time::Duration;
use wasmtime::Store;
use wasmtime::component::{InstancePre, Linker};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtxBuilder};

/// The only non-WASI import a rule may have: the type-only interface its
/// exports use.
const RULE_TYPES: &str = "mercato:plugin/rule-types@";

/// `world coupon-rule`.
pub struct RuleWorld;

impl World for RuleWorld {
    const NAME: &'static str = "mercato:plugin/coupon-rule";
    const SUBJECT: &'static str = "rule";
    const GRANTS: &'static str = "a coupon rule may import only WASI, linked with no capabilities";
    /// What a rule may print (its panic message, mostly); more is dropped.
    const OUTPUT_CAPACITY: usize = 4 * 1024;
    /// A rule's evaluation carries nothing but its input.
    type State = ();
    type Pre = CouponRulePre<Call<()>>;
    type Instance = CouponRule;
    type Manifest = RuleManifest;

    fn link(linker: &mut Linker<Call<()>>) -> anyhow::Result<()> {
        // `rule-types` has no functions; a rule imports it for its types only.
        linker.instance("mercato:plugin/rule-types@0.1.0")?;
        Ok(())
    }

    fn granted(import: &str) -> bool {
        import.starts_with("wasi:") || import.starts_with(RULE_TYPES)
    }

    fn pre(pre: InstancePre<Call<()>>) -> wasmtime::Result<Self::Pre> {
        CouponRulePre::new(pre)
    }

    fn instantiate<'a>(
        pre: &'a Self::Pre,
        store: &'a mut Store<Call<()>>,
    ) -> CallFuture<'a, CouponRule> {
        Box::pin(pre.instantiate_async(store))
    }

    fn describe<'a>(
        instance: &'a CouponRule,
        store: &'a mut Store<Call<()>>,
    ) -> CallFuture<'a, RuleManifest> {
        Box::pin(instance.mercato_plugin_rule().call_describe(store))
    }

    fn loading_state() {}

    fn wasi(builder: &mut WasiCtxBuilder) {
        builder
            .wall_clock(Frozen)
            .monotonic_clock(Frozen)
            .insecure_random_seed(0);
    }

    /// The trap, and the first lines the rule printed (its panic message).
    fn trap_message(error: &wasmtime::Error, stderr: &[u8]) -> String {
        let trap = error
            .downcast_ref::<wasmtime::Trap>()
            .map_or_else(|| format!("{error}"), |t| t.to_string());
        let text = String::from_utf8_lossy(stderr);
        let printed = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .take(2)
            .collect::<Vec<_>>()
            .join(" / ");
        if printed.is_empty() {
            trap
        } else {
            format!("{trap}; the rule printed: {printed}")
        }
    }
}

/// A clock stopped at the Unix epoch: WASI needs one, a rule gets no time.
struct Frozen;

impl HostWallClock for Frozen {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for Frozen {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}
