//! The ceiling of the saga: what the same database commits at the same
//! concurrency when nothing but commits run, measured in the same run.
//!
//! Mercato's saga makes a known number of write transactions per order (its
//! two requests and every event delivery, counted from the host's metrics
//! during the timed phase). The ceiling runs that many one-row write
//! transactions per "order" from as many tasks as there are buyers, on the
//! same kind of database opened the way the host opens it, and divides its
//! commit rate by that number: the most orders per second a design with one
//! transaction per step could reach on this machine. Mercato can exceed it,
//! because a stream that is behind delivers several events per commit.
use anyhow::Context;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// SQLite: `tasks` threads, each transaction going to the next of `files`
/// database files (WAL, `synchronous=NORMAL`, one writer connection each, as
/// the host opens a plugin's database). Returns commits per second.
pub fn sqlite(dir: &Path, files: usize, tasks: usize, duration: Duration) -> anyhow::Result<f64> {
    let conns = (0..files.max(1))
        .map(|n| {
            let conn = rusqlite::Connection::open(dir.join(format!("ceiling-{n}.db")))?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)",
            )?;
            Ok(Mutex::new(conn))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let conns = Arc::new(conns);
    let commits = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let threads = (0..tasks)
        .map(|t| {
            let (conns, commits, stop) = (conns.clone(), commits.clone(), stop.clone());
            std::thread::spawn(move || -> anyhow::Result<()> {
                let mut n = t;
                while !stop.load(Ordering::Relaxed) {
                    let conn = conns[n % conns.len()].lock().expect("poisoned");
                    conn.execute_batch("BEGIN IMMEDIATE")?;
                    conn.execute("INSERT INTO t (v) VALUES (?1)", ["x"])?;
                    conn.execute_batch("COMMIT")?;
                    drop(conn);
                    commits.fetch_add(1, Ordering::Relaxed);
                    n += 1;
                }
                Ok(())
            })
        })
        .collect::<Vec<_>>();
    let started = Instant::now();
    std::thread::sleep(duration);
    let done = commits.load(Ordering::Relaxed);
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        thread
            .join()
            .map_err(|_| anyhow::anyhow!("a ceiling thread panicked"))??;
    }
    Ok(done as f64 / elapsed.as_secs_f64())
}

/// PostgreSQL: `tasks` connections, each running one-row transactions
/// (`BEGIN`, `INSERT`, `COMMIT`) back to back in a schema of its own, dropped
/// afterwards. Returns commits per second.
pub async fn postgres(url: &str, tasks: usize, duration: Duration) -> anyhow::Result<f64> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(tasks as u32)
        .connect(url)
        .await
        .context("connecting for the ceiling")?;
    let schema = format!("ceiling_{}", uuid::Uuid::new_v4().simple());
    sqlx::raw_sql(&format!(
        "CREATE SCHEMA {schema}; CREATE TABLE {schema}.t (id BIGSERIAL PRIMARY KEY, v TEXT NOT NULL)"
    ))
    .execute(&pool)
    .await?;
    let insert = format!("INSERT INTO {schema}.t (v) VALUES ($1)");
    let commits = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + duration;
    let started = Instant::now();
    let runs = (0..tasks).map(|_| {
        let (pool, insert, commits) = (pool.clone(), insert.clone(), commits.clone());
        tokio::spawn(async move {
            while Instant::now() < until {
                let mut tx = pool.begin().await?;
                sqlx::query(&insert).bind("x").execute(&mut *tx).await?;
                tx.commit().await?;
                commits.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        })
    });
    let results = futures_util::future::join_all(runs).await;
    let elapsed = started.elapsed();
    sqlx::raw_sql(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&pool)
        .await?;
    for result in results {
        result.context("a ceiling task panicked")??;
    }
    Ok(commits.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64())
}
