//! The coupon-rule world: WASI linked with no capability and nothing of ours
//! but the type-only `rule-types`; clocks frozen at the Unix epoch and a fixed
//! random seed, so a rule prices a cart the same way whenever it runs.
use crate::bindings::RuleManifest;
use crate::bindings::rule::{CouponRule, CouponRuleIndices};
use crate::bindings::rule_config::exports::mercato::plugin::rule_config;
use crate::runtime::{Call, CallFuture, World};
use std::time::Duration;
use wasmtime::Store;
use wasmtime::component::types::{ComponentExtern, ComponentItem};
use wasmtime::component::{InstancePre, Linker, Type};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtxBuilder};

/// The only non-WASI import a rule may have: the type-only interface its
/// exports use.
const RULE_TYPES: &str = "mercato:plugin/rule-types@";

/// The optional export that checks a coupon's config.
const RULE_CONFIG: &str = "mercato:plugin/rule-config@0.1.0";

/// A rule pre-instantiated, with its exports found: `rule` always,
/// `rule-config` when the rule has it.
#[derive(Clone)]
pub struct RulePre {
    pre: InstancePre<Call<()>>,
    rule: CouponRuleIndices,
    config: Option<rule_config::GuestIndices>,
}

impl RulePre {
    /// True when the rule exports `rule-config` (`validate-config`).
    pub fn validates_config(&self) -> bool {
        self.config.is_some()
    }
}

/// One instance of a rule: its `rule` export and, when it has one, its
/// `rule-config` export.
pub struct RuleInstance {
    /// `describe` and `evaluate`.
    pub rule: CouponRule,
    /// `validate-config`, when exported.
    pub config: Option<rule_config::Guest>,
}

/// Finds the optional `rule-config` export: `None` when the rule does not
/// have it, an error when it has one that is not the interface of
/// `coupon-rule.wit` (so such a rule is refused at deploy, never misread).
fn rule_config_export(
    pre: &InstancePre<Call<()>>,
) -> wasmtime::Result<Option<rule_config::GuestIndices>> {
    let component = pre.component().component_type();
    let engine = pre.engine();
    let Some(export) = component.get_export(engine, RULE_CONFIG) else {
        return Ok(None);
    };
    let ComponentExtern {
        ty: ComponentItem::ComponentInstance(instance),
        ..
    } = export
    else {
        wasmtime::bail!("export `{RULE_CONFIG}` is not an interface");
    };
    let fits = match instance.get_export(engine, "validate-config") {
        Some(ComponentExtern {
            ty: ComponentItem::ComponentFunc(func),
            ..
        }) => {
            let params: Vec<Type> = func.params().map(|(_, ty)| ty).collect();
            let results: Vec<Type> = func.results().collect();
            matches!(params.as_slice(), [Type::String])
                && matches!(results.as_slice(), [Type::Result(r)]
                    if r.ok().is_none() && matches!(r.err(), Some(Type::String)))
        }
        _ => false,
    };
    if !fits {
        wasmtime::bail!(
            "export `{RULE_CONFIG}` must have `validate-config: func(config: string) -> result<_, string>`"
        );
    }
    rule_config::GuestIndices::new(pre).map(Some)
}

/// `world coupon-rule`, or `coupon-rule-with-config` when the rule also
/// exports `rule-config`: one world to the host, which looks that export up.
pub struct RuleWorld;

impl World for RuleWorld {
    const NAME: &'static str = "mercato:plugin/coupon-rule";
    const SUBJECT: &'static str = "rule";
    const GRANTS: &'static str = "a coupon rule may import only WASI, linked with no capabilities";
    /// What a rule may print (its panic message, mostly); more is dropped.
    const OUTPUT_CAPACITY: usize = 4 * 1024;
    /// A rule's evaluation carries nothing but its input.
    type State = ();
    type Pre = RulePre;
    type Instance = RuleInstance;
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
        let rule = CouponRuleIndices::new(&pre)?;
        let config = rule_config_export(&pre)?;
        Ok(RulePre { pre, rule, config })
    }

    fn instantiate<'a>(
        pre: &'a Self::Pre,
        store: &'a mut Store<Call<()>>,
    ) -> CallFuture<'a, RuleInstance> {
        Box::pin(async move {
            let instance = pre.pre.instantiate_async(&mut *store).await?;
            let rule = pre.rule.load(&mut *store, &instance)?;
            let config = match &pre.config {
                Some(indices) => Some(indices.load(&mut *store, &instance)?),
                None => None,
            };
            Ok(RuleInstance { rule, config })
        })
    }

    fn describe<'a>(
        instance: &'a RuleInstance,
        store: &'a mut Store<Call<()>>,
    ) -> CallFuture<'a, RuleManifest> {
        Box::pin(instance.rule.mercato_plugin_rule().call_describe(store))
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
