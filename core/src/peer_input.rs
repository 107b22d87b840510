//! Checks on what arrives from a peer, before any handler uses it.
//!
//! Peers are authenticated, so none of this is about strangers: it is about
//! a bug or a version skew on one node, which must not crash, stall or
//! mislead the others. A message that fails a check is dropped whole with a
//! debug log (`ignore_*`), and the node keeps running; an honest peer never
//! sends one, so Paxos loses nothing but a message, which it tolerates.

use bytes::Bytes;
use paxlog_storage::{Accepted, Ballot, Index, NodeId, Store};

use super::candidate::Candidate;
use super::replica::{Replica, RoleState};
use super::{Command, Message};

/// The highest ballot counter a node campaigns with; a peer's counter must
/// be below it. Counters grow by one per election, so an honest cluster
/// never gets near it; refusing everything from there up leaves every node
/// room to pick a higher ballot without overflow, and a ballot no one can
/// exceed is never promised.
pub(crate) const BALLOT_COUNTER_MAX: u64 = u64::MAX >> 1;

/// How far above the highest counter this node has seen a peer's counter
/// may jump. Honest counters rise by one per election, so a node that was
/// away sees a jump of the elections it missed, never this many; without
/// the bound one bad message could use up the ballot space at once and
/// leave no node a ballot to campaign with.
pub(crate) const BALLOT_COUNTER_JUMP_MAX: u64 = 1 << 32;

/// The highest index a peer may name: index arithmetic (`first + offset`,
/// `index + 1`) then never overflows.
pub(crate) const INDEX_MAX: Index = u64::MAX >> 2;

/// How far beyond this node's chosen index a peer may place entries: an
/// Accept's run, a Promise's entries and continuation. A new leader fills
/// every index up to the highest one reported, one no-op per gap, and an
/// acceptor mirrors what it accepted until it is chosen, so this bounds
/// what peer input can make a node hold. A sane peer's accepted but not
/// yet chosen tail is one leader's pipeline (thousands of entries); a node
/// that lags by more than this catches up first (heartbeats and catch-up
/// are not bounded by it), while a peer that is ahead of it can lead.
pub(crate) const PEER_INDEX_AHEAD_MAX: Index = 1 << 16;

impl<S: Store> Replica<S> {
    /// The next ballot this node campaigns with, above everything it has
    /// seen; `None` when that would pass [`BALLOT_COUNTER_MAX`] (only a
    /// promise persisted before this check existed can get there).
    pub(crate) fn next_own_ballot(&self) -> Option<Ballot> {
        let base = self.acceptor.promised.max(self.acceptor.max_seen);
        let counter = base.counter.checked_add(1)?;
        if counter > BALLOT_COUNTER_MAX {
            tracing::error!(
                node = self.config.node_id,
                seen = %base,
                "no ballot left above the highest seen; not campaigning"
            );
            return None;
        }
        Some(Ballot::new(counter, self.config.node_id))
    }

    /// Items held in memory that peer input could grow: mirrored entries,
    /// a candidate's phase-1 reports, the leader's log and progress,
    /// waiting proposals, hidden appends, sessions, pending trims. Tests bound it.
    #[doc(hidden)]
    pub fn held_items(&self) -> usize {
        let role = match &self.role {
            RoleState::Follower => 0,
            RoleState::Candidate(cs) => cs.adopted.len() + cs.chosen.len() + cs.promises.len(),
            RoleState::Leader(ls) => {
                ls.log.len()
                    + ls.inflight_keys.len()
                    + ls.peers.values().map(|p| p.sent.len()).sum::<usize>()
            }
        };
        self.acceptor.entries.len()
            + role
            + self.waiters.values().map(Vec::len).sum::<usize>()
            + self.learner.hidden.len()
            + self.learner.sessions.len()
            + self.learner.pending_trims.len()
            + self.catchup_asked.len()
    }

    /// Why `message` from `from` must be dropped unread, if it must.
    pub(crate) fn ignore_peer_message(&self, from: NodeId, message: &Message) -> Option<String> {
        self.ignore_ballots(from, message)
            .or_else(|| self.ignore_indexes(message))
            .or_else(|| self.ignore_values(message))
            .or_else(|| match message {
                Message::Promise {
                    ballot,
                    entries,
                    next_index,
                    chosen_index,
                    trim_index,
                    ..
                } => self.ignore_promise(*ballot, entries, *next_index, *chosen_index, *trim_index),
                Message::Accept {
                    first_index,
                    values,
                    ..
                } => self.ignore_accept(*first_index, values.len()),
                Message::Accepted {
                    ballot, indexes, ..
                } => self.ignore_accepted(*ballot, indexes),
                Message::Catchup {
                    chosen_index,
                    trim_index,
                    ..
                } => self.ignore_catchup(from, *chosen_index, *trim_index),
                Message::Nack {
                    leader: Some(l), ..
                } if !self.learner.membership.is_member(*l) => {
                    Some(format!("leader {l} not a member"))
                }
                _ => None,
            })
    }

    /// Counters within `BALLOT_COUNTER_JUMP_MAX` of what we saw and below
    /// `BALLOT_COUNTER_MAX`; a proposer's ballot is its
    /// own, and an answer's ballot is ours (it echoes what we sent).
    fn ignore_ballots(&self, from: NodeId, message: &Message) -> Option<String> {
        let me = self.config.node_id;
        let (ballot, owner, other) = match message {
            Message::Prepare { ballot, .. }
            | Message::Accept { ballot, .. }
            | Message::Heartbeat { ballot, .. }
            | Message::PreVote { ballot } => (*ballot, from, None),
            Message::Promise { ballot, .. }
            | Message::Accepted { ballot, .. }
            | Message::HeartbeatAck { ballot, .. } => (*ballot, me, None),
            Message::Nack {
                ballot, promised, ..
            }
            | Message::PreVoteReply {
                ballot, promised, ..
            } => (*ballot, me, Some(*promised)),
            Message::CatchupRequest { .. }
            | Message::Catchup { .. }
            | Message::ReadIndexRequest { .. }
            | Message::ReadIndexReply { .. } => return None,
        };
        if ballot.node != owner {
            return Some(format!("ballot {ballot} is not node {owner}'s"));
        }
        let entry_max = match message {
            Message::Promise { entries, .. } => entries.iter().map(|(_, a)| a.ballot).max(),
            _ => None,
        };
        let highest = [Some(ballot), other, entry_max]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(ballot);
        let ceiling = self
            .acceptor
            .max_seen
            .counter
            .saturating_add(BALLOT_COUNTER_JUMP_MAX)
            .min(BALLOT_COUNTER_MAX - 1);
        if highest.counter > ceiling {
            return Some(format!(
                "ballot {highest} above the counter bound {ceiling}"
            ));
        }
        None
    }

    /// No index (nor the last of a run) above `INDEX_MAX`.
    fn ignore_indexes(&self, message: &Message) -> Option<String> {
        let run_end = |first: Index, len: usize| first.checked_add(len as Index);
        let highest = match message {
            Message::Prepare { from_index, .. } => Some(*from_index),
            Message::Promise {
                from_index,
                entries,
                next_index,
                chosen_index,
                trim_index,
                ..
            } => [*from_index, *chosen_index, *trim_index]
                .into_iter()
                .chain(*next_index)
                .chain(entries.iter().map(|(i, _)| *i))
                .max(),
            Message::Accept {
                first_index,
                values,
                chosen_index,
                ..
            }
            | Message::Catchup {
                first_index,
                values,
                chosen_index,
                ..
            } => run_end(*first_index, values.len()).map(|end| end.max(*chosen_index)),
            Message::Accepted {
                indexes,
                chosen_index,
                ..
            } => indexes.iter().copied().chain([*chosen_index]).max(),
            Message::Heartbeat { chosen_index, .. }
            | Message::HeartbeatAck { chosen_index, .. } => Some(*chosen_index),
            Message::CatchupRequest { from_index } => Some(*from_index),
            Message::ReadIndexReply {
                index: Some(index), ..
            } => Some(*index),
            Message::Nack { .. }
            | Message::PreVote { .. }
            | Message::PreVoteReply { .. }
            | Message::ReadIndexRequest { .. }
            | Message::ReadIndexReply { index: None, .. } => return None,
        };
        match highest {
            Some(i) if i <= INDEX_MAX => None,
            Some(i) => Some(format!("index {i} above the index bound")),
            None => Some("index run overflows".into()),
        }
    }

    /// Every value is a command no larger than `value_bytes_max`, as every
    /// leader proposes: a value that does not decode would stop each node
    /// that learns it chosen.
    fn ignore_values(&self, message: &Message) -> Option<String> {
        let max = self.config.limits.value_bytes_max;
        let mut values: Box<dyn Iterator<Item = &Bytes>> = match message {
            Message::Accept { values, .. } | Message::Catchup { values, .. } => {
                Box::new(values.iter())
            }
            Message::Promise { entries, .. } => Box::new(entries.iter().map(|(_, a)| &a.value)),
            _ => return None,
        };
        values.find_map(|v| {
            if v.len() > max {
                Some(format!("a value of {} bytes, above {max}", v.len()))
            } else {
                Command::decode(v)
                    .err()
                    .map(|e| format!("a value that is no command: {e}"))
            }
        })
    }

    /// A promise to our candidacy must be one an acceptor could give:
    /// entries in order, within reach of what we know, not above the
    /// promise, and not contradicting a value already reported chosen.
    fn ignore_promise(
        &self,
        ballot: Ballot,
        entries: &[(Index, Accepted)],
        next_index: Option<Index>,
        chosen_index: Index,
        trim_index: Index,
    ) -> Option<String> {
        let RoleState::Candidate(cs) = &self.role else {
            return None; // not read
        };
        if cs.ballot != ballot {
            return None; // not read
        }
        if trim_index > chosen_index {
            return Some(format!("trim {trim_index} above chosen {chosen_index}"));
        }
        let reach = self.learner.chosen_index + PEER_INDEX_AHEAD_MAX;
        let last = entries.last().map(|&(i, _)| i);
        if let Some(i) = [last, next_index, Some(trim_index)]
            .into_iter()
            .flatten()
            .find(|&i| i > reach)
        {
            return Some(format!(
                "index {i} beyond {reach}, what a candidate can fill"
            ));
        }
        if !entries.windows(2).all(|w| w[0].0 < w[1].0) {
            return Some("entries out of order".into());
        }
        if let (Some(n), Some(l)) = (next_index, last) {
            if n <= l {
                return Some(format!("next index {n} not after the last entry {l}"));
            }
        }
        if let Some((i, a)) = entries.iter().find(|(_, a)| a.ballot > ballot) {
            return Some(format!(
                "entry {i} accepted at {} above the promise",
                a.ballot
            ));
        }
        let own = |i: Index| {
            let mine = (i > self.learner.chosen_index).then(|| self.entry(i).ok().flatten());
            mine.flatten()
        };
        entries
            .iter()
            .find(|(i, a)| contradicts_chosen(cs, *i, a, *i <= chosen_index, own(*i).as_ref()))
            .map(|(i, _)| format!("entry {i} contradicts a value reported chosen"))
    }

    /// An Accept's run ends within reach of what this node knows chosen.
    fn ignore_accept(&self, first_index: Index, len: usize) -> Option<String> {
        let reach = self.learner.chosen_index + PEER_INDEX_AHEAD_MAX;
        let last = (first_index + len as Index).saturating_sub(1);
        (last > reach).then(|| format!("accept up to {last} beyond {reach}"))
    }

    /// The leader counts acknowledgements only of indexes it proposed.
    fn ignore_accepted(&self, ballot: Ballot, indexes: &[Index]) -> Option<String> {
        let RoleState::Leader(ls) = &self.role else {
            return None;
        };
        if ls.ballot != ballot {
            return None;
        }
        indexes
            .iter()
            .find(|&&i| i == 0 || i >= ls.next_index)
            .map(|i| format!("index {i} was never proposed (next {})", ls.next_index))
    }

    /// Chosen entries are taken only from a peer we asked, or from the
    /// leader we follow: an unsolicited trim point would skip our log.
    fn ignore_catchup(
        &self,
        from: NodeId,
        chosen_index: Index,
        trim_index: Index,
    ) -> Option<String> {
        // A reply slower than an election timeout is dropped; the next
        // request goes out anyway.
        let window = self.config.election_timeout_max_ms;
        let asked = self
            .catchup_asked
            .get(&from)
            .is_some_and(|&t| self.now_ms.saturating_sub(t) <= window);
        let leader = self.leader == Some(from) && from != self.config.node_id;
        if !asked && !leader {
            return Some("catch-up nobody asked for".into());
        }
        if trim_index > chosen_index {
            return Some(format!("trim {trim_index} above chosen {chosen_index}"));
        }
        None
    }
}

/// Whether absorbing `a` at `index` (reported chosen when `chosen`) would
/// leave the candidate adopting a value other than the one reported chosen
/// there — impossible among honest acceptors (a value chosen at ballot b
/// is the value of every accept above b), and what `become_leader`
/// asserts. `own` is what this node accepted there, absorbed sooner or later.
fn contradicts_chosen(
    cs: &Candidate,
    index: Index,
    a: &Accepted,
    chosen: bool,
    own: Option<&Accepted>,
) -> bool {
    let mut reports = cs.adopted.get(&index).into_iter().chain(own);
    if chosen {
        let differs_chosen = cs.chosen.get(&index).is_some_and(|v| *v != a.value);
        return differs_chosen || reports.any(|o| o.ballot >= a.ballot && o.value != a.value);
    }
    let takes_over = reports.all(|o| o.ballot < a.ballot);
    takes_over && cs.chosen.get(&index).is_some_and(|v| *v != a.value)
}
