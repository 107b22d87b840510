//! What the log knows of a published snapshot, and how a chosen
//! `Command::Snapshot` changes it (see `snapshot` for the contract).

use std::collections::BTreeSet;

use paxlog_storage::{Index, NodeId};
use serde::{Deserialize, Serialize};

use super::Command;

/// Nodes named as holders of one snapshot, at most; a faulty client cannot
/// grow the replicated state without bound.
pub const SNAPSHOT_HOLDERS_MAX: usize = 16;

/// A published snapshot, as the log knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// The application's state after applying every index `<= index`.
    pub index: Index,
    pub size_bytes: u64,
    /// CRC-32C of the whole snapshot.
    pub crc32c: u32,
    /// Nodes that published it (where a fetch starts).
    /// Invariant: not empty, at most `SNAPSHOT_HOLDERS_MAX`.
    pub holders: BTreeSet<NodeId>,
    /// Index of the command that published it first.
    pub chosen_at: Index,
}

/// Folds one chosen command into the newest snapshot; `None` for commands
/// that are not snapshots, else whether it took effect.
pub(crate) fn fold_snapshot(
    newest: &mut Option<SnapshotMeta>,
    at: Index,
    command: &Command,
) -> Option<bool> {
    let Command::Snapshot {
        index,
        size_bytes,
        crc32c,
        holder,
    } = *command
    else {
        return None;
    };
    if index >= at || index == 0 {
        return Some(false);
    }
    match newest {
        Some(n) if n.index == index && n.crc32c == crc32c && n.size_bytes == size_bytes => {
            if n.holders.len() < SNAPSHOT_HOLDERS_MAX {
                n.holders.insert(holder);
            }
            Some(true)
        }
        Some(n) if n.index >= index => Some(false),
        _ => {
            *newest = Some(SnapshotMeta {
                index,
                size_bytes,
                crc32c,
                holders: BTreeSet::from([holder]),
                chosen_at: at,
            });
            Some(true)
        }
    }
}

/// The index the newest snapshot allows trimming to (0: none published).
pub(crate) fn trim_bound(newest: &Option<SnapshotMeta>) -> Index {
    newest.as_ref().map_or(0, |s| s.index)
}
