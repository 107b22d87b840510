//! Invariant 9 — a node's durable chosen prefix is a prefix of the one
//! history: on every restart, each index its store holds as chosen (above
//! the trim point) is present and holds the value chosen there. What a
//! crash takes from a node's chosen prefix must never be a chosen value.

use std::collections::BTreeMap;

use bytes::Bytes;
use paxlog::core::{Index, NodeId};
use paxlog_storage::{MemStore, ReadLimit, Store};

use super::invariants::{Found, Violation};

const NAME: &str = "inv_recovery";

/// Checks `store` (already crashed to its durable image) against `chosen`.
pub fn on_restart(
    node: NodeId,
    store: &MemStore,
    chosen: &BTreeMap<Index, Bytes>,
    found: &mut Found,
) {
    let meta = store.metadata();
    if meta.chosen_index <= meta.trim_index {
        return;
    }
    let limit = ReadLimit {
        entries_max: usize::MAX,
        bytes_max: usize::MAX,
    };
    let held: BTreeMap<Index, Bytes> =
        match store.range(meta.trim_index + 1, meta.chosen_index, limit) {
            Ok(entries) => entries.into_iter().map(|(i, a)| (i, a.value)).collect(),
            Err(e) => {
                found.push(Violation {
                    invariant: NAME,
                    detail: format!("node {node}: durable chosen prefix unreadable: {e}"),
                });
                return;
            }
        };
    for index in meta.trim_index + 1..=meta.chosen_index {
        let (got, want) = (held.get(&index), chosen.get(&index));
        if got.is_none() || got != want {
            found.push(Violation {
                invariant: NAME,
                detail: format!(
                    "node {node} restarted with chosen index {}: index {index} holds {got:?}, chosen is {want:?}",
                    meta.chosen_index
                ),
            });
            return;
        }
    }
}
