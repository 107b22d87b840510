//! Invariant 12 — linearizable tails (`Replica::read_index`). Every tail a
//! node answers `Ok(r)` is:
//! - (a) at or above every index acknowledged to any client (an append's or
//!   a registration's `Ok`, whatever the client then made of it) before the
//!   tail was requested;
//! - (b) chosen: at most the highest chosen index any node holds (in memory
//!   or durably) when the answer is delivered, and durably chosen by a
//!   quorum (`inv_chosen`'s ghost), unless 0;
//! - (c) never behind: at or above every tail answered before it was
//!   requested, to any tailer (so to the same tailer too: one tailer's
//!   tails never go back).
//!
//! In the simulation a request reaches its node when it is issued and a
//! reply is delivered when its node emits it, so "before" is the order of
//! steps, and what was known when a tail was requested is recorded then.

use std::collections::BTreeMap;

use bytes::Bytes;
use paxlog::core::{Index, NodeId, RequestId};

use super::invariants::{Found, Violation};

pub const NAME: &str = "inv_tail";

/// What was known when a tail was requested.
#[derive(Clone, Copy, Debug)]
struct Asked {
    tailer: usize,
    node: NodeId,
    at_ms: u64,
    /// The highest index acknowledged to any client, and when.
    acked: (Index, u64),
    /// The highest tail answered `Ok`: (index, tailer, when).
    answered: (Index, usize, u64),
}

#[derive(Debug, Default)]
pub struct Tails {
    acked: (Index, u64),
    answered: (Index, usize, u64),
    asked: BTreeMap<RequestId, Asked>,
}

impl Tails {
    /// An `Ok(index)` for a proposal was delivered to its client at `now_ms`.
    pub fn on_acknowledged(&mut self, index: Index, now_ms: u64) {
        if index > self.acked.0 {
            self.acked = (index, now_ms);
        }
    }

    /// The highest index acknowledged to any client so far.
    pub fn acked_max(&self) -> Index {
        self.acked.0
    }

    /// `tailer` asked `node` for a tail under request `id` at `now_ms`.
    pub fn on_asked(&mut self, id: RequestId, tailer: usize, node: NodeId, now_ms: u64) {
        let asked = Asked {
            tailer,
            node,
            at_ms: now_ms,
            acked: self.acked,
            answered: self.answered,
        };
        self.asked.insert(id, asked);
    }

    /// The answer to `id` was delivered at `now_ms`: `Ok(index)` if
    /// `result` is; `chosen_max` is the highest chosen index any node holds
    /// now, `durably_chosen` the ghost of `inv_chosen`.
    pub fn on_answer(
        &mut self,
        id: RequestId,
        index: Option<Index>,
        chosen_max: Index,
        durably_chosen: &BTreeMap<Index, Bytes>,
        now_ms: u64,
        found: &mut Found,
    ) {
        let Some(a) = self.asked.remove(&id) else {
            return;
        };
        let Some(r) = index else {
            return;
        };
        let what = format!(
            "tail {id} of tailer {} asked of node {} at {} ms, answered {r} at {now_ms} ms",
            a.tailer, a.node, a.at_ms
        );
        let mut broken = Vec::new();
        let (acked, acked_ms) = a.acked;
        if r < acked {
            broken.push(format!(
                "(a) index {acked} was acknowledged to a client at {acked_ms} ms, before it was asked"
            ));
        }
        if r > chosen_max {
            broken.push(format!(
                "(b) no node holds it chosen: the highest chosen index is {chosen_max}"
            ));
        } else if r > 0 && !durably_chosen.contains_key(&r) {
            broken.push("(b) no quorum durably accepted a value there".to_string());
        }
        let (earlier, by, earlier_ms) = a.answered;
        if r < earlier {
            broken.push(format!(
                "(c) tailer {by} was answered {earlier} at {earlier_ms} ms, before it was asked"
            ));
        }
        for b in broken {
            found.push(Violation {
                invariant: NAME,
                detail: format!("{what}: {b}"),
            });
        }
        if r > self.answered.0 {
            self.answered = (r, a.tailer, now_ms);
        }
    }
}
