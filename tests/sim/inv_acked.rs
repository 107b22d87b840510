//! Invariant 3 — an acknowledged append is chosen at the acknowledged index
//! (and, checked at the end of a run, stays readable until trimmed), and
//! exactly once: every acknowledgement of `(client_id, seq)` names the lowest
//! index holding that pair in the raw chosen log — every node's output,
//! duplicates included, and every durably chosen entry — not what reads show.

use std::collections::{BTreeMap, BTreeSet};

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
    /// `(client_id, seq)` → every index of the raw chosen log holding it.
    raw: BTreeMap<(u64, u64), BTreeSet<Index>>,
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
        self.check_lowest(client_id, seq, found);
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

    /// The acknowledgement of `(client_id, seq)` must name its lowest raw index.
    fn check_lowest(&self, client_id: u64, seq: u64, found: &mut Found) {
        let (Some(&acked), Some(lowest)) = (
            self.by_key.get(&(client_id, seq)),
            self.raw
                .get(&(client_id, seq))
                .and_then(|s| s.first().copied()),
        ) else {
            return;
        };
        if lowest < acked {
            found.push(Violation {
                invariant: NAME,
                detail: format!(
                    "({client_id}, {seq}) acknowledged at {acked}, but the raw log holds it first at {lowest}"
                ),
            });
        }
    }

    pub fn on_history(&mut self, index: Index, value: &Bytes, found: &mut Found) {
        if let Ok(Command::Append { client_id, seq, .. }) = Command::decode(value) {
            if self.raw.entry((client_id, seq)).or_default().insert(index) {
                self.check_lowest(client_id, seq, found);
            }
        }
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
