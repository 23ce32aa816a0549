//! The domain world (`world domain`): what a shop plugin imports and what one
//! of its calls carries. Each capability owns its per-call state and links its
//! own interface; this module only puts them together.
use crate::bindings::mercato::plugin::{
    clock, log, outbound, outbox, rule_types, rules, storage, types,
};
use crate::bindings::{Domain, DomainPre, Manifest};
use crate::logging::LogCall;
use crate::outbound::{OutboundCall, Policy};
use crate::outbox::OutboxCall;
use crate::rules::{Rules, RulesCall};
use crate::runtime::{Call, CallFuture, Compiled, Sandbox, World};
use crate::storage::{StorageCall, Tx};
use std::sync::Arc;
use std::time::Instant;
use wasmtime::Store;
use wasmtime::component::{HasSelf, InstancePre, Linker};

/// `world domain`.
pub struct DomainWorld;

/// A compiled plugin version.
pub type CompiledPlugin = Compiled<DomainWorld>;

/// The sandbox domain plugins run in.
pub type PluginSandbox = Sandbox<DomainWorld>;

/// The per-call state of a domain plugin: one part per capability.
pub struct CallState {
    /// `log` and `clock`.
    pub log: LogCall,
    /// `storage`: the call's transaction.
    pub storage: StorageCall,
    /// `outbox`: the events the call emitted.
    pub outbox: OutboxCall,
    /// `rules`: the rules the call may run.
    pub rules: RulesCall,
    /// `outbound`: the HTTP requests the call queued.
    pub outbound: OutboundCall,
}

impl CallState {
    /// State for a call of `plugin` inside `tx` that may run `rules`, emit
    /// up to `max_event_bytes` of events and queue requests `outbound` allows
    /// (neither when `read_only`).
    pub fn new(
        plugin: Arc<str>,
        tx: Tx,
        rules: Arc<Rules>,
        outbound: Arc<Policy>,
        max_event_bytes: usize,
        read_only: bool,
    ) -> Self {
        CallState {
            log: LogCall { plugin },
            storage: StorageCall { tx: Some(tx) },
            outbox: OutboxCall::new(max_event_bytes, read_only),
            rules: RulesCall { rules: Some(rules) },
            outbound: OutboundCall::new(outbound, read_only),
        }
    }
}

impl World for DomainWorld {
    const NAME: &'static str = "mercato:plugin/domain";
    const SUBJECT: &'static str = "component";
    const GRANTS: &'static str = "plugins may import only mercato:plugin/* and WASI";
    /// Captured guest output per call; beyond this the guest's writes fail.
    const OUTPUT_CAPACITY: usize = 64 * 1024;
    type State = CallState;
    type Pre = DomainPre<Call<CallState>>;
    type Instance = Domain;
    type Manifest = Manifest;

    fn link(linker: &mut Linker<Call<CallState>>) -> anyhow::Result<()> {
        types::add_to_linker::<_, HasSelf<LogCall>>(linker, |c| &mut c.state.log)?;
        log::add_to_linker::<_, HasSelf<LogCall>>(linker, |c| &mut c.state.log)?;
        clock::add_to_linker::<_, HasSelf<LogCall>>(linker, |c| &mut c.state.log)?;
        storage::add_to_linker::<_, HasSelf<StorageCall>>(linker, |c| &mut c.state.storage)?;
        outbox::add_to_linker::<_, HasSelf<OutboxCall>>(linker, |c| &mut c.state.outbox)?;
        rule_types::add_to_linker::<_, HasSelf<RulesCall>>(linker, |c| &mut c.state.rules)?;
        rules::add_to_linker::<_, HasSelf<RulesCall>>(linker, |c| &mut c.state.rules)?;
        outbound::add_to_linker::<_, HasSelf<OutboundCall>>(linker, |c| &mut c.state.outbound)?;
        Ok(())
    }

    fn granted(import: &str) -> bool {
        import.starts_with("mercato:plugin/") || import.starts_with("wasi:")
    }

    fn pre(pre: InstancePre<Call<CallState>>) -> wasmtime::Result<Self::Pre> {
        DomainPre::new(pre)
    }

    fn instantiate<'a>(
        pre: &'a Self::Pre,
        store: &'a mut Store<Call<CallState>>,
    ) -> CallFuture<'a, Domain> {
        Box::pin(pre.instantiate_async(store))
    }

    fn describe<'a>(
        instance: &'a Domain,
        store: &'a mut Store<Call<CallState>>,
    ) -> CallFuture<'a, Manifest> {
        Box::pin(instance.mercato_plugin_plugin().call_describe(store))
    }

    /// Loading has no transaction, rules or events: a plugin's `describe`
    /// that tries them gets an error.
    fn loading_state() -> CallState {
        CallState {
            log: LogCall {
                plugin: "loading".into(),
            },
            storage: StorageCall::default(),
            outbox: OutboxCall::new(0, true),
            rules: RulesCall::default(),
            outbound: OutboundCall::default(),
        }
    }

    /// The database stops a statement at the call's deadline too.
    fn started(state: &mut CallState, deadline: Instant) {
        if let Some(tx) = state.storage.tx.as_mut() {
            tx.start_deadline(deadline);
        }
    }

    fn stopped_at_deadline(state: &CallState) -> bool {
        state.storage.deadline_exceeded()
    }
}
