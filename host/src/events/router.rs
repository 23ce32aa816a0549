//! The router: delivers each source's outbox to every matching subscriber, at
//! least once and in source order, with retries, dead letters and delayed events.
//!
//! One *stream* task per (subscriber, source) pair reads the source's outbox past
//! the subscriber's cursor. It wakes when the source commits (the plugin's `head`
//! watch) and polls as a fallback. A failing event blocks only its own stream:
//! it is retried with exponential backoff and then dead-lettered, while streams
//! from other sources keep flowing. Events with a delay are moved from the
//! stream into the subscriber's `mercato_scheduled` table and delivered by the
//! subscriber's *scheduler* task when due. A *marker* task per source stamps
//! `published_at` once every subscriber has consumed an event.
use super::{HELD_EVENT_COLUMNS, OutboxEvent, held_event};
use crate::bindings::SqlValue;
use crate::host::Host;
use crate::plugin::{Plugin, Registry};
use crate::storage::{Database, SqlValueExt, StorageError, TxMode, cell};
use crate::uow::{Delivery, EventOutcome, record_consumed};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

const BATCH: i64 = 256;

/// Progress of one (subscriber, source) stream.
struct Stream {
    subscriber: Arc<str>,
    source: Arc<str>,
    position: watch::Sender<u64>,
}

/// A subscriber's delayed events as the router knows them.
struct Schedule {
    /// When the earliest scheduled event is due (ms since the epoch), if any.
    next_due: watch::Sender<Option<u64>>,
    /// Bumped by every insertion, so the scheduler never publishes a summary
    /// that missed a concurrent insertion.
    inserted: std::sync::atomic::AtomicU64,
    wake: Notify,
}

/// Tracks every stream and scheduler so callers can observe and drain them.
#[derive(Default)]
pub struct Router {
    streams: Mutex<Vec<Arc<Stream>>>,
    schedules: Mutex<HashMap<Arc<str>, Arc<Schedule>>>,
    marked: Mutex<std::collections::HashSet<Arc<str>>>,
    progress: Notify,
}

/// A subscriber's view of one stream, for the admin API and metrics.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StreamStatus {
    /// Consuming plugin.
    pub subscriber: String,
    /// Producing plugin.
    pub source: String,
    /// Last outbox sequence consumed.
    pub position: u64,
    /// Source head minus position.
    pub lag: u64,
}

impl Router {
    /// Spawns the streams, schedulers and markers the registered plugins need
    /// and that are not running yet: at start, and after a deploy brings a new
    /// plugin or new subscriptions. (A stream whose subscription was dropped
    /// keeps running and skips everything, which keeps its cursor current.)
    pub fn ensure(&self, host: &Host) -> Vec<JoinHandle<()>> {
        let mut tasks = Vec::new();
        let plugins = host.registry.all();
        for subscriber in &plugins {
            if subscriber.subscriptions.is_empty() {
                continue;
            }
            for source_name in subscriber.sources() {
                let Some(source) = host.registry.get(&source_name) else {
                    tracing::warn!(plugin = %subscriber.name, source = %source_name, "subscription names a plugin that is not loaded");
                    continue;
                };
                let mut streams = self.streams.lock().expect("router poisoned");
                if streams
                    .iter()
                    .any(|s| s.subscriber == subscriber.name && s.source == source.name)
                {
                    continue;
                }
                let stream = Arc::new(Stream {
                    subscriber: subscriber.name.clone(),
                    source: source.name.clone(),
                    position: watch::Sender::new(0),
                });
                streams.push(stream.clone());
                tasks.push(tokio::spawn(run_stream(
                    host.clone(),
                    subscriber.name.clone(),
                    source,
                    stream,
                )));
            }
            let mut schedules = self.schedules.lock().expect("router poisoned");
            if !schedules.contains_key(&subscriber.name) {
                let schedule = Arc::new(Schedule {
                    next_due: watch::Sender::new(None),
                    inserted: Default::default(),
                    wake: Notify::new(),
                });
                schedules.insert(subscriber.name.clone(), schedule.clone());
                tasks.push(tokio::spawn(run_scheduler(
                    host.clone(),
                    subscriber.name.clone(),
                    schedule,
                )));
            }
        }
        let mut marked = self.marked.lock().expect("router poisoned");
        for source in plugins {
            if marked.insert(source.name.clone()) {
                tasks.push(tokio::spawn(run_marker(host.clone(), source)));
            }
        }
        tasks
    }

    /// Every stream's position and lag.
    pub fn status(&self, registry: &Registry) -> Vec<StreamStatus> {
        self.streams
            .lock()
            .expect("router poisoned")
            .iter()
            .map(|s| {
                let position = *s.position.borrow();
                let head = registry
                    .get(&s.source)
                    .map_or(position, |p| *p.head.borrow());
                StreamStatus {
                    subscriber: s.subscriber.to_string(),
                    source: s.source.to_string(),
                    position,
                    lag: head.saturating_sub(position),
                }
            })
            .collect()
    }

    fn min_position(&self, source: &str) -> Option<u64> {
        self.streams
            .lock()
            .expect("router poisoned")
            .iter()
            .filter(|s| &*s.source == source)
            .map(|s| *s.position.borrow())
            .min()
    }

    fn caught_up(&self, registry: &Registry) -> bool {
        self.status(registry).iter().all(|s| s.lag == 0)
    }

    /// True when no delayed event due at or before `until_ms` is still waiting.
    fn scheduled_done(&self, until_ms: u64) -> bool {
        self.schedules
            .lock()
            .expect("router poisoned")
            .values()
            .all(|s| s.next_due.borrow().is_none_or(|due| due > until_ms))
    }

    async fn wait_for(
        &self,
        timeout: Duration,
        what: &str,
        done: impl Fn() -> bool,
    ) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let progressed = self.progress.notified();
            tokio::pin!(progressed);
            progressed.as_mut().enable();
            if done() {
                return Ok(());
            }
            // The timeout only bounds a missed wake-up; progress normally wakes us.
            let step = Duration::from_millis(50)
                .min(deadline.saturating_duration_since(tokio::time::Instant::now()));
            if step.is_zero() {
                return Err(format!("{what} did not finish within {timeout:?}"));
            }
            let _ = tokio::time::timeout(step, progressed).await;
        }
    }

    pub(crate) async fn drain(&self, registry: &Registry, timeout: Duration) -> Result<(), String> {
        self.wait_for(timeout, "event delivery", || self.caught_up(registry))
            .await
    }

    pub(crate) async fn drain_stream(
        &self,
        registry: &Registry,
        subscriber: &str,
        source: &str,
        timeout: Duration,
    ) -> Result<(), String> {
        self.wait_for(timeout, "event delivery", || {
            self.status(registry)
                .iter()
                .filter(|s| s.subscriber == subscriber && s.source == source)
                .all(|s| s.lag == 0)
        })
        .await
    }

    pub(crate) async fn drain_scheduled(
        &self,
        until_ms: u64,
        timeout: Duration,
    ) -> Result<(), String> {
        self.wait_for(timeout, "delayed event delivery", || {
            self.scheduled_done(until_ms)
        })
        .await
    }

    /// Stamps `published_at` up to what every subscriber has consumed; run once
    /// more at shutdown, after the streams stopped, so the outbox state is final.
    pub(crate) async fn mark_all(&self, registry: &Registry) {
        for source in registry.all() {
            let target = self
                .min_position(&source.name)
                .unwrap_or(*source.head.borrow());
            if let Err(e) = mark_published(&source.db, target).await {
                tracing::warn!(plugin = %source.name, error = %e, "marking events published failed");
            }
        }
    }

    /// Records a newly scheduled event (so drains see it at once) and wakes the
    /// subscriber's scheduler.
    fn scheduled(&self, subscriber: &str, due_ms: u64) {
        if let Some(schedule) = self
            .schedules
            .lock()
            .expect("router poisoned")
            .get(subscriber)
        {
            schedule
                .inserted
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            schedule
                .next_due
                .send_modify(|next| *next = Some(next.map_or(due_ms, |d| d.min(due_ms))));
            schedule.wake.notify_one();
        }
    }
}

/// Retries a storage operation until it succeeds or the host shuts down.
async fn persist<T, F, Fut>(host: &Host, what: &str, mut op: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StorageError>>,
{
    loop {
        match op().await {
            Ok(v) => return Some(v),
            Err(e) => {
                tracing::warn!(error = %e, "{what} failed; retrying");
                tokio::select! {
                    _ = host.cancel.cancelled() => return None,
                    _ = tokio::time::sleep(Duration::from_millis(host.config.events.poll_ms)) => {}
                }
            }
        }
    }
}

/// The version of `name` that new calls use (each delivery attempt asks again,
/// so a deploy takes effect on the next event).
fn current(host: &Host, name: &str, fallback: &Arc<Plugin>) -> Arc<Plugin> {
    host.registry.get(name).unwrap_or_else(|| fallback.clone())
}

async fn run_stream(host: Host, name: Arc<str>, source: Arc<Plugin>, stream: Arc<Stream>) {
    let Some(subscriber) = host.registry.get(&name) else {
        return;
    };
    let Some(mut position) = persist(&host, "reading cursor", || {
        load_cursor(&subscriber.db, &source.name)
    })
    .await
    else {
        return;
    };
    stream.position.send_replace(position);
    host.router.progress.notify_waiters();
    let mut head = source.head.subscribe();
    let poll = Duration::from_millis(host.config.events.poll_ms);
    loop {
        let Some(batch) = persist(&host, "reading outbox", || {
            read_outbox(&source.db, &source.name, position)
        })
        .await
        else {
            return;
        };
        if batch.is_empty() {
            tokio::select! {
                _ = host.cancel.cancelled() => return,
                _ = head.wait_for(|h| *h > position) => {}
                _ = tokio::time::sleep(poll) => {}
            }
            continue;
        }
        let consumed_before = position;
        let mut persisted = position;
        for event in batch {
            if current(&host, &name, &subscriber).subscribes_to(&source.name, &event.event_type) {
                if !deliver(&host, &subscriber, &event).await {
                    return;
                }
                // The handler's transaction advanced the cursor.
                persisted = event.sequence;
                publish_position(&host, &stream, event.sequence);
            }
            position = event.sequence;
        }
        if position > persisted {
            // Persist the cursor past events this subscriber ignores, so a restart
            // does not rescan them.
            let event_source = source.name.to_string();
            if persist(&host, "advancing cursor", || {
                advance_cursor(&subscriber.db, &event_source, position)
            })
            .await
            .is_none()
            {
                return;
            }
        }
        if position > consumed_before {
            publish_position(&host, &stream, position);
        }
    }
}

fn publish_position(host: &Host, stream: &Stream, position: u64) {
    stream.position.send_replace(position);
    host.router.progress.notify_waiters();
}

/// Delivers one event in order: schedules it if delayed, else retries until it is
/// handled or dead-lettered. Returns false when the host is shutting down.
async fn deliver(host: &Host, subscriber: &Arc<Plugin>, event: &OutboxEvent) -> bool {
    let labels = [&*subscriber.name, event.source.as_str()];
    if let Some(delay) = event.deliver_after_ms {
        let due = crate::clock::parse_millis(&event.created_at)
            .unwrap_or_else(crate::clock::now_millis)
            + delay;
        let scheduled = persist(host, "scheduling delayed event", || {
            schedule(&subscriber.db, event, due)
        })
        .await;
        host.router.scheduled(&subscriber.name, due);
        return scheduled.is_some();
    }
    let events = host.config.events;
    let mut attempt = 1;
    loop {
        match host
            .call_event(
                &current(host, &subscriber.name, subscriber),
                event,
                attempt,
                Delivery::Stream,
            )
            .await
        {
            Ok(EventOutcome::Handled | EventOutcome::AlreadyHandled) => {
                host.metrics
                    .deliveries
                    .with_label_values(&[labels[0], labels[1], "ok"])
                    .inc();
                return true;
            }
            Err(error) if attempt >= events.max_attempts => {
                host.metrics
                    .deliveries
                    .with_label_values(&[labels[0], labels[1], "dead_letter"])
                    .inc();
                tracing::error!(plugin = %subscriber.name, event = %event.id, source = %event.source, attempts = attempt, %error, "event dead-lettered");
                return persist(host, "dead-lettering", || {
                    dead_letter(&subscriber.db, event, &error, attempt, Delivery::Stream)
                })
                .await
                .is_some();
            }
            Err(error) => {
                host.metrics
                    .deliveries
                    .with_label_values(&[labels[0], labels[1], "retry"])
                    .inc();
                tracing::warn!(plugin = %subscriber.name, event = %event.id, attempt, %error, "event handler failed; will retry");
                tokio::select! {
                    _ = host.cancel.cancelled() => return false,
                    _ = tokio::time::sleep(events.backoff(attempt)) => {}
                }
                attempt += 1;
            }
        }
    }
}

async fn run_scheduler(host: Host, name: Arc<str>, schedule: Arc<Schedule>) {
    let Some(subscriber) = host.registry.get(&name) else {
        return;
    };
    let poll = Duration::from_millis(host.config.events.poll_ms);
    let events = host.config.events;
    loop {
        let woken = schedule.wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let now = crate::clock::now_millis();
        let Some(due) = persist(&host, "reading scheduled events", || {
            read_due(&subscriber.db, now)
        })
        .await
        else {
            return;
        };
        for (event, attempts) in due {
            let attempt = attempts + 1;
            // The source is read back from the subscriber's own database,
            // which its plugin can write on PostgreSQL: only the name of a
            // running plugin may become a label value.
            let source = match host.registry.get(&event.source) {
                Some(_) => event.source.as_str(),
                None => crate::metrics::UNKNOWN,
            };
            let labels = [&*subscriber.name, source];
            match host
                .call_event(
                    &current(&host, &name, &subscriber),
                    &event,
                    attempt,
                    Delivery::Scheduled,
                )
                .await
            {
                Ok(_) => host
                    .metrics
                    .deliveries
                    .with_label_values(&[labels[0], labels[1], "ok"])
                    .inc(),
                Err(error) if attempt >= events.max_attempts => {
                    host.metrics
                        .deliveries
                        .with_label_values(&[labels[0], labels[1], "dead_letter"])
                        .inc();
                    tracing::error!(plugin = %subscriber.name, event = %event.id, attempts = attempt, %error, "delayed event dead-lettered");
                    if persist(&host, "dead-lettering", || {
                        dead_letter(&subscriber.db, &event, &error, attempt, Delivery::Scheduled)
                    })
                    .await
                    .is_none()
                    {
                        return;
                    }
                }
                Err(error) => {
                    host.metrics
                        .deliveries
                        .with_label_values(&[labels[0], labels[1], "retry"])
                        .inc();
                    tracing::warn!(plugin = %subscriber.name, event = %event.id, attempt, %error, "delayed event failed; will retry");
                    let retry_at =
                        crate::clock::now_millis() + events.backoff(attempt).as_millis() as u64;
                    if persist(&host, "rescheduling", || {
                        reschedule(&subscriber.db, &event.id, retry_at)
                    })
                    .await
                    .is_none()
                    {
                        return;
                    }
                }
            }
        }
        let inserted = schedule.inserted.load(std::sync::atomic::Ordering::SeqCst);
        let Some(next_due) = persist(&host, "reading schedule", || next_due(&subscriber.db)).await
        else {
            return;
        };
        if schedule.inserted.load(std::sync::atomic::Ordering::SeqCst) != inserted {
            // An event was scheduled meanwhile; look again before publishing.
            continue;
        }
        schedule.next_due.send_replace(next_due);
        host.router.progress.notify_waiters();
        let now = crate::clock::now_millis();
        let sleep = next_due.map_or(poll, |due| {
            Duration::from_millis(due.saturating_sub(now)).min(poll)
        });
        tokio::select! {
            _ = host.cancel.cancelled() => return,
            _ = &mut woken => {}
            _ = tokio::time::sleep(sleep) => {}
        }
    }
}

/// Stamps `published_at` on events every subscriber has consumed, and keeps the
/// depth and lag gauges current.
async fn run_marker(host: Host, source: Arc<Plugin>) {
    let mut marked = 0;
    let poll = Duration::from_millis(host.config.events.poll_ms.max(100));
    loop {
        let progressed = host.router.progress.notified();
        let head = *source.head.borrow();
        let target = host.router.min_position(&source.name).unwrap_or(head);
        if target > marked {
            match mark_published(&source.db, target).await {
                Ok(depth) => {
                    marked = target;
                    host.metrics
                        .outbox_depth
                        .with_label_values(&[&source.name])
                        .set(depth);
                }
                Err(e) => {
                    tracing::warn!(plugin = %source.name, error = %e, "marking events published failed")
                }
            }
        }
        for s in host
            .router
            .status(&host.registry)
            .into_iter()
            .filter(|s| s.source == *source.name)
        {
            host.metrics
                .outbox_lag
                .with_label_values(&[&s.subscriber, &s.source])
                .set(s.lag as i64);
        }
        tokio::select! {
            _ = host.cancel.cancelled() => return,
            _ = progressed => {}
            _ = tokio::time::sleep(poll) => {}
        }
        // Batch bursts of progress into one UPDATE.
        tokio::select! {
            _ = host.cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
}

async fn load_cursor(db: &Database, source: &str) -> Result<u64, StorageError> {
    let mut tx = db.begin(TxMode::ReadOnly).await?;
    let rows = tx
        .host_query(
            "SELECT sequence FROM mercato_cursors WHERE source = $1",
            &[SqlValue::Text(source.to_owned())],
        )
        .await?;
    tx.rollback().await?;
    Ok(if rows.rows.is_empty() {
        0
    } else {
        cell(&rows, 0, "sequence").as_i64() as u64
    })
}

async fn advance_cursor(db: &Database, source: &str, sequence: u64) -> Result<(), StorageError> {
    let mut tx = db.begin(TxMode::ReadWrite).await?;
    tx.host_execute(
        "INSERT INTO mercato_cursors (source, sequence) VALUES ($1, $2) \
         ON CONFLICT (source) DO UPDATE SET sequence = excluded.sequence \
         WHERE mercato_cursors.sequence < excluded.sequence",
        &[
            SqlValue::Text(source.to_owned()),
            SqlValue::Integer(sequence as i64),
        ],
    )
    .await?;
    tx.commit().await
}

const EVENT_COLUMNS: &str =
    "id, sequence, event_type, aggregate_id, payload, created_at, deliver_after_ms";

async fn read_outbox(
    db: &Database,
    source: &str,
    after: u64,
) -> Result<Vec<OutboxEvent>, StorageError> {
    let mut tx = db.begin(TxMode::ReadOnly).await?;
    let rows = tx
        .host_query(
            &format!("SELECT {EVENT_COLUMNS} FROM outbox_events WHERE sequence > $1 ORDER BY sequence LIMIT $2"),
            &[SqlValue::Integer(after as i64), SqlValue::Integer(BATCH)],
        )
        .await?;
    tx.rollback().await?;
    Ok((0..rows.rows.len())
        .map(|i| OutboxEvent {
            id: cell(&rows, i, "id").as_text(),
            source: source.to_owned(),
            sequence: cell(&rows, i, "sequence").as_i64() as u64,
            event_type: cell(&rows, i, "event_type").as_text(),
            aggregate_id: cell(&rows, i, "aggregate_id").as_text(),
            payload: cell(&rows, i, "payload").as_text(),
            created_at: cell(&rows, i, "created_at").as_text(),
            deliver_after_ms: cell(&rows, i, "deliver_after_ms")
                .as_opt_text()
                .and_then(|t| t.parse().ok()),
        })
        .collect())
}

async fn schedule(db: &Database, event: &OutboxEvent, due_at_ms: u64) -> Result<(), StorageError> {
    let mut tx = db.begin(TxMode::ReadWrite).await?;
    let rows = tx
        .host_query(
            "SELECT sequence FROM mercato_cursors WHERE source = $1",
            &[SqlValue::Text(event.source.clone())],
        )
        .await?;
    let consumed =
        !rows.rows.is_empty() && cell(&rows, 0, "sequence").as_i64() as u64 >= event.sequence;
    if !consumed {
        tx.host_execute(
            "INSERT INTO mercato_scheduled (event_id, source, sequence, event_type, aggregate_id, payload, occurred_at, due_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (event_id) DO NOTHING",
            &[
                SqlValue::Text(event.id.clone()),
                SqlValue::Text(event.source.clone()),
                SqlValue::Integer(event.sequence as i64),
                SqlValue::Text(event.event_type.clone()),
                SqlValue::Text(event.aggregate_id.clone()),
                SqlValue::Text(event.payload.clone()),
                SqlValue::Text(event.created_at.clone()),
                SqlValue::Integer(due_at_ms as i64),
            ],
        )
        .await?;
        record_consumed(&mut tx, event, Delivery::Stream).await?;
    }
    tx.commit().await
}

async fn read_due(db: &Database, now_ms: u64) -> Result<Vec<(OutboxEvent, u32)>, StorageError> {
    let mut tx = db.begin(TxMode::ReadOnly).await?;
    let rows = tx
        .host_query(
            &format!(
                "SELECT {HELD_EVENT_COLUMNS}, attempts FROM mercato_scheduled \
                 WHERE due_at_ms <= $1 ORDER BY due_at_ms, source, sequence LIMIT $2"
            ),
            &[SqlValue::Integer(now_ms as i64), SqlValue::Integer(BATCH)],
        )
        .await?;
    tx.rollback().await?;
    Ok((0..rows.rows.len())
        .map(|i| {
            (
                held_event(&rows, i),
                cell(&rows, i, "attempts").as_i64() as u32,
            )
        })
        .collect())
}

async fn reschedule(db: &Database, event_id: &str, due_at_ms: u64) -> Result<(), StorageError> {
    let mut tx = db.begin(TxMode::ReadWrite).await?;
    tx.host_execute(
        "UPDATE mercato_scheduled SET attempts = attempts + 1, due_at_ms = $2 WHERE event_id = $1",
        &[
            SqlValue::Text(event_id.to_owned()),
            SqlValue::Integer(due_at_ms as i64),
        ],
    )
    .await?;
    tx.commit().await
}

async fn next_due(db: &Database) -> Result<Option<u64>, StorageError> {
    let mut tx = db.begin(TxMode::ReadOnly).await?;
    let rows = tx
        .host_query(
            "SELECT MIN(due_at_ms) AS next_due FROM mercato_scheduled",
            &[],
        )
        .await?;
    tx.rollback().await?;
    Ok(cell(&rows, 0, "next_due")
        .as_opt_text()
        .and_then(|t| t.parse().ok()))
}

async fn dead_letter(
    db: &Database,
    event: &OutboxEvent,
    error: &str,
    attempts: u32,
    delivery: Delivery,
) -> Result<(), StorageError> {
    let mut tx = db.begin(TxMode::ReadWrite).await?;
    tx.host_execute(
        "INSERT INTO mercato_dead_letters (event_id, source, sequence, event_type, aggregate_id, payload, occurred_at, error, attempts, failed_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (event_id) DO NOTHING",
        &[
            SqlValue::Text(event.id.clone()),
            SqlValue::Text(event.source.clone()),
            SqlValue::Integer(event.sequence as i64),
            SqlValue::Text(event.event_type.clone()),
            SqlValue::Text(event.aggregate_id.clone()),
            SqlValue::Text(event.payload.clone()),
            SqlValue::Text(event.created_at.clone()),
            SqlValue::Text(error.to_owned()),
            SqlValue::Integer(attempts.into()),
            SqlValue::Text(crate::clock::now_rfc3339()),
        ],
    )
    .await?;
    record_consumed(&mut tx, event, delivery).await?;
    tx.commit().await
}

async fn mark_published(db: &Database, up_to: u64) -> Result<i64, StorageError> {
    let mut tx = db.begin(TxMode::ReadWrite).await?;
    tx.host_execute(
        "UPDATE outbox_events SET published_at = $1 WHERE published_at IS NULL AND sequence <= $2",
        &[
            SqlValue::Text(crate::clock::now_rfc3339()),
            SqlValue::Integer(up_to as i64),
        ],
    )
    .await?;
    let rows = tx
        .host_query(
            "SELECT COUNT(*) AS n FROM outbox_events WHERE published_at IS NULL",
            &[],
        )
        .await?;
    tx.commit().await?;
    Ok(cell(&rows, 0, "n").as_i64())
}

/// A dead letter as listed by the admin API.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeadLetter {
    /// The plugin that failed to handle it.
    pub subscriber: String,
    /// Event id.
    pub event_id: String,
    /// Source plugin.
    pub source: String,
    /// Source sequence.
    pub sequence: u64,
    /// Event type.
    pub event_type: String,
    /// Last error.
    pub error: String,
    /// Attempts made.
    pub attempts: u64,
    /// When it was dead-lettered.
    pub failed_at: String,
}

/// Dead letters kept in `subscriber`'s database, oldest first.
pub async fn dead_letters(subscriber: &Plugin) -> Result<Vec<DeadLetter>, StorageError> {
    let mut tx = subscriber.db.begin(TxMode::ReadOnly).await?;
    let rows = tx
        .host_query(
            "SELECT event_id, source, sequence, event_type, error, attempts, failed_at \
             FROM mercato_dead_letters ORDER BY failed_at, source, sequence LIMIT 1000",
            &[],
        )
        .await?;
    tx.rollback().await?;
    Ok((0..rows.rows.len())
        .map(|i| DeadLetter {
            subscriber: subscriber.name.to_string(),
            event_id: cell(&rows, i, "event_id").as_text(),
            source: cell(&rows, i, "source").as_text(),
            sequence: cell(&rows, i, "sequence").as_i64() as u64,
            event_type: cell(&rows, i, "event_type").as_text(),
            error: cell(&rows, i, "error").as_text(),
            attempts: cell(&rows, i, "attempts").as_i64() as u64,
            failed_at: cell(&rows, i, "failed_at").as_text(),
        })
        .collect())
}

/// Unpublished events in `plugin`'s outbox.
pub async fn outbox_depth(plugin: &Plugin) -> Result<u64, StorageError> {
    let mut tx = plugin.db.begin(TxMode::ReadOnly).await?;
    let rows = tx
        .host_query(
            "SELECT COUNT(*) AS n FROM outbox_events WHERE published_at IS NULL",
            &[],
        )
        .await?;
    tx.rollback().await?;
    Ok(cell(&rows, 0, "n").as_i64() as u64)
}
