//! Scale-out: several `mercato serve` processes on one PostgreSQL and one NATS
//! JetStream share a shop's work and survive the loss of any of them.
//!
//! - `config.rs`: `[cluster]` and the names derived from the cluster's name.
//! - `leases.rs`: hosts, leases with tokens, which host holds which work.
//! - `fence.rs`: the token check in each committing transaction.
//! - `bus.rs`: wake-ups between hosts and the JetStream events stream.
//!
//! Every host serves every HTTP request (the plugins' state is in
//! PostgreSQL); what runs on one host only is the background work: each
//! (subscriber, source) stream and each plugin's source-side jobs (numbering,
//! publishing, marking, outbound delivery, the delayed-event scheduler), each
//! under a lease ([`Cluster::run_leased`]).
mod bus;
mod config;
pub mod fence;
mod leases;
mod registry;

pub use bus::{Bus, Published, subject_token};
pub use config::{ClusterConfig, DEFAULT_LEASE_MS};
pub use fence::Fence;
pub use leases::{HostRow, LeaseRow, Leases};

use crate::storage::Database;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Why this host could not join its cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// PostgreSQL refused the cluster's tables or this host's row.
    #[error("joining cluster `{cluster}` in PostgreSQL: {source}")]
    Postgres {
        /// The cluster's name.
        cluster: String,
        /// What PostgreSQL said.
        source: sqlx::Error,
    },
    /// NATS could not be reached, or JetStream refused the events stream.
    #[error("joining cluster `{cluster}`: {message}")]
    Nats {
        /// The cluster's name.
        cluster: String,
        /// What went wrong.
        message: String,
    },
}

/// This host's membership of the cluster; cheap to clone.
#[derive(Clone)]
pub struct Cluster(Arc<Inner>);

struct Inner {
    config: ClusterConfig,
    leases: Leases,
    bus: Bus,
    pool: sqlx::PgPool,
    schema: String,
    cancel: CancellationToken,
}

impl Cluster {
    /// Joins: connects to NATS and PostgreSQL (`admin_url`, the cluster's
    /// tables in its schema under `namespace`), registers this host as
    /// serving `address`, and starts holding leases.
    pub async fn join(
        config: &ClusterConfig,
        admin_url: &str,
        namespace: &str,
        address: String,
    ) -> Result<Cluster, ClusterError> {
        let postgres = |source| ClusterError::Postgres {
            cluster: config.name.clone(),
            source,
        };
        let bus = Bus::connect(config)
            .await
            .map_err(|message| ClusterError::Nats {
                cluster: config.name.clone(),
                message,
            })?;
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect(admin_url)
            .await
            .map_err(postgres)?;
        let schema = ClusterConfig::schema(namespace);
        let host = format!(
            "{}-{}",
            config.name,
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let leases = Leases::open(
            pool.clone(),
            schema.clone(),
            host,
            address,
            std::time::Duration::from_millis(config.lease_ms),
        )
        .await
        .map_err(postgres)?;
        let cancel = CancellationToken::new();
        tokio::spawn(leases.clone().run(cancel.clone()));
        tracing::info!(cluster = %config.name, host = %leases.host(), "joined the cluster");
        Ok(Cluster(Arc::new(Inner {
            config: config.clone(),
            leases,
            bus,
            pool,
            schema,
            cancel,
        })))
    }

    /// The cluster's settings.
    pub fn config(&self) -> &ClusterConfig {
        &self.0.config
    }

    /// This host's id.
    pub fn host(&self) -> &str {
        self.0.leases.host()
    }

    /// The leases.
    pub fn leases(&self) -> &Leases {
        &self.0.leases
    }

    /// The NATS side.
    pub fn bus(&self) -> &Bus {
        &self.0.bus
    }

    /// Stops renewing, lets every lease go and leaves: call once this host's
    /// leased work has stopped, so the others take it over at once.
    pub async fn leave(&self) {
        self.0.cancel.cancel();
        self.0.leases.leave().await;
    }

    /// Waits until no other host of the cluster does `what` (loading
    /// plugins, deploying), and keeps them out until the guard is dropped:
    /// two hosts must not migrate one database at once. The lock is held by a
    /// connection of its own, so a host that dies lets it go.
    pub async fn exclusive(&self, what: &str) -> Result<Exclusive, sqlx::Error> {
        use sqlx::Connection;
        let options = self.0.pool.connect_options();
        let mut connection = sqlx::PgConnection::connect_with(&options).await?;
        sqlx::query("SELECT pg_advisory_lock(hashtext($1))")
            .bind(format!("{}:{what}", self.0.schema))
            .execute(&mut connection)
            .await?;
        Ok(Exclusive {
            _connection: connection,
        })
    }

    /// The last sequence of `source` stored on the events stream.
    pub async fn published(&self, source: &str) -> Result<u64, sqlx::Error> {
        let sql = format!(
            "SELECT sequence FROM \"{}\".published WHERE source = $1",
            self.0.schema
        );
        let sequence: Option<i64> = sqlx::query_scalar(&sql)
            .bind(source)
            .fetch_optional(&self.0.pool)
            .await?;
        Ok(sequence.map_or(0, |s| u64::try_from(s).unwrap_or(0)))
    }

    /// Records that `source`'s events through `sequence` are on the stream.
    pub async fn set_published(&self, source: &str, sequence: u64) -> Result<(), sqlx::Error> {
        let sql = format!(
            "INSERT INTO \"{}\".published (source, sequence) VALUES ($1, $2) \
             ON CONFLICT (source) DO UPDATE SET sequence = GREATEST(excluded.sequence, \
             published.sequence)",
            self.0.schema
        );
        sqlx::query(&sql)
            .bind(source)
            .bind(i64::try_from(sequence).unwrap_or(i64::MAX))
            .execute(&self.0.pool)
            .await?;
        Ok(())
    }

    /// Runs the work called `name` on this host whenever this host holds its
    /// lease, until `life` fires. Each term: the fence is raised in every
    /// database of `dbs` (where the work commits), then `job` runs under the
    /// fence with a token that fires when the lease is lost. A lease this
    /// host no longer should hold is released once the job has stopped.
    pub async fn run_leased<F, Fut>(
        &self,
        name: String,
        dbs: Vec<Database>,
        life: CancellationToken,
        mut job: F,
    ) where
        F: FnMut(CancellationToken) -> Fut,
        Fut: Future<Output = ()>,
    {
        let leases = self.leases();
        let mut lease = leases.want(&name);
        'terms: loop {
            let token = loop {
                if let Some(token) = *lease.borrow_and_update() {
                    break token;
                }
                tokio::select! {
                    _ = life.cancelled() => break 'terms,
                    changed = lease.changed() => if changed.is_err() { break 'terms },
                }
            };
            let fence = Fence {
                name: name.clone(),
                token,
                host: self.host().to_owned(),
            };
            for db in &dbs {
                loop {
                    match fence.raise(db).await {
                        Ok(true) => break,
                        // A newer holder got there: wait for the next term.
                        Ok(false) => {
                            wait_for_change(&mut lease, &life).await;
                            continue 'terms;
                        }
                        Err(e) => {
                            tracing::warn!(lease = %name, error = %e, "raising a fence failed; retrying");
                            tokio::select! {
                                _ = life.cancelled() => break 'terms,
                                _ = tokio::time::sleep(leases.length() / 10) => {}
                            }
                        }
                    }
                }
            }
            tracing::debug!(lease = %name, token, "took over work");
            let term = life.child_token();
            let work = fence.scope(job(term.clone()));
            tokio::pin!(work);
            let lost = loop {
                tokio::select! {
                    _ = &mut work => break false,
                    changed = lease.changed() => {
                        if changed.is_err() || *lease.borrow() != Some(token) {
                            term.cancel();
                            (&mut work).await;
                            break true;
                        }
                    }
                }
            };
            if life.is_cancelled() {
                break;
            }
            if lost {
                if lease.borrow().is_none() {
                    leases.release(&name).await;
                }
            } else {
                // The job ended on its own (its commits were fenced): wait
                // until the lease changes before starting it again.
                wait_for_change(&mut lease, &life).await;
            }
        }
        leases.unwant(&name).await;
    }
}

/// Held while this host alone does something in the cluster; dropping it
/// closes the connection holding the lock.
pub struct Exclusive {
    _connection: sqlx::PgConnection,
}

async fn wait_for_change(
    lease: &mut tokio::sync::watch::Receiver<Option<u64>>,
    life: &CancellationToken,
) {
    tokio::select! {
        _ = life.cancelled() => {}
        _ = lease.changed() => {}
    }
}
