//! Waits for saga events without polling the HTTP API: follows a plugin's
//! outbox (woken by its outbox-head watch, one read transaction per wake-up)
//! and hands each event of interest to the buyer waiting for its order.
//! Polling `GET /orders/{id}` instead would add a plugin call per poll to the
//! load being measured, and its interval to every latency.
use anyhow::{Context, anyhow};
use mercato::app::App;
use mercato::bindings::SqlValue;
use mercato::plugin::Plugin;
use mercato::storage::TxMode;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// An event as a waiting buyer sees it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub event_type: String,
    pub payload: Value,
}

enum Slot {
    Waiting(oneshot::Sender<Seen>),
    /// The event came before anyone asked for it.
    Arrived(Seen),
}

/// Events of some types from one plugin's outbox, keyed by order id.
pub struct Follower {
    slots: Arc<Mutex<HashMap<String, Slot>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Picks the order id an event is about (its aggregate, or a payload field).
pub type OrderOf = fn(aggregate_id: &str, payload: &Value) -> Option<String>;

impl Follower {
    /// Follows `plugin`'s outbox from its current head on, keeping events whose
    /// type is in `types`.
    pub fn start(
        host: &App,
        plugin: &str,
        types: &'static [&'static str],
        order_of: OrderOf,
    ) -> anyhow::Result<Follower> {
        let plugin = host
            .registry()
            .get(plugin)
            .with_context(|| format!("plugin {plugin} is not running"))?;
        let slots: Arc<Mutex<HashMap<String, Slot>>> = Arc::default();
        let task = tokio::spawn(follow(plugin, types, order_of, slots.clone()));
        Ok(Follower { slots, task })
    }

    /// The first kept event about `order_id`.
    pub async fn wait(&self, order_id: &str, timeout: Duration) -> anyhow::Result<Seen> {
        let receiver = {
            let mut slots = self.slots.lock().expect("follower poisoned");
            if let Some(Slot::Arrived(seen)) = slots.remove(order_id) {
                return Ok(seen);
            }
            let (sender, receiver) = oneshot::channel();
            slots.insert(order_id.to_owned(), Slot::Waiting(sender));
            receiver
        };
        tokio::time::timeout(timeout, receiver)
            .await
            .map_err(|_| anyhow!("no event about order {order_id} within {timeout:?}"))?
            .context("the outbox follower stopped")
    }
}

async fn follow(
    plugin: Arc<Plugin>,
    types: &'static [&'static str],
    order_of: OrderOf,
    slots: Arc<Mutex<HashMap<String, Slot>>>,
) {
    let mut head = plugin.slot.head.subscribe();
    let mut position = *head.borrow_and_update();
    loop {
        if head.wait_for(|h| *h > position).await.is_err() {
            return;
        }
        let rows = match read_after(&plugin, position).await {
            Ok(rows) => rows,
            Err(e) => {
                eprintln!("outbox follower for {}: {e:#}", plugin.name);
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let mut slots = slots.lock().expect("follower poisoned");
        for (sequence, event_type, aggregate_id, payload) in rows {
            position = position.max(sequence);
            if !types.contains(&event_type.as_str()) {
                continue;
            }
            let payload: Value = serde_json::from_str(&payload).unwrap_or(Value::Null);
            let Some(order_id) = order_of(&aggregate_id, &payload) else {
                continue;
            };
            let seen = Seen {
                event_type,
                payload,
            };
            match slots.remove(&order_id) {
                Some(Slot::Waiting(sender)) => {
                    let _ = sender.send(seen);
                }
                // Only the first event about an order counts.
                Some(arrived @ Slot::Arrived(_)) => {
                    slots.insert(order_id, arrived);
                }
                None => {
                    slots.insert(order_id, Slot::Arrived(seen));
                }
            }
        }
    }
}

type OutboxRow = (u64, String, String, String);

async fn read_after(plugin: &Plugin, position: u64) -> anyhow::Result<Vec<OutboxRow>> {
    let mut tx = plugin.slot.db.begin(TxMode::ReadOnly).await?;
    let rows = tx
        .host_query(
            // A closed range keeps PostgreSQL on the sequence index: a generic
            // plan for an open-ended `sequence > $1` (even with a LIMIT) may
            // scan the whole outbox, which grew the harness's own cost with
            // every order. Sequences are dense; the loop above reads on.
            "SELECT sequence, event_type, aggregate_id, payload FROM outbox_events \
             WHERE sequence > $1 AND sequence <= $2 ORDER BY sequence",
            &[
                SqlValue::Integer(i64::try_from(position)?),
                SqlValue::Integer(i64::try_from(position)? + 500),
            ],
        )
        .await?;
    tx.rollback().await?;
    let text = |v: &SqlValue| match v {
        SqlValue::Text(t) => t.clone(),
        other => format!("{other:?}"),
    };
    Ok(rows
        .rows
        .iter()
        .map(|r| {
            let sequence = match &r[0] {
                SqlValue::Integer(n) => u64::try_from(*n).unwrap_or(0),
                other => text(other).parse().unwrap_or(0),
            };
            (sequence, text(&r[1]), text(&r[2]), text(&r[3]))
        })
        .collect())
}
