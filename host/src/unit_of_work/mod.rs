//! The unit of work: every plugin call is one transaction on that plugin's
//! database. `BEGIN` → host checks (idempotency key, consumer cursor) → the guest
//! runs its SQL and emits events → `COMMIT` with the host's records if the guest
//! succeeded (2xx, or a response the plugin marked `commit` / `ok`),
//! `ROLLBACK` otherwise. GET runs read-only.
mod batch;
mod idempotency;
#[cfg(test)]
mod tests;

use crate::bindings::{Domain, Event, GuestError, Request, Response};
use crate::metrics::Metrics;
use crate::outbound::{self, QueuedRequest};
use crate::outbox::inbox::{already_consumed, record_consumed, record_handled};
use crate::outbox::{self, Delivery, Flushed, OutboxEvent, PendingEvent};
use crate::plugin::{CallState, Plugin, PluginSandbox};
use crate::retention::IdempotencyConfig;
use crate::rules::Rules;
use crate::runtime::{Call, CallError, CallFuture, Queue};
use crate::storage::{CallBudget, StorageError, Tx, TxMode};
use crate::trace::TraceContext;
pub use batch::{BatchOutcome, MAX_BATCH};
use idempotency::{KeyGuard, claim_in_database, request_hash, store_response, stored_response};
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;
use wasmtime::Store;

/// Why a request could not be answered by the plugin.
#[derive(Debug, thiserror::Error)]
pub enum RequestFailure {
    /// The guest trapped, timed out or ran out of memory or fuel.
    #[error(transparent)]
    Call(#[from] CallError),
    /// The database failed (or a failed statement aborted the transaction).
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The guest returned a status outside 100..=599.
    #[error("plugin returned invalid HTTP status {0}")]
    InvalidStatus(u16),
    /// The same Idempotency-Key is being processed right now.
    #[error("a request with this Idempotency-Key is still in progress")]
    KeyInProgress,
    /// The Idempotency-Key was first used with a different request.
    #[error("this Idempotency-Key was used with a different request")]
    KeyReused,
}

/// A response and whether it was replayed from an earlier identical request.
pub struct Answer {
    /// The plugin's response.
    pub response: Response,
    /// True when served from the idempotency store.
    pub replayed: bool,
}

/// The outcome of one event delivery attempt.
#[derive(Debug)]
pub enum EventOutcome {
    /// The handler ran and its effects committed.
    Handled,
    /// The subscriber had already consumed the event; nothing ran.
    AlreadyHandled,
    /// In a cluster: another host took over this stream; nothing committed.
    Fenced,
}

/// Runs plugin calls, each as one transaction; cheap to clone.
#[derive(Clone)]
pub struct UnitOfWork {
    inner: Arc<Inner>,
}

struct Inner {
    sandbox: Arc<PluginSandbox>,
    rules: Arc<Rules>,
    metrics: Arc<Metrics>,
    idempotency: IdempotencyConfig,
}

/// What a call left behind: its result, its transaction (still open) and the
/// events it emitted.
struct Ran<R> {
    result: Result<R, CallError>,
    tx: Tx,
    events: Vec<PendingEvent>,
    requests: Vec<QueuedRequest>,
}

impl UnitOfWork {
    /// Calls of plugins in `sandbox` that may run `rules`.
    pub fn new(
        sandbox: Arc<PluginSandbox>,
        rules: Arc<Rules>,
        metrics: Arc<Metrics>,
        idempotency: IdempotencyConfig,
    ) -> Self {
        UnitOfWork {
            inner: Arc::new(Inner {
                sandbox,
                rules,
                metrics,
                idempotency,
            }),
        }
    }

    /// Runs `req` through `plugin` as one unit of work, as a span of the
    /// request's trace `trace`.
    pub async fn call_request(
        &self,
        plugin: &Arc<Plugin>,
        req: Request,
        idempotency_key: Option<String>,
        request_id: &str,
        trace: Option<TraceContext>,
    ) -> Result<Answer, RequestFailure> {
        let _in_flight = self.inner.metrics.start_call(&plugin.name);
        let read_only = matches!(req.method.as_str(), "GET" | "HEAD");
        let mode = if read_only {
            TxMode::ReadOnly
        } else {
            TxMode::ReadWrite
        };
        let idempotency_key = idempotency_key.filter(|_| !read_only);
        let _guard = match &idempotency_key {
            Some(key) => Some(KeyGuard::claim(&plugin.slot, key)?),
            None => None,
        };
        let hash = idempotency_key.as_ref().map(|_| request_hash(&req));
        let mut tx = plugin.slot.db.begin_call(mode, budget(plugin)).await?;
        if let (Some(key), Some(hash)) = (&idempotency_key, &hash) {
            if !claim_in_database(&mut tx, plugin.slot.db.kind(), &plugin.name, key).await? {
                tx.rollback().await?;
                return Err(RequestFailure::KeyInProgress);
            }
            let cutoff = self
                .inner
                .idempotency
                .cutoff(time::OffsetDateTime::now_utc());
            if let Some(answer) = stored_response(&mut tx, key, hash, &cutoff).await? {
                tx.rollback().await?;
                return answer;
            }
        }

        let Ran {
            result,
            tx,
            events,
            requests,
        } = self
            .run(plugin, tx, read_only, request_id, trace, req)
            .await;
        let response = match result {
            Ok(response) => response,
            Err(e) => {
                tracing::error!(plugin = %plugin.name, version = %plugin.version, request_id, error = %e, "plugin call failed");
                abandon(tx, &e).await?;
                return Err(e.into());
            }
        };
        if !(100..=599).contains(&response.status) {
            tx.rollback().await?;
            return Err(RequestFailure::InvalidStatus(response.status));
        }
        if read_only || !Request::succeeded(&response) {
            tx.rollback().await?;
            return Ok(Answer {
                response,
                replayed: false,
            });
        }
        let mut tx = tx;
        if let (Some(key), Some(hash)) = (&idempotency_key, &hash) {
            store_response(&mut tx, key, hash, &response).await?;
        }
        let head = outbox::flush(&mut tx, &events).await?;
        outbound::store::queue(&mut tx, &requests).await?;
        tx.commit().await?;
        committed(plugin, head, &requests);
        Ok(Answer {
            response,
            replayed: false,
        })
    }

    /// Delivers `event` to `subscriber` as one unit of work.
    pub async fn call_event(
        &self,
        subscriber: &Arc<Plugin>,
        event: &OutboxEvent,
        attempt: u32,
        delivery: Delivery,
    ) -> Result<EventOutcome, String> {
        let _in_flight = self.inner.metrics.start_call(&subscriber.name);
        let mut tx = subscriber
            .slot
            .db
            .begin_call(TxMode::ReadWrite, budget(subscriber))
            .await
            .map_err(|e| e.to_string())?;
        if already_consumed(&mut tx, event, delivery)
            .await
            .map_err(|e| e.to_string())?
        {
            tx.rollback().await.map_err(|e| e.to_string())?;
            return Ok(EventOutcome::AlreadyHandled);
        }
        let wit_event = event.to_wit(attempt);
        let Ran {
            result,
            tx,
            events,
            requests,
        } = self
            .run(subscriber, tx, false, &event.id, event.trace(), wit_event)
            .await;
        let failure = match result {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(describe_guest_error(&e)),
            Err(e) => {
                tracing::error!(plugin = %subscriber.name, version = %subscriber.version, event = %event.id, error = %e, "event handler failed");
                abandon(tx, &e).await.map_err(|e| e.to_string())?;
                return Err(e.to_string());
            }
        };
        if let Some(failure) = failure {
            tx.rollback().await.map_err(|e| e.to_string())?;
            return Err(failure);
        }
        let mut tx = tx;
        let committed: Result<Option<Flushed>, StorageError> = async {
            // Recorded only now, after the guest ran: before it, the host only
            // read, so nothing the host wrote is in the transaction while
            // plugin code runs. A concurrent delivery of the same event that
            // committed first leaves nothing to record: undo this one.
            if !record_consumed(&mut tx, event, delivery).await? {
                tx.rollback().await?;
                return Ok(None);
            }
            if delivery != Delivery::Report {
                record_handled(&mut tx, &[event], &subscriber.version).await?;
            }
            let head = outbox::flush(&mut tx, &events).await?;
            outbound::store::queue(&mut tx, &requests).await?;
            tx.commit().await?;
            Ok(Some(head))
        }
        .await;
        match committed {
            Ok(Some(head)) => {
                self::committed(subscriber, head, &requests);
                Ok(EventOutcome::Handled)
            }
            Ok(None) => Ok(EventOutcome::AlreadyHandled),
            Err(StorageError::Fenced(_)) => Ok(EventOutcome::Fenced),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Runs `export` on `plugin` inside `tx` in a `plugin.call` span that
    /// continues `parent`, logs what the guest printed (tagged with `id`)
    /// and counts the call. The events it emitted carry its span.
    async fn run<E: Export>(
        &self,
        plugin: &Plugin,
        tx: Tx,
        read_only: bool,
        id: &str,
        parent: Option<TraceContext>,
        export: E,
    ) -> Ran<E::Output> {
        let span = tracing::info_span!(
            "plugin.call",
            plugin = %plugin.name,
            version = %plugin.version,
            kind = E::KIND,
            target = export.target(&plugin.name),
            outcome = tracing::field::Empty,
            fuel = tracing::field::Empty,
            micros = tracing::field::Empty,
            trace_id = tracing::field::Empty,
        );
        let trace = crate::trace::enter(&span, parent);
        let mut state = CallState::new(
            plugin.name.clone(),
            tx,
            self.inner.rules.clone(),
            plugin.outbound.clone(),
            plugin.limits.event_bytes(),
            read_only,
        );
        if plugin.read_model {
            state.outbox.deny(
                "a read model emits no events: its database must stay rebuildable from its sources alone",
            );
        }
        let finished = self
            .inner
            .sandbox
            .call(
                &plugin.compiled.pre,
                state,
                plugin.limits,
                Queue::Unbounded,
                move |instance, store| export.call(instance, store),
            )
            .instrument(span.clone())
            .await
            .expect("an unbounded queue always gets a slot");
        let state = finished.state;
        state.log.output(id, &finished.stdout, &finished.stderr);
        let outcome = match &finished.result {
            Ok(r) => E::outcome(r),
            Err(e) => e.kind(),
        };
        span.record("outcome", outcome);
        span.record("fuel", finished.fuel);
        span.record(
            "micros",
            u64::try_from(finished.elapsed.as_micros()).unwrap_or(u64::MAX),
        );
        let mut events = state.outbox.events;
        for event in &mut events {
            event.trace = Some(trace);
        }
        self.inner.metrics.call(
            &plugin.name,
            &plugin.version,
            E::KIND,
            outcome,
            finished.elapsed.as_secs_f64(),
        );
        Ran {
            result: finished.result,
            tx: state
                .storage
                .tx
                .expect("the call's transaction is returned with its state"),
            events,
            requests: state.outbound.requests,
        }
    }
}

/// After a commit: wakes the relay's streams of `plugin` up to the new head
/// (or its numberer, for staged events) and its outbound worker if the call
/// queued requests.
fn committed(plugin: &Plugin, flushed: Flushed, requests: &[QueuedRequest]) {
    match flushed {
        Flushed::Nothing => {}
        Flushed::Numbered(head) => {
            plugin.slot.head.send_replace(head);
        }
        Flushed::Staged => {
            plugin.slot.staged.send_modify(|n| *n += 1);
        }
    }
    if !requests.is_empty() {
        plugin.slot.outbound.notify_one();
    }
}

/// A plugin export a unit of work runs: what it takes, how it is called and
/// which answers count as a success.
trait Export: Send + 'static {
    /// `request` or `event`, for metrics.
    const KIND: &'static str;
    /// What the export returns.
    type Output: Send + 'static;
    /// Calls the export on `instance`.
    fn call<'a>(
        self,
        instance: &'a Domain,
        store: &'a mut Store<Call<CallState>>,
    ) -> CallFuture<'a, Self::Output>;
    /// True for an answer that commits.
    fn succeeded(output: &Self::Output) -> bool;
    /// The call's outcome label when the guest returned: `ok`, or why not.
    fn outcome(output: &Self::Output) -> &'static str;
    /// What the call of `plugin` is for, in its span: `METHOD /path` as the
    /// client asked it, or the event's `source.Type`.
    fn target(&self, plugin: &str) -> String;
}

impl Export for Request {
    const KIND: &'static str = "request";
    type Output = Response;

    fn call<'a>(
        self,
        instance: &'a Domain,
        store: &'a mut Store<Call<CallState>>,
    ) -> CallFuture<'a, Response> {
        Box::pin(async move {
            let plugin = instance.mercato_plugin_plugin();
            plugin.call_handle_request(store, &self).await
        })
    }

    /// A 2xx answer, or another the plugin asked to commit (a declined
    /// card: 402 with the attempt recorded).
    fn succeeded(response: &Response) -> bool {
        (200..300).contains(&response.status) || response.commit
    }

    fn target(&self, plugin: &str) -> String {
        let path = if self.path == "/" { "" } else { &self.path };
        format!("{} /{plugin}{path}", self.method)
    }

    /// A client's mistake (4xx) apart from the plugin's own failure (5xx):
    /// only the second is something to alert on.
    fn outcome(response: &Response) -> &'static str {
        if Self::succeeded(response) {
            "ok"
        } else if (400..500).contains(&response.status) {
            "client_error"
        } else {
            "server_error"
        }
    }
}

impl Export for Event {
    const KIND: &'static str = "event";
    type Output = Result<(), GuestError>;

    fn call<'a>(
        self,
        instance: &'a Domain,
        store: &'a mut Store<Call<CallState>>,
    ) -> CallFuture<'a, Self::Output> {
        Box::pin(async move {
            let plugin = instance.mercato_plugin_plugin();
            plugin.call_handle_event(store, &self).await
        })
    }

    fn succeeded(handled: &Self::Output) -> bool {
        handled.is_ok()
    }

    fn outcome(handled: &Self::Output) -> &'static str {
        if handled.is_ok() { "ok" } else { "error" }
    }

    fn target(&self, _plugin: &str) -> String {
        format!("{}.{}", self.source, self.event_type)
    }
}

/// What one call of `plugin` may make its database spend.
fn budget(plugin: &Plugin) -> CallBudget {
    CallBudget {
        deadline: Instant::now() + plugin.limits.deadline(),
        max_query_bytes: plugin.limits.query_bytes(),
    }
}

/// Rolls back the transaction of a call that failed in the sandbox; after a
/// timeout a statement may still be running in the database and is stopped.
async fn abandon(tx: Tx, e: &CallError) -> Result<(), StorageError> {
    match e {
        CallError::Timeout(_) => tx.rollback_after_timeout().await,
        _ => tx.rollback().await,
    }
}

fn describe_guest_error(e: &GuestError) -> String {
    match e {
        GuestError::Invalid(m) => format!("invalid: {m}"),
        GuestError::NotFound(m) => format!("not found: {m}"),
        GuestError::Conflict(m) => format!("conflict: {m}"),
        GuestError::Denied(m) => format!("denied: {m}"),
        GuestError::Internal(m) => format!("internal: {m}"),
    }
}
