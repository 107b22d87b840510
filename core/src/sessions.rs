//! The session table: exactly-once and one writer's order, as a pure
//! function of the chosen log, so every node computes the same answers from
//! the same prefix.
//!
//! A client first registers: the `Register` command chosen at index `r`
//! opens session `r` (its `client_id`). Its appends carry contiguous seqs
//! from 1 and the client's *floor*, its lowest seq not yet acknowledged.
//! Folding the log in index order, an append `(c, s)` at index `i` is
//! **effective** (a write of the application's) exactly when `s` is the next
//! seq of an open session `c`; every other append is **hidden** from readers
//! and answered as [`Hidden`] says:
//! - `s` already effective at `first`: a retry, answered with `first`;
//! - `s` below the floor: the client said it was acknowledged, its index is
//!   forgotten: [`Refusal::BelowFloor`];
//! - `c` unknown (never registered, or evicted) or closed (superseded by a
//!   newer registration of the same client): [`Refusal::SessionExpired`];
//! - `s` beyond the next seq: [`Refusal::OutOfOrder`];
//! - more than `window` seqs above the floor: [`Refusal::WindowFull`].
//!
//! So the effective seqs of a session are 1, 2, 3, … in increasing index
//! order (one writer's order, whatever the leader changes did to the raw
//! log), each at most once (exactly-once), and the answer to any copy is the
//! same on every node. The leader refuses what would be hidden before
//! proposing it (`try_propose`); the fold is what makes it a guarantee,
//! since Phase 1 may recover one copy of a client's pipeline and not the
//! one before it.
//!
//! Bounded: at most `sessions_max` sessions and `seqs_max` remembered seqs
//! in all; beyond, the least recently used session is evicted, on every
//! node at the same index.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use paxlog_storage::Index;

use super::holds::{Holds, HOLDS_MAX, HOLD_NAME_BYTES_MAX};
use super::membership::{Membership, ADDR_BYTES_MAX, MEMBERSHIP_STATE_BYTES};
use serde::{Deserialize, Serialize};

/// Why a chosen append is not effective.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    SessionExpired,
    BelowFloor { floor: u64 },
    OutOfOrder { expected: u64 },
    WindowFull,
}

/// A chosen index readers never see, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Hidden {
    /// A retry of the append effective at this index.
    DuplicateOf(Index),
    Refused(Refusal),
}

/// What folding one command did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fold {
    Effective,
    Hidden(Hidden),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Session {
    /// Invariant: `floor <= last + 1`; seqs `[floor, last]` are remembered.
    floor: u64,
    /// Highest effective seq (0: none yet).
    last: u64,
    /// Invariant: `firsts.len() == last + 1 - floor`; `firsts[k]` is where
    /// seq `floor + k` is effective, increasing.
    firsts: VecDeque<Index>,
    closed: bool,
    /// Index of the last registration or effective append (eviction order).
    recent: Index,
}

impl Session {
    fn new(at: Index) -> Session {
        Session {
            floor: 1,
            last: 0,
            firsts: VecDeque::new(),
            closed: false,
            recent: at,
        }
    }
}

/// What the table says of `(client_id, seq)` before it is proposed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Already effective at this index.
    Effective(Index),
    Refused(Refusal),
    /// Not effective yet; `last` is the session's highest effective seq.
    Open {
        last: u64,
        floor: u64,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionTable {
    sessions: BTreeMap<u64, Session>,
    /// `(recent, client_id)` of every session.
    recency: BTreeSet<(Index, u64)>,
    /// Invariant: the sum of every session's `firsts.len()`.
    seqs: usize,
    sessions_max: usize,
    seqs_max: usize,
    window: u64,
}

/// Bytes one session costs in a trim state, at most (postcard varints).
pub const SESSION_STATE_BYTES: usize = 40;
/// Bytes every hold together costs in a trim state, at most (a name, an
/// index, a lease and an index per hold, postcard varints).
pub const HOLDS_STATE_BYTES: usize = 8 + HOLDS_MAX * (1 + HOLD_NAME_BYTES_MAX + 30);
/// Bytes one remembered seq costs in a trim state, at most.
pub const SEQ_STATE_BYTES: usize = 10;

impl SessionTable {
    pub fn new(sessions_max: usize, seqs_max: usize, window: u64) -> Self {
        SessionTable {
            sessions: BTreeMap::new(),
            recency: BTreeSet::new(),
            seqs: 0,
            sessions_max: sessions_max.max(1),
            seqs_max: seqs_max.max(1),
            window: window.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    pub fn window(&self) -> u64 {
        self.window
    }

    pub fn lookup(&self, client_id: u64, seq: u64) -> Lookup {
        let Some(s) = self.sessions.get(&client_id) else {
            return Lookup::Refused(Refusal::SessionExpired);
        };
        if seq <= s.last {
            return match seq.checked_sub(s.floor) {
                Some(k) => Lookup::Effective(s.firsts[k as usize]),
                None => Lookup::Refused(Refusal::BelowFloor { floor: s.floor }),
            };
        }
        if s.closed {
            return Lookup::Refused(Refusal::SessionExpired);
        }
        Lookup::Open {
            last: s.last,
            floor: s.floor,
        }
    }

    /// Folds `Register` chosen at `index`: opens session `index`, closes
    /// `supersedes`.
    pub fn register(&mut self, index: Index, supersedes: Option<u64>) {
        if let Some(old) = supersedes.and_then(|id| self.sessions.get_mut(&id)) {
            old.closed = true;
        }
        assert!(
            !self.sessions.contains_key(&index),
            "Invariant: a session id is the index of its registration"
        );
        self.sessions.insert(index, Session::new(index));
        self.recency.insert((index, index));
        self.evict(index);
    }

    /// Folds the append `(client_id, seq)` with `floor`, chosen at `index`.
    pub fn append(&mut self, client_id: u64, seq: u64, floor: u64, index: Index) -> Fold {
        let (last, old_floor) = match self.lookup(client_id, seq) {
            Lookup::Effective(first) => return Fold::Hidden(Hidden::DuplicateOf(first)),
            Lookup::Refused(r) => return Fold::Hidden(Hidden::Refused(r)),
            Lookup::Open { last, floor } => (last, floor),
        };
        if seq != last + 1 {
            return Fold::Hidden(Hidden::Refused(Refusal::OutOfOrder { expected: last + 1 }));
        }
        let new_floor = old_floor.max(floor.min(seq));
        if seq + 1 - new_floor > self.window {
            return Fold::Hidden(Hidden::Refused(Refusal::WindowFull));
        }
        let Some(s) = self.sessions.get_mut(&client_id) else {
            return Fold::Hidden(Hidden::Refused(Refusal::SessionExpired));
        };
        while s.floor < new_floor {
            s.firsts.pop_front();
            s.floor += 1;
            self.seqs -= 1;
        }
        s.firsts.push_back(index);
        s.last = seq;
        self.seqs += 1;
        self.recency.remove(&(s.recent, client_id));
        s.recent = index;
        self.recency.insert((index, client_id));
        self.evict(client_id);
        Fold::Effective
    }

    /// Evicts the least recently used sessions until both bounds hold;
    /// `keep` (just used, hence the most recent) goes last.
    fn evict(&mut self, keep: u64) {
        while self.sessions.len() > self.sessions_max || self.seqs > self.seqs_max {
            let Some(&(recent, id)) = self.recency.first() else {
                break;
            };
            if id == keep {
                break;
            }
            self.recency.remove(&(recent, id));
            if let Some(s) = self.sessions.remove(&id) {
                self.seqs -= s.firsts.len();
            }
        }
        assert!(self.sessions.len() <= self.sessions_max || self.sessions.len() == 1);
    }

    /// The checks cheap enough for every step.
    pub(crate) fn assert_bounds(&self) {
        assert!(
            self.sessions.len() <= self.sessions_max.max(1)
                && self.seqs <= self.seqs_max.max(self.window as usize),
            "Invariant: the session table is bounded ({} sessions, {} seqs)",
            self.sessions.len(),
            self.seqs
        );
        assert_eq!(self.recency.len(), self.sessions.len());
    }

    /// Every invariant, walking the whole table.
    pub(crate) fn assert_invariants(&self) {
        self.assert_bounds();
        let mut seqs = 0;
        for (&id, s) in &self.sessions {
            assert!(
                s.floor <= s.last + 1 && s.firsts.len() as u64 == s.last + 1 - s.floor,
                "Invariant: session {id} remembers exactly [floor, last] \
                 (floor {}, last {}, {} remembered)",
                s.floor,
                s.last,
                s.firsts.len()
            );
            assert!(
                s.firsts
                    .iter()
                    .zip(s.firsts.iter().skip(1))
                    .all(|(a, b)| a < b),
                "Invariant: session {id}'s seqs are effective in increasing index order"
            );
            assert!(self.recency.contains(&(s.recent, id)));
            seqs += s.firsts.len();
        }
        assert_eq!(self.recency.len(), self.sessions.len());
        assert_eq!(
            seqs, self.seqs,
            "Invariant: seqs counts every remembered seq"
        );
    }
}

/// paxlog's own state at the trim point, written with the trim (and sent to
/// a node that must skip to it): the session table and the configuration
/// with every chosen index `<= at` folded in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrimState {
    pub at: Index,
    sessions: Vec<(u64, Session)>,
    pub membership: Membership,
    /// The retention holds (absent from states written before holds).
    pub holds: Holds,
}

/// A trim state as written before retention holds existed.
#[derive(Deserialize)]
struct TrimStateBeforeHolds {
    at: Index,
    sessions: Vec<(u64, Session)>,
    membership: Membership,
}

impl TrimState {
    pub fn new(
        at: Index,
        table: &SessionTable,
        membership: &Membership,
        holds: &Holds,
    ) -> TrimState {
        TrimState {
            at,
            sessions: table
                .sessions
                .iter()
                .map(|(&id, s)| (id, s.clone()))
                .collect(),
            membership: membership.clone(),
            holds: holds.clone(),
        }
    }

    /// The largest encoding a table within these bounds can have.
    pub fn bytes_max(sessions_max: usize, seqs_max: usize) -> usize {
        (16 + MEMBERSHIP_STATE_BYTES + HOLDS_STATE_BYTES)
            .saturating_add(sessions_max.saturating_mul(SESSION_STATE_BYTES))
            .saturating_add(seqs_max.saturating_mul(SEQ_STATE_BYTES))
    }

    pub fn encode(&self) -> bytes::Bytes {
        bytes::Bytes::from(postcard::to_allocvec(self).unwrap_or_default())
    }

    /// Decodes and checks a state read from disk or sent by a peer.
    pub fn decode(bytes: &[u8]) -> Result<TrimState, String> {
        let state: TrimState = match postcard::from_bytes(bytes) {
            Ok(state) => state,
            Err(e) => match postcard::from_bytes::<TrimStateBeforeHolds>(bytes) {
                Ok(old) => TrimState {
                    at: old.at,
                    sessions: old.sessions,
                    membership: old.membership,
                    holds: Holds::new(),
                },
                Err(_) => return Err(e.to_string()),
            },
        };
        if state.holds.len() > HOLDS_MAX
            || state.holds.keys().any(|n| n.len() > HOLD_NAME_BYTES_MAX)
        {
            return Err("too many holds, or a hold's name too long".into());
        }
        for (id, s) in &state.sessions {
            let consistent = s.floor <= s.last.saturating_add(1)
                && s.firsts.len() as u64 == s.last + 1 - s.floor
                && s.recent <= state.at
                && *id <= state.at
                && s.firsts.iter().all(|&i| i <= state.at)
                && s.firsts
                    .iter()
                    .zip(s.firsts.iter().skip(1))
                    .all(|(a, b)| a < b);
            if !consistent {
                return Err(format!("session {id} is inconsistent"));
            }
        }
        state.membership.check()?;
        if state
            .membership
            .members
            .iter()
            .any(|m| m.addr.len() > ADDR_BYTES_MAX)
        {
            return Err("a member address is too long".into());
        }
        Ok(state)
    }

    /// The table this state holds, under this node's bounds.
    pub fn table(&self, sessions_max: usize, seqs_max: usize, window: u64) -> SessionTable {
        let mut table = SessionTable::new(sessions_max, seqs_max, window);
        for (id, s) in &self.sessions {
            table.recency.insert((s.recent, *id));
            table.seqs += s.firsts.len();
            table.sessions.insert(*id, s.clone());
        }
        if let Some(&(_, newest)) = table.recency.last() {
            table.evict(newest);
        }
        table
    }
}
