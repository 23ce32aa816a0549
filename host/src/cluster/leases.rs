//! Leases on the cluster's work, kept as PostgreSQL rows.
//!
//! Every host heartbeats its row in `hosts`. Each piece of work (a stream, a
//! plugin's source-side jobs) has one preferred host among the live ones, by
//! rendezvous hashing, so work spreads evenly and moves as little as possible
//! when a host comes or goes. The preferred host takes the lease once it is
//! free or expired, and renews it every third of its length; a host that is
//! no longer preferred lets go after its job has stopped. PostgreSQL's clock
//! decides expiry, so the hosts' clocks need not agree. Each change of hands
//! raises the lease's token, which fences the old holder (`fence.rs`).
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};

/// One lease as the cluster's table has it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LeaseRow {
    /// What it covers (`stream:inventory:orders`, `plugin:orders`).
    pub name: String,
    /// The host holding it.
    pub owner: String,
    /// Raised each time it changes hands.
    pub token: u64,
    /// Until it expires unless renewed (negative: expired).
    pub expires_in_ms: i64,
}

/// A live host.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HostRow {
    /// Its id.
    pub id: String,
    /// Where it serves HTTP.
    pub address: String,
    /// Since its last heartbeat.
    pub seen_ms_ago: i64,
    /// Leases it holds.
    pub leases: u64,
}

struct Held {
    sender: watch::Sender<Option<u64>>,
    /// When this host last renewed it, by its own clock: past `lease` from
    /// here it no longer counts on holding it.
    renewed: Option<Instant>,
}

/// This host's side of the leases; cheap to clone.
#[derive(Clone)]
pub struct Leases(Arc<Inner>);

struct Inner {
    pool: PgPool,
    schema: String,
    host: String,
    address: String,
    lease: Duration,
    wanted: Mutex<BTreeMap<String, Held>>,
    /// Wakes the loop early (new work wanted).
    wake: Notify,
}

impl Leases {
    /// Creates the cluster's tables if needed (hosts starting together
    /// serialise on an advisory lock) and registers this host.
    pub(super) async fn open(
        pool: PgPool,
        schema: String,
        host: String,
        address: String,
        lease: Duration,
    ) -> Result<Leases, sqlx::Error> {
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind(&schema)
            .execute(&mut *tx)
            .await?;
        for ddl in [
            format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""),
            format!(
                "CREATE TABLE IF NOT EXISTS \"{schema}\".hosts (id TEXT PRIMARY KEY, \
                 address TEXT NOT NULL, started_at TIMESTAMPTZ NOT NULL DEFAULT now(), \
                 seen_at TIMESTAMPTZ NOT NULL)"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS \"{schema}\".leases (name TEXT PRIMARY KEY, \
                 owner TEXT NOT NULL, token BIGINT NOT NULL, expires_at TIMESTAMPTZ NOT NULL)"
            ),
            // The shared registry (`registry.rs`): component bytes and the records.
            format!(
                "CREATE TABLE IF NOT EXISTS \"{schema}\".registry_blobs (sha256 TEXT PRIMARY KEY, \
                 bytes BYTEA NOT NULL)"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS \"{schema}\".registry (id INT PRIMARY KEY \
                 CHECK (id = 1), revision BIGINT NOT NULL, records JSONB NOT NULL)"
            ),
            // Per source: the last sequence stored on the JetStream events stream.
            format!(
                "CREATE TABLE IF NOT EXISTS \"{schema}\".published (source TEXT PRIMARY KEY, \
                 sequence BIGINT NOT NULL)"
            ),
        ] {
            sqlx::query(&ddl).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        let leases = Leases(Arc::new(Inner {
            pool,
            schema,
            host,
            address,
            lease,
            wanted: Mutex::default(),
            wake: Notify::new(),
        }));
        leases.heartbeat().await?;
        Ok(leases)
    }

    /// This host's id.
    pub fn host(&self) -> &str {
        &self.0.host
    }

    /// The lease's length.
    pub fn length(&self) -> Duration {
        self.0.lease
    }

    /// Asks for the lease `name`: the receiver holds its token while this
    /// host holds it, `None` otherwise.
    pub fn want(&self, name: &str) -> watch::Receiver<Option<u64>> {
        let mut wanted = self.0.wanted.lock().expect("leases poisoned");
        let held = wanted.entry(name.to_owned()).or_insert_with(|| Held {
            sender: watch::Sender::new(None),
            renewed: None,
        });
        let receiver = held.sender.subscribe();
        drop(wanted);
        self.0.wake.notify_one();
        receiver
    }

    /// No longer asks for `name` (its work ended); lets it go if held.
    pub async fn unwant(&self, name: &str) {
        let removed = self.0.wanted.lock().expect("leases poisoned").remove(name);
        if removed.is_some_and(|h| h.sender.borrow().is_some()) {
            self.release(name).await;
        }
    }

    /// Lets `name` go now, so its preferred host need not wait for expiry.
    /// The row stays, expired: its token must only ever grow, or a new
    /// holder's token would fall below the fence the last one raised.
    pub async fn release(&self, name: &str) {
        let sql = format!(
            "UPDATE \"{}\".leases SET expires_at = now() WHERE name = $1 AND owner = $2",
            self.0.schema
        );
        if let Err(e) = sqlx::query(&sql)
            .bind(name)
            .bind(&self.0.host)
            .execute(&self.0.pool)
            .await
        {
            tracing::warn!(lease = name, error = %e, "releasing a lease failed; it will expire");
        }
    }

    /// Keeps heartbeating and holding the leases this host should hold until
    /// `cancel` fires; then lets every lease go and leaves.
    pub(super) async fn run(self, cancel: tokio_util::sync::CancellationToken) {
        let tick = self.0.lease / 3;
        loop {
            if let Err(e) = self.tick().await {
                tracing::warn!(error = %e, "renewing cluster leases failed");
            }
            self.drop_expired();
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(tick) => {}
                _ = self.0.wake.notified() => {}
            }
        }
    }

    /// Lets every lease go (expired, tokens kept) and removes this host: its
    /// work moves at once.
    /// Call after the work has stopped.
    pub async fn leave(&self) {
        let schema = &self.0.schema;
        for sql in [
            format!("UPDATE \"{schema}\".leases SET expires_at = now() WHERE owner = $1"),
            format!("DELETE FROM \"{schema}\".hosts WHERE id = $1"),
        ] {
            if let Err(e) = sqlx::query(&sql)
                .bind(&self.0.host)
                .execute(&self.0.pool)
                .await
            {
                tracing::warn!(error = %e, "leaving the cluster failed; its leases will expire");
            }
        }
    }

    async fn heartbeat(&self) -> Result<(), sqlx::Error> {
        let sql = format!(
            "INSERT INTO \"{}\".hosts (id, address, seen_at) VALUES ($1, $2, now()) \
             ON CONFLICT (id) DO UPDATE SET seen_at = now(), address = excluded.address",
            self.0.schema
        );
        sqlx::query(&sql)
            .bind(&self.0.host)
            .bind(&self.0.address)
            .execute(&self.0.pool)
            .await?;
        Ok(())
    }

    /// Ids of the hosts whose heartbeat is younger than a lease.
    async fn live(&self) -> Result<Vec<String>, sqlx::Error> {
        let sql = format!(
            "SELECT id FROM \"{}\".hosts WHERE seen_at > now() - $1 * interval '1 millisecond' \
             ORDER BY id",
            self.0.schema
        );
        sqlx::query_scalar(&sql)
            .bind(self.0.lease.as_millis() as i64)
            .fetch_all(&self.0.pool)
            .await
    }

    async fn tick(&self) -> Result<(), sqlx::Error> {
        let started = Instant::now();
        self.heartbeat().await?;
        let live = self.live().await?;
        let names: Vec<String> = self
            .0
            .wanted
            .lock()
            .expect("leases poisoned")
            .keys()
            .cloned()
            .collect();
        for name in names {
            let mine = preferred(&live, &name).is_none_or(|host| host == self.0.host);
            let token = if mine {
                self.acquire(&name).await?
            } else {
                None
            };
            let mut wanted = self.0.wanted.lock().expect("leases poisoned");
            if let Some(held) = wanted.get_mut(&name) {
                held.renewed = token.map(|_| started);
                held.sender.send_if_modified(|current| {
                    let changed = *current != token;
                    *current = token;
                    changed
                });
            }
        }
        Ok(())
    }

    /// Takes or renews `name`: its token, or `None` while another live
    /// holder's lease runs. A lease taken over (or re-taken after it expired)
    /// gets a higher token; a renewal keeps it.
    async fn acquire(&self, name: &str) -> Result<Option<u64>, sqlx::Error> {
        let sql = format!(
            "INSERT INTO \"{s}\".leases AS l (name, owner, token, expires_at) \
             VALUES ($1, $2, 1, now() + $3 * interval '1 millisecond') \
             ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, \
             token = l.token + CASE WHEN l.owner = excluded.owner AND l.expires_at > now() \
             THEN 0 ELSE 1 END, expires_at = excluded.expires_at \
             WHERE l.owner = excluded.owner OR l.expires_at <= now() RETURNING token",
            s = self.0.schema
        );
        let token: Option<i64> = sqlx::query_scalar(&sql)
            .bind(name)
            .bind(&self.0.host)
            .bind(self.0.lease.as_millis() as i64)
            .fetch_optional(&self.0.pool)
            .await?;
        Ok(token.and_then(|t| u64::try_from(t).ok()))
    }

    /// Past a lease's length since its last renewal by this host's clock (the
    /// database unreachable, or this process paused), it is no longer held.
    fn drop_expired(&self) {
        let lease = self.0.lease;
        for held in self.0.wanted.lock().expect("leases poisoned").values_mut() {
            if held.renewed.is_some_and(|at| at.elapsed() >= lease) {
                held.renewed = None;
                held.sender.send_replace(None);
            }
        }
    }

    /// The live hosts and every lease, for `GET /admin/cluster`.
    pub async fn status(&self) -> Result<(Vec<HostRow>, Vec<LeaseRow>), sqlx::Error> {
        let schema = &self.0.schema;
        let leases: Vec<(String, String, i64, f64)> = sqlx::query_as(&format!(
            "SELECT name, owner, token, \
             (EXTRACT(EPOCH FROM (expires_at - now())) * 1000)::float8 FROM \"{schema}\".leases ORDER BY name"
        ))
        .fetch_all(&self.0.pool)
        .await?;
        let leases: Vec<LeaseRow> = leases
            .into_iter()
            .map(|(name, owner, token, ms)| LeaseRow {
                name,
                owner,
                token: u64::try_from(token).unwrap_or(0),
                expires_in_ms: ms as i64,
            })
            .collect();
        let hosts: Vec<(String, String, f64)> = sqlx::query_as(&format!(
            "SELECT id, address, (EXTRACT(EPOCH FROM (now() - seen_at)) * 1000)::float8 \
             FROM \"{schema}\".hosts WHERE seen_at > now() - $1 * interval '1 millisecond' ORDER BY id"
        ))
        .bind(self.0.lease.as_millis() as i64)
        .fetch_all(&self.0.pool)
        .await?;
        let hosts = hosts
            .into_iter()
            .map(|(id, address, ms)| HostRow {
                leases: leases
                    .iter()
                    .filter(|l| l.owner == id && l.expires_in_ms > 0)
                    .count() as u64,
                id,
                address,
                seen_ms_ago: ms as i64,
            })
            .collect();
        Ok((hosts, leases))
    }

    /// How many leases this host holds now.
    pub fn held(&self) -> usize {
        self.0
            .wanted
            .lock()
            .expect("leases poisoned")
            .values()
            .filter(|h| h.sender.borrow().is_some())
            .count()
    }
}

/// The live host that should hold `name`: the highest hash of (host, name),
/// so each host's share is even and only a leaving host's work moves.
fn preferred<'a>(live: &'a [String], name: &str) -> Option<&'a str> {
    live.iter()
        .max_by_key(|host| {
            let digest = Sha256::new()
                .chain_update(host.as_bytes())
                .chain_update([0])
                .chain_update(name.as_bytes())
                .finalize();
            u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
        })
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::preferred;

    #[test]
    fn work_spreads_over_live_hosts_and_only_a_leaving_hosts_work_moves() {
        let three: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let names: Vec<String> = (0..300).map(|i| format!("stream:s{i}")).collect();
        let owners: Vec<&str> = names
            .iter()
            .map(|n| preferred(&three, n).unwrap())
            .collect();
        for host in ["a", "b", "c"] {
            let share = owners.iter().filter(|o| **o == host).count();
            assert!((70..=130).contains(&share), "{host} got {share} of 300");
        }
        let two: Vec<String> = ["a", "c"].map(String::from).to_vec();
        for (name, before) in names.iter().zip(&owners) {
            let after = preferred(&two, name).unwrap();
            if *before != "b" {
                assert_eq!(after, *before, "{name} moved though its host stayed");
            }
        }
        assert_eq!(preferred(&[], "x"), None);
    }
}
