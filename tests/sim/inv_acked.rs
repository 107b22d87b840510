//! Invariant 3 — an acknowledged append is chosen at the acknowledged index
//! (and, checked at the end of a run, stays readable until trimmed).

use std::collections::BTreeMap;

use bytes::Bytes;
use paxlog::core::{Command, Index};

use super::inv_prefix::Prefix;
use super::invariants::{Found, Violation};

const NAME: &str = "inv_acked";

#[derive(Debug, Default)]
pub struct Acked {
    /// index → the encoded append acknowledged there.
    pub acks: BTreeMap<Index, Bytes>,
    /// `(client_id, seq)` → index.
    by_key: BTreeMap<(u64, u64), Index>,
}

impl Acked {
    pub fn on_ack(
        &mut self,
        client_id: u64,
        seq: u64,
        payload: &Bytes,
        index: Index,
        prefix: &Prefix,
        found: &mut Found,
    ) {
        let value = Command::Append {
            client_id,
            seq,
            payload: payload.clone(),
        }
        .encode();
        if let Some(&other) = self.by_key.get(&(client_id, seq)) {
            if other != index {
                found.push(Violation {
                    invariant: NAME,
                    detail: format!("({client_id}, {seq}) acknowledged at {other} and at {index}"),
                });
            }
        }
        self.by_key.insert((client_id, seq), index);
        if let Some(v) = self.acks.get(&index) {
            if *v != value {
                found.push(Violation {
                    invariant: NAME,
                    detail: format!("index {index} acknowledged for two different appends"),
                });
            }
        }
        self.acks.insert(index, value.clone());
        if let Some(h) = prefix.history.get(&index) {
            if *h != value {
                found.push(Violation {
                    invariant: NAME,
                    detail: format!(
                        "({client_id}, {seq}) acknowledged at {index}, but {h:?} is chosen there"
                    ),
                });
            }
        }
    }

    pub fn on_history(&mut self, index: Index, value: &Bytes, found: &mut Found) {
        if let Some(a) = self.acks.get(&index) {
            if a != value {
                found.push(Violation {
                    invariant: NAME,
                    detail: format!("acknowledged {a:?} at {index}, but {value:?} is chosen there"),
                });
            }
        }
    }
}
