//! WAL checkpoints beside the writer, and the restarts that keep the WAL from
//! growing without end.
//!
//! SQLite's automatic checkpoint runs inside whichever commit crosses 1,000
//! WAL pages, while that commit holds the plugin's only write lock: one commit
//! in a few hundred took milliseconds and stalled every writer behind it (the
//! relay's p99 in docs/benchmarks.md). So a thread of its own copies the WAL
//! into the database every [`CHECKPOINT_EVERY`], passively: never blocking
//! the writer or a reader.
//!
//! A passive checkpoint never makes the WAL start over. The next writer
//! rewinds the log only when every frame has been copied and no reader still
//! reads from the WAL, which under steady load (a commit every millisecond,
//! some read always open) never happens: under the saga benchmark the WAL
//! grew by about 100 MB/s without end, and appending to it cost ~16 % of the
//! host's CPU in the kernel, zeroing fresh page-cache pages. Nor can a
//! RESTART checkpoint beside busy readers be relied on: readers that come one
//! after another keep taking the read locks it waits for. So when a passive
//! checkpoint leaves more than [`RESTART_FRAMES`] in the WAL, the next write
//! transaction first holds off the database's readers (their slots, at most
//! [`RESTART_WAIT`]) and restarts the WAL on a blocking thread: the frames
//! left to copy are few, and no reader of this process can stand in the way.
//! Calls wait for it on the async writer lock and reader slots, never on a
//! blocked worker.
use super::super::StorageError;
use super::conn::BUSY_TIMEOUT;
use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// How often the background checkpointer copies the WAL into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// WAL frames (of one page each; 4 KiB by default) past which the WAL is
/// restarted: about 64 MiB. Each restart stalls the database's calls for a
/// few milliseconds (the last frames copied, the file synced); fewer of them
/// cost less than a larger file's longer index lookups.
pub const RESTART_FRAMES: i64 = 16384;

/// How long a restart waits for readers, and then for the locks it needs.
pub(super) const RESTART_WAIT: Duration = Duration::from_millis(50);

/// The checkpoint thread of one database; stopped and joined when dropped.
pub(super) struct Checkpointer {
    /// Dropping it wakes the thread to stop.
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// A passive checkpoint left more than [`RESTART_FRAMES`] in the WAL.
    restart_due: Arc<AtomicBool>,
}

impl Checkpointer {
    /// Starts checkpointing the database at `path`.
    pub(super) fn start(path: &Path) -> Result<Self, StorageError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        let (stop, stopped) = mpsc::channel::<()>();
        let restart_due = Arc::new(AtomicBool::new(false));
        let due = restart_due.clone();
        let name = format!(
            "mercato-ckpt-{}",
            path.file_stem().and_then(|s| s.to_str()).unwrap_or("db")
        );
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(CHECKPOINT_EVERY)
                {
                    if due.load(Ordering::Relaxed) {
                        // The restart copies what is left; a passive pass
                        // now would only contend with it for the lock.
                        continue;
                    }
                    match checkpoint(&conn, "PASSIVE") {
                        Ok((_, left)) => due.store(left > RESTART_FRAMES, Ordering::Relaxed),
                        Err(e) => tracing::warn!(error = %e, "background WAL checkpoint failed"),
                    }
                }
            })
            .map_err(|e| StorageError::Setup(format!("starting the WAL checkpointer: {e}")))?;
        Ok(Checkpointer {
            stop: Some(stop),
            thread: Some(thread),
            restart_due,
        })
    }

    /// True once per restart the checkpoint thread asked for. (A load first:
    /// every write transaction asks, and a swap would write the shared flag.)
    pub(super) fn take_restart(&self) -> bool {
        self.restart_due.load(Ordering::Relaxed) && self.restart_due.swap(false, Ordering::Relaxed)
    }
}

impl Drop for Checkpointer {
    /// Waits for the thread's connection to close. The last connection to
    /// close deletes the `-wal` and `-shm` files *by name*: closed later, it
    /// would delete those of a new database made at the same path meanwhile
    /// (files removed and the plugin started again), whose connections then
    /// stop seeing each other's commits.
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::warn!("the WAL checkpointer panicked");
        }
    }
}

/// Runs a checkpoint in `mode`: whether it was stopped by a lock it could not
/// get, and the frames in the WAL.
fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<(bool, i64)> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
        Ok((row.get::<_, i64>(0)? != 0, row.get(1)?))
    })
}

/// Restarts the WAL on the writer `conn`, between two of its transactions
/// and with this process's readers held off; false when some other process
/// still reads from the WAL (the next passive pass asks again).
pub(super) fn restart(conn: &Connection) -> rusqlite::Result<bool> {
    conn.busy_timeout(RESTART_WAIT)?;
    let done = checkpoint(conn, "RESTART");
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(!done?.0)
}
