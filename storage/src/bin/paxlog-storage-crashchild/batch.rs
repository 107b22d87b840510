//! The batches the crash child writes, shared with `tests/crash.rs` so the
//! parent can check every one of them byte for byte.

use bytes::Bytes;
use paxlog_storage::{Accepted, Ballot, Identity, Index, WriteBatch};

/// Accepted entries per batch.
pub const ENTRIES_PER_BATCH: u64 = 8;
/// Batches kept below the newest; older ones are trimmed.
pub const BATCHES_KEPT: u64 = 8;

pub fn identity() -> Identity {
    Identity {
        cluster_id: "crash-test".to_string(),
        node_id: 1,
    }
}

pub fn ballot(n: u64) -> Ballot {
    Ballot::new(n + 1, 1)
}

/// The chosen index written by batch `n`: its own last index.
pub fn chosen_after(n: u64) -> Index {
    (n + 1) * ENTRIES_PER_BATCH
}

pub fn trim_after(n: u64) -> Index {
    n.saturating_sub(BATCHES_KEPT) * ENTRIES_PER_BATCH
}

/// The value at entry `j` of batch `n`: names both, and varies in size.
pub fn value(n: u64, j: u64) -> Bytes {
    Bytes::from(format!("batch {n} entry {j};").repeat(4 * (j as usize + 1)))
}

/// Batch `n`: a promise, its entries, its chosen index, and a trim.
pub fn batch(n: u64) -> WriteBatch {
    let first = n * ENTRIES_PER_BATCH + 1;
    WriteBatch {
        promise: Some(ballot(n)),
        accepts: (0..ENTRIES_PER_BATCH)
            .map(|j| {
                (
                    first + j,
                    Accepted {
                        ballot: ballot(n),
                        value: value(n, j),
                    },
                )
            })
            .collect(),
        chosen_index: Some(chosen_after(n)),
        trim_index: Some(trim_after(n)).filter(|t| *t > 0),
        trim_state: None,
    }
}
