//! Fencing: a host that lost a lease must never commit the leased work.
//!
//! A lease ([`super::leases`]) carries a token that grows each time the lease
//! changes hands. Work done under a lease runs inside [`Fence::scope`]; every
//! transaction that records progress of that work calls [`check`] before it
//! commits, which raises the database's `mercato_fences` row to the token or
//! finds a higher one there and refuses. The new owner raises the row when it
//! takes the lease ([`Fence::raise`]), so from then on a paused host that
//! wakes with the old token cannot commit, whatever its clock says. The row is
//! written in the committing transaction, in the plugin's own database, so the
//! check holds for plugins on separate database servers too.
use crate::bindings::SqlValue;
use crate::storage::{Database, StorageError, Tx, TxMode};

/// Raises the fence to the token unless a higher one is there; one row
/// changes exactly when the token is current.
const RAISE: &str = "INSERT INTO mercato_fences (name, token, host) VALUES ($1, $2, $3) \
     ON CONFLICT (name) DO UPDATE SET token = excluded.token, host = excluded.host \
     WHERE mercato_fences.token <= excluded.token";

/// The lease a piece of work runs under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The lease's name (`stream:inventory:orders`).
    pub name: String,
    /// Its token when this host took it.
    pub token: u64,
    /// This host's id.
    pub host: String,
}

tokio::task_local! {
    static CURRENT: Fence;
}

impl Fence {
    /// Runs `work` under this fence: each [`check`] it makes is against it.
    pub async fn scope<F: Future>(self, work: F) -> F::Output {
        CURRENT.scope(self, work).await
    }

    /// Raises the fence in `db` to this token, in a transaction of its own:
    /// from its commit on, holders of older tokens commit nothing there.
    /// False when a newer token got there first.
    pub async fn raise(&self, db: &Database) -> Result<bool, StorageError> {
        let mut tx = db.begin(TxMode::ReadWrite).await?;
        let raised = raise(&mut tx, self).await?;
        tx.commit().await?;
        Ok(raised)
    }
}

async fn raise(tx: &mut Tx, fence: &Fence) -> Result<bool, StorageError> {
    let changed = tx
        .host_execute(
            RAISE,
            &[
                SqlValue::Text(fence.name.clone()),
                SqlValue::Integer(i64::try_from(fence.token).unwrap_or(i64::MAX)),
                SqlValue::Text(fence.host.clone()),
            ],
        )
        .await?;
    Ok(changed == 1)
}

/// In the committing transaction of leased work: passes when the work may
/// commit (no fence is in scope — a host alone — or its token is current);
/// [`StorageError::Fenced`] when a newer lease holder has committed or taken
/// over, and the transaction must roll back.
pub async fn check(tx: &mut Tx) -> Result<(), StorageError> {
    let Ok(fence) = CURRENT.try_with(Fence::clone) else {
        return Ok(());
    };
    if raise(tx, &fence).await? {
        return Ok(());
    }
    tracing::warn!(lease = %fence.name, token = fence.token, "a newer holder of this lease has taken over: this host's commit is refused");
    Err(StorageError::Fenced(fence.name))
}
