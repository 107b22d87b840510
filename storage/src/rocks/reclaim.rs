//! Gives the space of trimmed entries back to the file system. A trim's
//! `delete_range` only hides the entries; RocksDB frees their bytes when a
//! compaction covers the range, which on a log that only appends above it
//! may never happen on its own. One thread per store compacts the trimmed
//! range after each trim, off the write path (a compaction of a large
//! prefix takes long, and appends must not wait for it), and at most one
//! compaction runs at a time: trims that arrive meanwhile are merged into
//! the next one.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rocksdb::DB;

use crate::{record, Index};

#[derive(Debug, Default)]
struct State {
    /// The highest trim point asked for.
    wanted: Index,
    /// The highest trim point whose range a finished compaction covered.
    /// Invariant: `done <= wanted`.
    done: Index,
    stop: bool,
}

type Shared = Arc<(Mutex<State>, Condvar)>;

/// Every critical section assigns whole values, so a poisoned lock still
/// guards consistent state.
fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The reclaim thread of one store; dropping it waits for the compaction
/// in progress, so the database can be closed and reopened at once.
pub(super) struct Reclaimer {
    shared: Shared,
    thread: Option<JoinHandle<()>>,
}

impl Reclaimer {
    pub(super) fn start(db: Arc<DB>, trim_index: Index) -> std::io::Result<Reclaimer> {
        let shared: Shared = Arc::new((
            Mutex::new(State {
                wanted: trim_index,
                done: 0,
                stop: false,
            }),
            Condvar::new(),
        ));
        let theirs = shared.clone();
        let thread = std::thread::Builder::new()
            .name("paxlog-reclaim".into())
            .spawn(move || run(&db, &theirs))?;
        Ok(Reclaimer {
            shared,
            thread: Some(thread),
        })
    }

    /// Asks for the range up to `trim_index` to be compacted.
    pub(super) fn trimmed(&self, trim_index: Index) {
        let (state, wake) = &*self.shared;
        let mut s = lock(state);
        if trim_index > s.wanted {
            s.wanted = trim_index;
            wake.notify_all();
        }
    }

    /// Waits until a compaction covered `trim_index`, at most `timeout`;
    /// whether it did.
    pub(super) fn wait(&self, trim_index: Index, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (state, wake) = &*self.shared;
        let mut s = lock(state);
        while s.done < trim_index {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            s = wake
                .wait_timeout(s, left)
                .map(|(s, _)| s)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        true
    }
}

impl Drop for Reclaimer {
    fn drop(&mut self) {
        let (state, wake) = &*self.shared;
        lock(state).stop = true;
        wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(db: &DB, shared: &Shared) {
    let (state, wake) = &**shared;
    loop {
        let upto = {
            let mut s = lock(state);
            while !s.stop && s.done >= s.wanted {
                s = wake.wait(s).unwrap_or_else(|p| p.into_inner());
            }
            if s.stop {
                return;
            }
            s.wanted
        };
        // RocksDB reports no error for a compaction; a range left
        // uncompacted loses nothing (its entries stay deleted) and the next
        // trim covers it again.
        let start = record::accepted_key(0);
        let end = record::accepted_key_after(upto);
        db.compact_range(Some(&start[..]), Some(&end[..]));
        // The compaction flushed the entries, but the WAL files that held
        // them stay until every column family's records in them are
        // flushed too, and the meta column family's small memtable may hold
        // records from the oldest of them. A failed flush leaves only disk
        // space behind, given back by a later flush.
        if let Some(meta) = db.cf_handle(record::META_CF) {
            let _ = db.flush_cf(meta);
        }
        let mut s = lock(state);
        s.done = s.done.max(upto);
        wake.notify_all();
    }
}
