//! One numberer per PostgreSQL source: gives committed staged events their
//! outbox sequence numbers and moves the head the streams wait on.
//!
//! Calls stage their events without a number (`outbox::flush`), so writers of
//! one outbox commit concurrently and PostgreSQL's group commit can flush many
//! of them at once. Numbering after commit keeps what the streams rely on: an
//! outbox read in sequence order, without gaps, where a number once seen never
//! gains an earlier neighbour. Staged rows left by a host that stopped are
//! numbered when the next one starts.
use super::attempt::persist;
use super::relay::Relay;
use crate::plugin::Plugin;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Events numbered in one transaction at most.
const BATCH: i64 = 1024;

pub(super) async fn run_numberer(relay: Relay, source: Arc<Plugin>, life: CancellationToken) {
    let slot = &source.slot;
    let mut staged = slot.staged.subscribe();
    let remote = relay.remote_staged(&source.name);
    let poll = Duration::from_millis(relay.config.poll_ms);
    loop {
        // Every commit counted before this pass starts is visible to it.
        let seen = *staged.borrow_and_update();
        loop {
            let Some(numbered) = persist(&relay, "numbering staged events", || {
                slot.db.number_staged(BATCH)
            })
            .await
            else {
                return;
            };
            match numbered {
                Some(head) => {
                    slot.head.send_replace(head);
                    relay.announce_head(&source.name, head).await;
                }
                None => break,
            }
        }
        slot.numbered.send_replace(seen);
        relay.progress.notify_waiters();
        tokio::select! {
            _ = life.cancelled() => return,
            _ = staged.changed() => {}
            // Another host of the cluster staged some.
            _ = remote.notified() => {}
            // Rows staged by another host process (or before a restart).
            _ = tokio::time::sleep(poll) => {}
        }
    }
}
