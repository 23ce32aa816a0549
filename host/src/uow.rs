//! The unit of work: every plugin call is one transaction on that plugin's
//! database. `BEGIN` → host checks (idempotency key, consumer cursor) → the guest
//! runs its SQL and emits events → `COMMIT` with the host's records if the guest
//! succeeded (2xx / `ok`), `ROLLBACK` otherwise. GET runs read-only.
use crate::bindings::{GuestError, Request, Response, SqlValue};
use crate::events::inbox::{already_consumed, record_consumed};
use crate::events::{self, Delivery, OutboxEvent};
use crate::host::Host;
use crate::plugin::Plugin;
use crate::runtime::{CallError, CallState};
use crate::storage::{CallBudget, SqlValueExt, StorageError, Tx, TxMode, cell};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Instant;

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

/// Removes an in-flight idempotency key when the request ends, however it ends.
struct KeyGuard<'a> {
    plugin: &'a Plugin,
    key: String,
}

impl Drop for KeyGuard<'_> {
    fn drop(&mut self) {
        self.plugin
            .slot
            .inflight_keys
            .lock()
            .expect("inflight keys poisoned")
            .remove(&self.key);
    }
}

fn request_hash(req: &Request) -> String {
    let mut h = Sha256::new();
    for part in [
        req.method.as_bytes(),
        req.path.as_bytes(),
        req.query.as_bytes(),
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    h.update(&req.body);
    hex::encode(h.finalize())
}

/// The outcome of one event delivery attempt.
#[derive(Debug)]
pub enum EventOutcome {
    /// The handler ran and its effects committed.
    Handled,
    /// The subscriber had already consumed the event; nothing ran.
    AlreadyHandled,
}

impl Host {
    /// Runs `req` through `plugin` as one unit of work.
    pub async fn call_request(
        &self,
        plugin: &Arc<Plugin>,
        req: Request,
        idempotency_key: Option<String>,
        request_id: &str,
    ) -> Result<Answer, RequestFailure> {
        let _in_flight = self.metrics.start_call(&plugin.name);
        let read_only = matches!(req.method.as_str(), "GET" | "HEAD");
        let mode = if read_only {
            TxMode::ReadOnly
        } else {
            TxMode::ReadWrite
        };
        let idempotency_key = idempotency_key.filter(|_| !read_only);
        let _guard = match &idempotency_key {
            Some(key) => {
                if !plugin
                    .slot
                    .inflight_keys
                    .lock()
                    .expect("inflight keys poisoned")
                    .insert(key.clone())
                {
                    return Err(RequestFailure::KeyInProgress);
                }
                Some(KeyGuard {
                    plugin,
                    key: key.clone(),
                })
            }
            None => None,
        };
        let hash = idempotency_key.as_ref().map(|_| request_hash(&req));
        let mut tx = plugin.slot.db.begin_call(mode, budget(plugin)).await?;
        if let (Some(key), Some(hash)) = (&idempotency_key, &hash)
            && let Some(answer) =
                stored_response(&mut tx, key, hash, &self.idempotency_cutoff()).await?
        {
            tx.rollback().await?;
            return answer;
        }

        let state = self.call_state(plugin, tx).read_only(read_only);
        let (result, mut state, elapsed) = self
            .sandbox
            .call(
                &plugin.compiled,
                state,
                plugin.limits,
                move |instance, store| {
                    Box::pin(async move {
                        instance
                            .mercato_plugin_plugin()
                            .call_handle_request(store, &req)
                            .await
                    })
                },
            )
            .await;
        state.log_output(request_id);
        let tx = state
            .tx
            .take()
            .expect("the call's transaction is returned with its state");
        let outcome = match &result {
            Ok(resp) if (200..300).contains(&resp.status) => "ok",
            Ok(_) => "error",
            Err(e) => e.kind(),
        };
        self.metrics
            .call(&plugin.name, "request", outcome, elapsed.as_secs_f64());
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
        if read_only || !(200..300).contains(&response.status) {
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
        let head = events::flush(&mut tx, &state.events).await?;
        tx.commit().await?;
        if let Some(head) = head {
            plugin.slot.head.send_replace(head);
        }
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
        let _in_flight = self.metrics.start_call(&subscriber.name);
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
        let state = self.call_state(subscriber, tx);
        let (result, mut state, elapsed) = self
            .sandbox
            .call(
                &subscriber.compiled,
                state,
                subscriber.limits,
                move |instance, store| {
                    Box::pin(async move {
                        instance
                            .mercato_plugin_plugin()
                            .call_handle_event(store, &wit_event)
                            .await
                    })
                },
            )
            .await;
        state.log_output(&event.id);
        let mut tx = state
            .tx
            .take()
            .expect("the call's transaction is returned with its state");
        let outcome = match &result {
            Ok(Ok(())) => "ok",
            Ok(Err(_)) => "error",
            Err(e) => e.kind(),
        };
        self.metrics
            .call(&subscriber.name, "event", outcome, elapsed.as_secs_f64());
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
        let committed: Result<Option<Option<u64>>, StorageError> = async {
            // Recorded only now, after the guest ran: before it, the host only
            // read, so nothing the host wrote is in the transaction while
            // plugin code runs. A concurrent delivery of the same event that
            // committed first leaves nothing to record: undo this one.
            if !record_consumed(&mut tx, event, delivery).await? {
                tx.rollback().await?;
                return Ok(None);
            }
            let head = events::flush(&mut tx, &state.events).await?;
            tx.commit().await?;
            Ok(Some(head))
        }
        .await;
        match committed {
            Ok(Some(head)) => {
                if let Some(head) = head {
                    subscriber.slot.head.send_replace(head);
                }
                Ok(EventOutcome::Handled)
            }
            Ok(None) => Ok(EventOutcome::AlreadyHandled),
            Err(e) => Err(e.to_string()),
        }
    }
}

impl Host {
    fn idempotency_cutoff(&self) -> String {
        self.config
            .idempotency
            .cutoff(time::OffsetDateTime::now_utc())
    }

    fn call_state(&self, plugin: &Plugin, tx: Tx) -> CallState {
        CallState::new(plugin.name.clone(), Some(tx))
            .with_rules(self.rules.clone())
            .max_event_bytes(plugin.limits.event_bytes())
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

/// The stored response for `key`, unless it expired (created before
/// `cutoff`): an expired key runs as new even before the pruner removed it.
async fn stored_response(
    tx: &mut Tx,
    key: &str,
    hash: &str,
    cutoff: &str,
) -> Result<Option<Result<Answer, RequestFailure>>, StorageError> {
    let rows = tx
        .host_query(
            "SELECT request_hash, status, headers, body FROM mercato_idempotency \
             WHERE key = $1 AND created_at >= $2",
            &[
                SqlValue::Text(key.to_owned()),
                SqlValue::Text(cutoff.to_owned()),
            ],
        )
        .await?;
    if rows.rows.is_empty() {
        return Ok(None);
    }
    if cell(&rows, 0, "request_hash").as_text() != hash {
        return Ok(Some(Err(RequestFailure::KeyReused)));
    }
    let headers: Vec<(String, String)> =
        serde_json::from_str(&cell(&rows, 0, "headers").as_text()).unwrap_or_default();
    let body = match cell(&rows, 0, "body") {
        SqlValue::Blob(b) => b.clone(),
        other => other.as_text().into_bytes(),
    };
    Ok(Some(Ok(Answer {
        response: Response {
            status: cell(&rows, 0, "status").as_i64() as u16,
            headers,
            body,
        },
        replayed: true,
    })))
}

async fn store_response(
    tx: &mut Tx,
    key: &str,
    hash: &str,
    response: &Response,
) -> Result<(), StorageError> {
    // An expired record of the same key may not be pruned yet: replace it.
    tx.host_execute(
        "INSERT INTO mercato_idempotency (key, request_hash, status, headers, body, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (key) DO UPDATE SET \
         request_hash = excluded.request_hash, status = excluded.status, \
         headers = excluded.headers, body = excluded.body, created_at = excluded.created_at",
        &[
            SqlValue::Text(key.to_owned()),
            SqlValue::Text(hash.to_owned()),
            SqlValue::Integer(response.status.into()),
            SqlValue::Text(
                serde_json::to_string(&response.headers).unwrap_or_else(|_| "[]".into()),
            ),
            SqlValue::Blob(response.body.clone()),
            SqlValue::Text(crate::clock::now_rfc3339()),
        ],
    )
    .await?;
    Ok(())
}
