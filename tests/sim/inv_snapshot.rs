//! Invariant 13 — the application's state survives trims: every node's
//! application state (a digest of the effective appends it applied) equals
//! the history's at every index it applies; a node behind the trim point
//! installs the newest published snapshot, whose content is the history's
//! state at its index, and emits nothing in between; no trim point passes
//! the newest snapshot.

use std::collections::BTreeMap;

use paxlog::core::{Chosen, Command, Index, NodeId, SnapshotMeta};

use super::invariants::{Found, Violation};

const NAME: &str = "inv_snapshot";

#[derive(Debug, Default)]
pub struct Snapshots {
    /// The application state after every index, as first computed.
    history: BTreeMap<Index, u64>,
    /// Per node: its application's state (survives restarts, like a
    /// durable application; a wiped node starts again from 0).
    state: BTreeMap<NodeId, u64>,
    /// Published snapshot contents, by (index, crc32c).
    files: BTreeMap<(Index, u32), u64>,
    /// Snapshot commands that took effect: chosen-at index → snapshot index.
    chosen: BTreeMap<Index, Index>,
    /// The retention holds, folded over the history in index order:
    /// name → (index, renewed at).
    holds: BTreeMap<String, (Index, Index)>,
    pub installs: u64,
    /// Holds the leader released because their lease ran out.
    pub expiries: u64,
}

fn mix(state: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(state ^ 0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn crc_of(state: u64) -> u32 {
    (state as u32) ^ ((state >> 32) as u32)
}

impl Snapshots {
    /// `node` emitted `chosen` right after `applied`.
    pub fn on_output(&mut self, node: NodeId, applied: Index, chosen: &Chosen, found: &mut Found) {
        let state = self.state.entry(node).or_insert(0);
        if applied == 0 {
            *state = 0;
        }
        match &chosen.command {
            Command::Append { payload, .. } if chosen.hidden.is_none() => {
                *state = mix(*state, payload);
            }
            Command::Snapshot { index, .. } if *index < chosen.index && *index > 0 => {
                let newest = self.chosen.values().max().copied().unwrap_or(0);
                if *index > newest {
                    self.chosen.insert(chosen.index, *index);
                }
            }
            _ => {}
        }
        let state = *state;
        if !self.history.contains_key(&chosen.index) {
            self.fold_hold(chosen);
        }
        self.check(node, chosen.index, state, "applied", found);
    }

    /// The first emission of each index comes in index order (a node emits
    /// contiguously, and only what the one history holds).
    fn fold_hold(&mut self, chosen: &Chosen) {
        match &chosen.command {
            Command::Hold { name, index, .. } => {
                self.holds.insert(name.clone(), (*index, chosen.index));
            }
            Command::Release { name, renewed_at } => {
                let current = self.holds.get(name).map(|h| h.1);
                if current.is_some() && renewed_at.is_none_or(|r| Some(r) == current) {
                    self.holds.remove(name);
                    self.expiries += u64::from(renewed_at.is_some());
                }
            }
            _ => {}
        }
    }

    /// The lowest live hold now: what bounds a Trim about to be emitted
    /// first.
    pub fn hold_bound(&self) -> Option<Index> {
        self.holds.values().map(|h| h.0).min()
    }

    fn check(&mut self, node: NodeId, index: Index, state: u64, how: &str, found: &mut Found) {
        match self.history.get(&index) {
            Some(&h) if h != state => found.push(Violation {
                invariant: NAME,
                detail: format!(
                    "node {node} {how} index {index}: its application state {state:#x} is \
                     not the history's {h:#x}"
                ),
            }),
            Some(_) => {}
            None => {
                self.history.insert(index, state);
            }
        }
    }

    /// `node`'s application writes a snapshot of its state at `applied`:
    /// the crc32c it publishes.
    pub fn publish(&mut self, node: NodeId, applied: Index) -> u32 {
        let state = self.state.get(&node).copied().unwrap_or(0);
        let crc = crc_of(state);
        self.files.insert((applied, crc), state);
        crc
    }

    /// `node`'s application installs the snapshot its replica offered.
    pub fn on_install(&mut self, node: NodeId, meta: &SnapshotMeta, found: &mut Found) {
        self.installs += 1;
        let Some(&state) = self.files.get(&(meta.index, meta.crc32c)) else {
            found.push(Violation {
                invariant: NAME,
                detail: format!("node {node} was offered a snapshot nobody published: {meta:?}"),
            });
            return;
        };
        self.state.insert(node, state);
        self.check(node, meta.index, state, "installed a snapshot at", found);
    }

    /// Where a Trim chosen at `at` may trim to: the newest snapshot before it.
    pub fn trim_bound(&self, at: Index) -> Index {
        self.chosen.range(..at).map(|(_, &s)| s).max().unwrap_or(0)
    }

    pub fn on_trim_point(&self, node: NodeId, trim_index: Index, found: &mut Found) {
        let newest = self.chosen.values().max().copied().unwrap_or(0);
        if trim_index > newest {
            found.push(Violation {
                invariant: NAME,
                detail: format!(
                    "node {node} trimmed to {trim_index}, past the newest snapshot {newest}"
                ),
            });
        }
    }
}
