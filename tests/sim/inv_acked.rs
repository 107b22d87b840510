//! Invariant 3 — an acknowledged append is chosen at the acknowledged index
//! (and, checked at the end of a run, stays readable until trimmed), exactly
//! once and in its writer's order. Checked against a model of sessions
//! folded over the raw chosen log (every node's output, hidden appends
//! included, and every durably chosen entry — not what reads show):
//! - every acknowledgement of `(client_id, seq)` names the one index where
//!   the model finds that pair effective (its session's next seq there);
//! - so a session's acknowledged seqs are at increasing indexes (FIFO);
//! - every node flags as hidden exactly the indexes the model hides.
//!
//! The model evicts as the spec says (least recently used first, once more
//! than `SESSIONS_MAX` sessions or `SESSION_SEQS_MAX` remembered seqs): the
//! sim's bounds are small enough that runs which open many sessions evict,
//! and the core must hide an evicted session's appends at the same index.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use paxlog::core::{Command, Index, NodeId};

use super::invariants::{Found, Violation};

pub const NAME: &str = "inv_acked";

/// The simulation's `session_window`; the model hides what passes it too.
/// At least the deep client's pipeline (`client::DEEP_WINDOW`).
pub const WINDOW: u64 = 256;
/// The simulation's `sessions_max`: room for the live sessions of the
/// largest workload (six clients), so eviction takes the sessions of
/// clients that restarted without theirs (`world/clients.rs`), and runs
/// with several such restarts evict.
pub const SESSIONS_MAX: usize = 8;
/// The simulation's `session_seqs_max`: room for a full window (the core
/// requires `session_window <= session_seqs_max`) and every other session.
pub const SESSION_SEQS_MAX: usize = 1024;

// The deep client never has more in flight than a session may (or it would
// see `Busy` forever), and the core requires the window within the seqs.
const _: () = assert!(
    super::client::DEEP_WINDOW <= WINDOW && WINDOW as usize <= SESSION_SEQS_MAX,
    "DEEP_WINDOW <= WINDOW <= SESSION_SEQS_MAX"
);

#[derive(Debug, Default)]
struct ModelSession {
    last: u64,
    /// seq → where it became effective; kept after an eviction, so a late
    /// acknowledgement is still checked.
    effective: BTreeMap<u64, Index>,
    floor: u64,
    closed: bool,
    evicted: bool,
    /// Index of the registration or the last effective append.
    recent: Index,
}

impl ModelSession {
    /// Seqs the core remembers for it: `[floor, last]`.
    fn remembered(&self) -> usize {
        (self.last + 1 - self.floor) as usize
    }
}

#[derive(Debug, Default)]
pub struct Acked {
    /// index → the append acknowledged there.
    acks: BTreeMap<Index, (u64, u64, Bytes)>,
    /// `(client_id, seq)` → the index acknowledged.
    by_key: BTreeMap<(u64, u64), Index>,
    /// The raw chosen log, as far as any source showed it.
    raw: BTreeMap<Index, Bytes>,
    /// Every index `<=` it is folded into the model.
    folded: Index,
    sessions: BTreeMap<u64, ModelSession>,
    /// Indexes the model hides (folded ones only).
    hidden: BTreeMap<Index, bool>,
    /// What the first node to emit an index said of it: hidden or not.
    emitted: BTreeMap<Index, (NodeId, bool)>,
    /// `(recent, client_id)` of every session not evicted.
    recency: BTreeSet<(Index, u64)>,
    /// Seqs remembered in every session not evicted.
    seqs: usize,
    /// Appends the model made effective.
    pub effective: u64,
    /// Sessions the model evicted.
    pub evicted: u64,
}

impl Acked {
    pub fn on_ack(
        &mut self,
        client_id: u64,
        seq: u64,
        payload: &Bytes,
        index: Index,
        found: &mut Found,
    ) {
        if let Some(&other) = self.by_key.get(&(client_id, seq)) {
            if other != index {
                found.push(Violation {
                    invariant: NAME,
                    detail: format!("({client_id}, {seq}) acknowledged at {other} and at {index}"),
                });
            }
        }
        self.by_key.insert((client_id, seq), index);
        let ack = (client_id, seq, payload.clone());
        if let Some(a) = self.acks.get(&index) {
            if *a != ack {
                found.push(Violation {
                    invariant: NAME,
                    detail: format!("index {index} acknowledged for two different appends"),
                });
            }
        }
        self.acks.insert(index, ack);
        if let Some(value) = self.raw.get(&index) {
            self.check_value(index, value, found);
        }
        self.check_ack(client_id, seq, found);
    }

    /// The acknowledged append is what the raw log holds at its index.
    fn check_value(&self, index: Index, value: &Bytes, found: &mut Found) {
        let Some((c, s, payload)) = self.acks.get(&index) else {
            return;
        };
        let holds = matches!(Command::decode(value),
            Ok(Command::Append { client_id, seq, payload: p, .. })
                if client_id == *c && seq == *s && p == *payload);
        if !holds {
            found.push(Violation {
                invariant: NAME,
                detail: format!(
                    "({c}, {s}) acknowledged at {index}, but {value:?} is chosen there"
                ),
            });
        }
    }

    /// Every acknowledged index with its payload.
    pub fn acked_payloads(&self) -> Vec<(Index, Bytes)> {
        self.acks
            .iter()
            .map(|(&i, (_, _, p))| (i, p.clone()))
            .collect()
    }

    /// Once the model folded past the acknowledged index, the pair must be
    /// effective exactly there.
    fn check_ack(&self, client_id: u64, seq: u64, found: &mut Found) {
        let Some(&acked) = self.by_key.get(&(client_id, seq)) else {
            return;
        };
        let effective = self
            .sessions
            .get(&client_id)
            .and_then(|s| s.effective.get(&seq).copied());
        if effective.is_none() && acked > self.folded {
            return;
        }
        if effective != Some(acked) {
            found.push(Violation {
                invariant: NAME,
                detail: format!(
                    "({client_id}, {seq}) acknowledged at {acked}, but the raw log makes it effective at {effective:?}"
                ),
            });
        }
    }

    pub fn on_history(&mut self, index: Index, value: &Bytes, found: &mut Found) {
        self.check_value(index, value, found);
        self.raw.entry(index).or_insert_with(|| value.clone());
        while let Some(value) = self.raw.get(&(self.folded + 1)).cloned() {
            self.folded += 1;
            self.fold(self.folded, &value, found);
        }
    }

    fn fold(&mut self, index: Index, value: &Bytes, found: &mut Found) {
        let mut hidden = false;
        match Command::decode(value) {
            Ok(Command::Register { supersedes }) => {
                if let Some(old) = supersedes.and_then(|id| self.sessions.get_mut(&id)) {
                    old.closed = true;
                }
                self.sessions.insert(
                    index,
                    ModelSession {
                        floor: 1,
                        recent: index,
                        ..ModelSession::default()
                    },
                );
                self.recency.insert((index, index));
                self.evict(index);
            }
            Ok(Command::Append {
                client_id,
                seq,
                floor,
                ..
            }) => {
                hidden = true;
                let live = self.sessions.get_mut(&client_id).filter(|s| !s.evicted);
                if let Some(s) = live {
                    let new_floor = s.floor.max(floor.min(seq));
                    if seq > s.last
                        && !s.closed
                        && seq == s.last + 1
                        && seq + 1 - new_floor <= WINDOW
                    {
                        self.seqs -= s.remembered();
                        s.last = seq;
                        s.floor = new_floor;
                        self.seqs += s.remembered();
                        s.effective.insert(seq, index);
                        self.recency.remove(&(s.recent, client_id));
                        s.recent = index;
                        self.recency.insert((index, client_id));
                        self.effective += 1;
                        hidden = false;
                        self.evict(client_id);
                    }
                }
                self.check_ack(client_id, seq, found);
            }
            _ => {}
        }
        self.hidden.insert(index, hidden);
        if let Some(&(node, said)) = self.emitted.get(&index) {
            self.check_emitted(node, index, said, found);
        }
    }

    /// Evicts the least recently used sessions until both bounds hold,
    /// `keep` (the one just used) last, as `SessionTable` must.
    fn evict(&mut self, keep: u64) {
        while self.recency.len() > SESSIONS_MAX || self.seqs > SESSION_SEQS_MAX {
            let Some(&(recent, id)) = self.recency.first() else {
                break;
            };
            if id == keep {
                break;
            }
            self.recency.remove(&(recent, id));
            if let Some(s) = self.sessions.get_mut(&id) {
                s.evicted = true;
                self.seqs -= s.remembered();
            }
            self.evicted += 1;
        }
    }

    /// `node` emitted `index` flagged `hidden` (or not).
    pub fn on_emitted(&mut self, node: NodeId, index: Index, hidden: bool, found: &mut Found) {
        match self.emitted.get(&index) {
            Some(&(first, said)) if said != hidden => found.push(Violation {
                invariant: NAME,
                detail: format!(
                    "index {index} emitted hidden={said} by node {first} and hidden={hidden} by node {node}"
                ),
            }),
            Some(_) => {}
            None => {
                self.emitted.insert(index, (node, hidden));
            }
        }
        self.check_emitted(node, index, hidden, found);
    }

    fn check_emitted(&self, node: NodeId, index: Index, hidden: bool, found: &mut Found) {
        if let Some(&model) = self.hidden.get(&index) {
            if model != hidden {
                found.push(Violation {
                    invariant: NAME,
                    detail: format!(
                        "node {node} emitted index {index} with hidden={hidden}; the session model says {model}"
                    ),
                });
            }
        }
    }
}
