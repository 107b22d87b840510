//! The read path for clients: reads and subscriptions both come here, through
//! the loop, and see only user entries the core reports durable and chosen.

use paxlog_storage::{Index, ReadLimit, Store};

use super::request::ReadResult;
use crate::core::{OpError, Replica};
use crate::proto::Entry;

/// Bytes per read whatever the entry count allows: keeps one answer well
/// under a frame (`Limits::frame_bytes_max`, 4 MiB).
const READ_BYTES_MAX: usize = 1 << 20;

/// Chosen user entries in `from..=to`, at most `entries_max` of them.
pub(super) fn read<S: Store>(
    replica: &Replica<S>,
    from: Index,
    to: Index,
    entries_max: usize,
) -> Result<ReadResult, OpError> {
    let limit = ReadLimit {
        entries_max: entries_max.max(1),
        bytes_max: READ_BYTES_MAX,
    };
    let run = replica.read_user_entries(from, to, limit)?;
    Ok(ReadResult {
        entries: run
            .entries
            .into_iter()
            .map(|(index, payload)| Entry { index, payload })
            .collect(),
        next: run.next,
        chosen_index: run.emitted_index,
    })
}
