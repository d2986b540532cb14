//! WAL checkpoints on a thread of their own, off the writer's path.
//!
//! SQLite's automatic checkpoint runs inside the commit that takes the WAL
//! past 1,000 pages, on the writer connection: it copies the WAL's pages
//! into the database file and `fsync`s both files while the writer (and so
//! every write waiting for it) stands still. In the server's ingest
//! benchmark that was every fourth batch of 1,000 records, 5 % of the CPU
//! and about a sixth of the writer's wall time waiting for `fsync`.
//!
//! Here the writer's WAL hook wakes a checkpointer thread, which runs
//! `PASSIVE` checkpoints on its own connection while the writer goes on
//! (WAL mode lets a checkpoint run beside the writer and the readers).
//! SQLite starts the WAL file over only in a write transaction that begins
//! after a checkpoint has copied *every* frame, which a writer that is
//! never idle does not give the thread; so once the thread has copied all
//! but the latest commit, the writer's hook copies that commit's frames
//! itself (a few hundred pages instead of the whole WAL), and its next
//! transaction starts the WAL over. In the benchmark the WAL then cycles
//! at 1,200 – 2,600 pages instead of 1,000, with the writer checkpointing a
//! sixth of the frames, once per cycle. Should the thread fall behind (the
//! WAL past [`WRITER_CHECKPOINT_PAGES`]), the writer checkpoints it all,
//! as SQLite's own hook does, so the WAL stays bounded. Durability is
//! unchanged: with `synchronous=NORMAL` a commit was never `fsync`ed, and
//! a checkpoint still syncs the WAL before it copies and the database
//! after.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use rusqlite::{Connection, OpenFlags};

use super::lock;
use crate::StoreError;

/// WAL pages after a commit that wake the checkpointer (SQLite's default
/// automatic checkpoint threshold).
const CHECKPOINT_PAGES: i32 = 1_000;

/// WAL pages after a commit at which the writer checkpoints itself.
const WRITER_CHECKPOINT_PAGES: i32 = 16 * CHECKPOINT_PAGES;

#[derive(Default)]
struct State {
    wanted: bool,
    stop: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    /// WAL frames the thread's last pass had copied into the database.
    backfilled: AtomicI32,
}

/// The checkpointer thread; stopped (and its connection closed) on drop.
pub(crate) struct Checkpointer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Opens a connection to `path` for checkpoints, starts the thread and
    /// installs the writer's WAL hook (which replaces SQLite's automatic
    /// checkpoint).
    pub(crate) fn start(path: &str, writer: &mut Connection) -> Result<Checkpointer, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        let shared = Arc::new(Shared::default());
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("costtrace-sqlite-checkpoint".into())
                .spawn(move || run(&conn, &shared))
                .map_err(|e| StoreError::Worker(e.to_string()))?
        };
        let hook_shared = shared.clone();
        // WAL pages after the previous commit.
        let mut before = 0;
        writer.wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, pages| {
            let done = hook_shared.backfilled.load(Ordering::Relaxed);
            if pages < before {
                // The WAL started over.
                hook_shared.backfilled.store(0, Ordering::Relaxed);
            }
            // The thread has copied everything but this commit.
            let caught_up = done > 0 && done >= before && pages >= before;
            before = pages;
            if pages < CHECKPOINT_PAGES {
                return Ok(());
            }
            if caught_up || pages >= WRITER_CHECKPOINT_PAGES {
                // Copy what is left here, between two write transactions,
                // so that the next one starts the WAL over (a checkpoint
                // running on the thread makes this a no-op).
                let _ = wal.checkpoint_v2(rusqlite::wal::CheckpointMode::PASSIVE);
            } else {
                let mut s = lock(&hook_shared.state);
                if !s.wanted {
                    s.wanted = true;
                    hook_shared.wake.notify_one();
                }
            }
            Ok(())
        }))?;
        Ok(Checkpointer {
            shared,
            thread: Some(thread),
        })
    }
}

/// A `PASSIVE` checkpoint. A connection that has not read the database yet
/// does not know it is in WAL mode (SQLite answers -1 frames and does
/// nothing): one read opens its WAL, then the checkpoint is tried again.
fn checkpoint(conn: &Connection) -> rusqlite::Result<(i32, i32)> {
    let passive = || conn.wal_checkpoint_v2(None::<&str>, rusqlite::wal::CheckpointMode::PASSIVE);
    match passive()? {
        (-1, _) => {
            conn.query_row("SELECT COUNT(*) FROM sqlite_schema", [], |r| {
                r.get::<_, i64>(0)
            })?;
            passive()
        }
        done => Ok(done),
    }
}

fn run(conn: &Connection, shared: &Shared) {
    loop {
        {
            let mut s = lock(&shared.state);
            while !s.wanted && !s.stop {
                s = shared.wake.wait(s).unwrap_or_else(|p| p.into_inner());
            }
            if s.stop {
                return;
            }
            s.wanted = false;
        }
        // Commits made during a pass are left for the next one; the WAL
        // starts over only after a pass that leaves nothing behind, so
        // passes repeat until one does, or until one makes no progress (a
        // reader's snapshot holds the rest back; the next commit past the
        // threshold asks again). A failed checkpoint leaves the WAL as it
        // was.
        let mut backfilled = -1;
        while let Ok((frames, done)) = checkpoint(conn) {
            shared.backfilled.store(done, Ordering::Relaxed);
            if done >= frames || done <= backfilled {
                break;
            }
            backfilled = done;
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        lock(&self.shared.state).stop = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
