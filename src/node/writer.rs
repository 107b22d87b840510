//! Group commit: one thread owns the durable writes. It takes every `Persist`
//! batch that queued up while the previous sync ran, merges them into one
//! `WriteBatch` and syncs it once, then reports all their tickets durable.
//!
//! Merging keeps the semantics of applying the batches one after another:
//! accepts are appended in order (a later put to the same index wins), and the
//! promise, chosen index and trim point take the last value given.

use std::sync::Arc;
use std::time::Instant;

use paxlog_storage::{Store, StoreError, WriteBatch};
use tokio::sync::mpsc;

use super::telemetry::SharedWindow;
use crate::core::{Persist, Ticket};

/// Core batches merged into one synced write at most.
///
/// There are two batching layers, on purpose:
/// - the core bounds each Accept message and each staged write (one
///   `Persist`) by `core::Config::batch_entries_max` (256 entries) and
///   `batch_bytes_max` (1 MiB), so one message fits a frame
///   (`Limits::frame_bytes_max`, 4 MiB, with room for a batch that
///   ends one value past the bound, which is checked before adding);
/// - the writer merges the `Persist` batches that queued while the previous
///   fsync ran (group commit), so a busy node pays one fsync per burst rather
///   than one per batch.
///
/// The merge bounds are multiples of the core's: 256 batches, and
/// [`MERGE_BYTES_MAX`] = 16 full 1 MiB batches. The byte bound binds under
/// large values, the batch count under small ones; both keep a burst from
/// building an unbounded write.
pub const MERGE_BATCHES_MAX: usize = 256;
/// Value bytes of one merged write before it takes no more batches (checked
/// before each, so it may end one core batch past it). See [`MERGE_BATCHES_MAX`].
pub const MERGE_BYTES_MAX: usize = 16 << 20;

/// A core batch's wait from the loop's hand-off to the start of the sync that
/// carries it: mostly the rest of the sync running when it came.
const WRITE_WAIT_METRIC: &str = "paxlog_write_wait_seconds";

/// A core batch on its way to the writer, stamped when the loop hands it
/// over: its wait for the sync that carries it is a stage of the commit path.
#[derive(Debug)]
pub struct Staged {
    pub persist: Persist,
    pub staged_at: Instant,
}

impl Staged {
    pub fn now(persist: Persist) -> Staged {
        Staged {
            persist,
            staged_at: Instant::now(),
        }
    }
}

#[derive(Debug)]
pub enum WriteDone {
    /// `synced_at` times the notice's own hop back to the loop.
    Durable {
        tickets: Vec<Ticket>,
        synced_at: Instant,
    },
    /// Fatal: the node must stop and never acknowledge anything again.
    Failed(StoreError),
}

pub fn merge_into(into: &mut WriteBatch, next: WriteBatch) {
    if next.promise.is_some() {
        assert!(
            into.promise <= next.promise,
            "promised ballot must never decrease within a merged write"
        );
        into.promise = next.promise;
    }
    into.accepts.extend(next.accepts);
    if next.chosen_index.is_some() {
        into.chosen_index = next.chosen_index.max(into.chosen_index);
    }
    if next.trim_index.is_some() {
        into.trim_index = next.trim_index.max(into.trim_index);
    }
    // The later state goes with the later (higher) trim.
    if next.trim_state.is_some() {
        into.trim_state = next.trim_state;
    }
}

/// Spawns the writer thread. It exits when `rx` closes or after the first
/// failure (which it reports once).
pub fn spawn<S: Store + 'static>(
    store: Arc<S>,
    mut rx: mpsc::Receiver<Staged>,
    done: mpsc::UnboundedSender<WriteDone>,
    fsync: SharedWindow,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("paxlog-writer".into())
        .spawn(move || {
            while let Some(first) = rx.blocking_recv() {
                // Looked up per write, not once: the recorder may be installed
                // after this thread starts.
                let wait = metrics::histogram!(WRITE_WAIT_METRIC);
                let taken_at = Instant::now();
                wait.record(taken_at.duration_since(first.staged_at).as_secs_f64());
                let mut tickets = vec![first.persist.ticket];
                let mut sync = first.persist.sync;
                let mut batch = first.persist.batch;
                while tickets.len() < MERGE_BATCHES_MAX && batch.value_bytes() < MERGE_BYTES_MAX {
                    match rx.try_recv() {
                        Ok(next) => {
                            wait.record(taken_at.duration_since(next.staged_at).as_secs_f64());
                            tickets.push(next.persist.ticket);
                            // One sync covers the unsynced batches merged with it.
                            sync |= next.persist.sync;
                            merge_into(&mut batch, next.persist.batch);
                        }
                        Err(_) => break,
                    }
                }
                match write_batch(store.as_ref(), &batch, sync, &fsync) {
                    Ok(()) => {
                        let synced_at = Instant::now();
                        if done
                            .send(WriteDone::Durable { tickets, synced_at })
                            .is_err()
                        {
                            return;
                        }
                    }
                    Err(error) => {
                        let _ = done.send(WriteDone::Failed(error));
                        return;
                    }
                }
            }
        })
}

/// One write, synced (timed into the fsync metrics) or not (counted). An
/// error is fatal to the node, and logged as such here so both places that
/// write say it alike.
fn write_batch<S: Store>(
    store: &S,
    batch: &WriteBatch,
    sync: bool,
    fsync: &SharedWindow,
) -> Result<(), StoreError> {
    metrics::histogram!("paxlog_write_batch_entries").record(batch.accepts.len() as f64);
    metrics::histogram!("paxlog_write_batch_bytes").record(batch.value_bytes() as f64);
    let result = if sync {
        let started = Instant::now();
        let result = store.write(batch);
        let took = started.elapsed();
        metrics::histogram!("paxlog_fsync_duration_seconds").record(took.as_secs_f64());
        fsync.lock().unwrap_or_else(|e| e.into_inner()).record(took);
        result
    } else {
        metrics::counter!("paxlog_unsynced_writes_total").increment(1);
        store.write_unsynced(batch)
    };
    if let Err(error) = &result {
        tracing::error!(%error, "storage write failed; stopping the node (fail-stop)");
    }
    result
}

/// A follower's writes made in the loop itself (`FollowerSync::Loop`).
///
/// Why: a follower's commit path is Accept in → synced → Accepted out, and
/// through the writer thread that is two wake-ups of a sleeping thread (loop →
/// writer, writer → loop), ~60 µs each on a busy 2-core VM. In the loop the
/// Accepted leaves as soon as the sync returns. The loop takes nothing while
/// it syncs, which a follower can afford: what arrives meanwhile would wait
/// for the next sync anyway. A leader never syncs here: its loop must go on
/// sending Accepts and taking requests during its own sync.
pub struct LoopWriter<S> {
    store: Arc<S>,
    fsync: SharedWindow,
}

impl<S> std::fmt::Debug for LoopWriter<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoopWriter").finish_non_exhaustive()
    }
}

impl<S: Store> LoopWriter<S> {
    pub fn new(store: Arc<S>, fsync: SharedWindow) -> Self {
        LoopWriter { store, fsync }
    }

    /// Writes `batch` on the calling thread, blocking it while it syncs.
    pub fn write(&self, batch: &WriteBatch, sync: bool) -> Result<(), StoreError> {
        let result = write_batch(self.store.as_ref(), batch, sync, &self.fsync);
        if result.is_ok() && sync {
            metrics::counter!("paxlog_loop_syncs_total").increment(1);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use paxlog_storage::{Accepted, Ballot};

    fn accept(index: u64, counter: u64) -> (u64, Accepted) {
        let ballot = Ballot::new(counter, 1);
        (
            index,
            Accepted {
                ballot,
                value: Bytes::from(vec![counter as u8]),
            },
        )
    }

    #[test]
    fn merge_keeps_order_and_last_values() {
        let mut a = WriteBatch {
            promise: Some(Ballot::new(1, 1)),
            accepts: vec![accept(1, 1)],
            chosen_index: Some(3),
            trim_index: None,
            trim_state: None,
        };
        let b = WriteBatch {
            promise: Some(Ballot::new(2, 2)),
            accepts: vec![accept(1, 2), accept(2, 2)],
            chosen_index: None,
            trim_index: Some(1),
            trim_state: Some(bytes::Bytes::from_static(b"state")),
        };
        merge_into(&mut a, b);
        assert_eq!(a.promise, Some(Ballot::new(2, 2)));
        assert_eq!(a.accepts, vec![accept(1, 1), accept(1, 2), accept(2, 2)]);
        assert_eq!(a.chosen_index, Some(3));
        assert_eq!(a.trim_index, Some(1));
        assert_eq!(a.trim_state, Some(bytes::Bytes::from_static(b"state")));
    }

    #[test]
    #[should_panic(expected = "never decrease")]
    fn merge_refuses_a_decreasing_promise() {
        let mut a = WriteBatch {
            promise: Some(Ballot::new(5, 1)),
            ..Default::default()
        };
        merge_into(
            &mut a,
            WriteBatch {
                promise: Some(Ballot::new(4, 1)),
                ..Default::default()
            },
        );
    }
}
