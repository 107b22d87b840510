//! Invariant 5 — an acceptor never accepts at a ballot below its promise:
//! every accepted entry in a durable write is at or above the promise that
//! was durable before that write.

use paxlog::core::{Ballot, NodeId};
use paxlog_storage::WriteBatch;

use super::invariants::{Found, Violation};

const NAME: &str = "inv_accept";

#[derive(Debug, Default)]
pub struct AcceptAbovePromise;

impl AcceptAbovePromise {
    pub fn on_write(
        &mut self,
        node: NodeId,
        batch: &WriteBatch,
        promised: Ballot,
        found: &mut Found,
    ) {
        for (index, a) in &batch.accepts {
            if a.ballot < promised {
                found.push(Violation {
                    invariant: NAME,
                    detail: format!(
                        "node {node} accepted index {index} at {} below its promise {promised}",
                        a.ballot
                    ),
                });
            }
        }
    }
}
