//! Invariant 4 — an acceptor's promised ballot never decreases, across
//! crashes: checked on every durable write and on every restart.

use std::collections::BTreeMap;

use paxlog::core::{Ballot, NodeId};
use paxlog_storage::WriteBatch;

use super::invariants::{Found, Violation};

const NAME: &str = "inv_promise";

#[derive(Debug, Default)]
pub struct PromiseMonotonic {
    durable: BTreeMap<NodeId, Ballot>,
}

impl PromiseMonotonic {
    pub fn durable(&self, node: NodeId) -> Ballot {
        self.durable.get(&node).copied().unwrap_or_default()
    }

    pub fn on_write(&mut self, node: NodeId, batch: &WriteBatch, found: &mut Found) {
        let Some(p) = batch.promise else { return };
        let before = self.durable(node);
        if p < before {
            found.push(Violation {
                invariant: NAME,
                detail: format!("node {node} wrote promise {p} after {before}"),
            });
        }
        self.durable.insert(node, p.max(before));
    }

    pub fn on_restart(&mut self, node: NodeId, promised: Ballot, found: &mut Found) {
        let before = self.durable(node);
        if promised < before {
            found.push(Violation {
                invariant: NAME,
                detail: format!(
                    "node {node} restarted with promise {promised}, durable was {before}"
                ),
            });
        }
    }
}
