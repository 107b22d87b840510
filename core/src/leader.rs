//! The leader role (Phase 2): proposals, pipelined and batched Accepts with
//! a bounded window per acceptor, quorum counting, heartbeats, and stepping
//! down when a quorum is no longer heard.

use bytes::Bytes;
use paxlog_storage::{Accepted, Ballot, Index, NodeId, Store};

use super::holds::{check_hold, lowest_hold};
use super::leader_state::{Leader, LeaderEntry, Progress};
use super::replica::{Replica, RoleState};
use super::snapshot_meta::trim_bound;
use super::{Command, Lookup, Message, Mutation, OpError, Proposal, ProposalCommand, Reply};

impl<S: Store> Replica<S> {
    pub(crate) fn start_leading(
        &mut self,
        ballot: Ballot,
        start: Index,
        log: Vec<(Index, Bytes)>,
        now_ms: u64,
    ) {
        let mut ls = Leader::new(ballot, start, now_ms);
        for (index, value) in log {
            assert_eq!(index, ls.next_index);
            let decoded = Command::decode(&value);
            if let Ok(Command::Append { client_id, seq, .. }) = decoded {
                ls.inflight_keys.insert((client_id, seq), index);
            }
            let change = matches!(decoded, Ok(Command::Reconfigure { .. }));
            if change {
                ls.change_index = index;
            }
            ls.uncommitted_bytes += value.len();
            ls.log.insert(
                index,
                LeaderEntry {
                    change,
                    proposed_ms: now_ms,
                    ..LeaderEntry::default()
                },
            );
            ls.next_index += 1;
            self.store_accept(index, Accepted { ballot, value }, true);
        }
        // Everything a former leader may have acknowledged is at or below
        // this (Phase 1 found it), and it is chosen only under our ballot.
        ls.reads.recovered_index = ls.next_index - 1;
        // A new leader's peers all sync until it has seen who keeps up (`thrifty`).
        ls.all_eager_until_ms = now_ms + self.config.election_timeout_max_ms;
        for peer in self.member_peers() {
            ls.peers.insert(peer, Progress::new(start, now_ms));
        }
        self.role = RoleState::Leader(ls);
        self.send_heartbeats(now_ms);
    }

    pub(crate) fn leader_has_quorum_contact(&self, ls: &Leader, now_ms: u64) -> bool {
        let window = self.config.election_timeout_min_ms;
        if now_ms.saturating_sub(ls.started_ms) < window {
            return true;
        }
        let me = self.config.node_id;
        let heard = ls.peers.keys().filter(|p| {
            self.peer_contact_ms
                .get(p)
                .is_some_and(|&t| now_ms.saturating_sub(t) < window)
        });
        self.is_quorum_of(&self.learner.membership, heard.chain([&me]))
    }

    pub(crate) fn send_heartbeats(&mut self, now_ms: u64) {
        let RoleState::Leader(ls) = &mut self.role else {
            return;
        };
        ls.last_heartbeat_ms = now_ms;
        let (ballot, chosen_index, round) = (ls.ballot, self.learner.chosen_index, ls.reads.round);
        let peers: Vec<NodeId> = ls.peers.keys().copied().collect();
        for to in peers {
            self.io.send(
                to,
                Message::Heartbeat {
                    ballot,
                    chosen_index,
                    round,
                },
            );
        }
    }

    pub(crate) fn leader_tick(&mut self, now_ms: u64) {
        let RoleState::Leader(ls) = &self.role else {
            return;
        };
        if !self.leader_has_quorum_contact(ls, now_ms) {
            // The minority side fails fast instead of acknowledging.
            return self.become_follower(None, now_ms, "no contact with a quorum");
        }
        let hb = self.config.heartbeat_interval_ms;
        if now_ms.saturating_sub(ls.last_heartbeat_ms) >= hb {
            self.send_heartbeats(now_ms);
        }
        self.maybe_bind(now_ms);
        self.maybe_expire_holds(now_ms);
        let RoleState::Leader(ls) = &mut self.role else {
            return;
        };
        for p in ls.peers.values_mut() {
            // Go-back-N when an Accept or its answer was lost.
            if p.next_index > p.match_index + 1
                && now_ms.saturating_sub(p.last_progress_ms) >= 4 * hb
            {
                p.go_back(now_ms);
            }
        }
        self.thrifty_tick(now_ms);
    }

    pub(crate) fn leader_propose(&mut self, proposal: Proposal, now_ms: u64) {
        let id = proposal.id;
        if let Err(e) = self.try_propose(proposal, now_ms) {
            self.io.reply(Reply { id, result: Err(e) });
        }
    }

    fn try_propose(&mut self, proposal: Proposal, now_ms: u64) -> Result<(), OpError> {
        if self.failed {
            return Err(OpError::NotLeader { leader_hint: None });
        }
        let RoleState::Leader(ls) = &self.role else {
            let leader_hint = self.leader_hint();
            return Err(OpError::NotLeader { leader_hint });
        };
        let (client_id, seq, floor) = (proposal.client_id, proposal.seq, proposal.floor);
        let command = match proposal.command {
            ProposalCommand::Append(payload) => Command::Append {
                client_id,
                seq,
                floor,
                payload,
            },
            ProposalCommand::Trim(upto) => {
                let chosen = self.learner.chosen_index;
                if upto > chosen && !self.config.mutated(Mutation::TrimAboveChosen) {
                    return Err(OpError::TrimAboveChosen { upto, chosen });
                }
                let snapshot = trim_bound(&self.learner.snapshot);
                if upto > snapshot && !self.config.mutated(Mutation::TrimPastSnapshot) {
                    return Err(OpError::TrimAboveSnapshot { upto, snapshot });
                }
                if let Some((name, hold)) = lowest_hold(&self.learner.holds) {
                    if upto > hold.index && !self.config.mutated(Mutation::TrimPastHold) {
                        return Err(OpError::TrimPastHold {
                            upto,
                            hold: name.clone(),
                            index: hold.index,
                        });
                    }
                }
                Command::Trim { upto }
            }
            ProposalCommand::Hold {
                name,
                index,
                lease_ms,
            } => {
                check_hold(&self.learner.holds, &name, lease_ms).map_err(OpError::BadRequest)?;
                Command::Hold {
                    name,
                    index,
                    lease_ms,
                }
            }
            ProposalCommand::Release { name, renewed_at } => Command::Release { name, renewed_at },
            ProposalCommand::Snapshot {
                index,
                size_bytes,
                crc32c,
                holder,
            } => {
                let chosen = self.learner.chosen_index;
                if index > chosen || index == 0 {
                    return Err(OpError::SnapshotAboveChosen { index, chosen });
                }
                Command::Snapshot {
                    index,
                    size_bytes,
                    crc32c,
                    holder,
                }
            }
            ProposalCommand::Barrier => Command::Noop,
            ProposalCommand::Register { supersedes } => Command::Register { supersedes },
            ProposalCommand::Reconfigure {
                expect_epoch,
                change,
            } => {
                let next = self.check_change(expect_epoch, &change)?;
                Command::Reconfigure {
                    expect_epoch,
                    change,
                    next,
                }
            }
        };
        let value = command.encode();
        let max = self.config.limits.value_bytes_max;
        if value.len() > max {
            return Err(OpError::TooLarge {
                bytes: value.len() as u64,
                max: max as u64,
            });
        }
        let is_append = matches!(command, Command::Append { .. });
        if is_append {
            if let Some(&index) = ls.inflight_keys.get(&(client_id, seq)) {
                self.waiters.entry(index).or_default().push(proposal.id);
                return Ok(());
            }
            if let Some(first) = self.session_check(ls, client_id, seq, floor)? {
                self.io.reply(Reply {
                    id: proposal.id,
                    result: Ok(first),
                });
                return Ok(());
            }
        }
        // After dedup: a retry of an append already chosen or in flight is
        // that append, whatever the ballot now; fencing it would hide from
        // the client that its write happened.
        if let Some(expected) = proposal.expected_ballot {
            if expected != ls.ballot {
                return Err(OpError::Fenced { current: ls.ballot });
            }
        }
        if !self.leader_has_quorum_contact(ls, now_ms) {
            return Err(OpError::NoQuorum);
        }
        if ls.uncommitted_bytes + value.len() > self.config.limits.uncommitted_bytes_max {
            return Err(OpError::Busy);
        }
        // α = 1: nothing new past a change until it is chosen (`membership`).
        if ls.change_index > self.learner.chosen_index {
            return Err(OpError::Busy);
        }
        let change = matches!(command, Command::Reconfigure { .. });
        let RoleState::Leader(ls) = &mut self.role else {
            return Err(OpError::NoQuorum);
        };
        let (ballot, index) = (ls.ballot, ls.next_index);
        ls.next_index += 1;
        ls.uncommitted_bytes += value.len();
        if is_append {
            ls.inflight_keys.insert((client_id, seq), index);
            self.appends_proposed.0 += 1;
            self.appends_proposed.1 += value.len() as u64;
        }
        ls.log.insert(
            index,
            LeaderEntry {
                change,
                proposed_ms: now_ms,
                ..LeaderEntry::default()
            },
        );
        if change {
            ls.change_index = index;
        }
        if self.config.mutated(Mutation::OwnAcceptBeforeDurable) {
            ls.log
                .entry(index)
                .or_default()
                .acks
                .insert(self.config.node_id);
        }
        self.waiters.entry(index).or_default().push(proposal.id);
        // Our own accept; peers get theirs at the next poll_message, in parallel.
        assert!(
            self.acceptor.promised == ballot,
            "a leader holds its own promise"
        );
        self.store_accept(index, Accepted { ballot, value }, true);
        Ok(())
    }

    /// What the session table and our own pipeline say of an append before
    /// it is proposed: `Some(first)` for a retry of an effective one, an
    /// error for one the fold would hide, `None` to propose it. The fold
    /// decides the same way, so this only keeps hidden copies out of the log.
    fn session_check(
        &self,
        ls: &Leader,
        client_id: u64,
        seq: u64,
        floor: u64,
    ) -> Result<Option<Index>, OpError> {
        if client_id > self.learner.dedup_index {
            // Registered at an index we have not folded yet (or never): not
            // known here now, which is no answer. Retry.
            return Err(OpError::Busy);
        }
        let last = match self.learner.sessions.lookup(client_id, seq) {
            Lookup::Effective(first) => return Ok(Some(first)),
            Lookup::Refused(r) => return Err(r.to_error(client_id)),
            Lookup::Open { last, .. } => last,
        };
        let in_flight = ls
            .inflight_keys
            .range((client_id, 0)..=(client_id, u64::MAX))
            .next_back()
            .map_or(0, |(&(_, s), _)| s);
        let expected = last.max(in_flight) + 1;
        if seq != expected {
            return Err(OpError::OutOfOrder { expected });
        }
        if floor > seq {
            return Err(OpError::BadRequest(format!(
                "floor {floor} above seq {seq}: the floor is the lowest unacknowledged seq"
            )));
        }
        if seq - floor >= self.learner.sessions.window() {
            return Err(OpError::Busy);
        }
        Ok(None)
    }

    /// Sends every Accept the windows allow (batched per acceptor).
    pub(crate) fn leader_send_accepts(&mut self, now_ms: u64) {
        let Replica {
            role: RoleState::Leader(ls),
            config,
            acceptor,
            learner,
            io,
            ..
        } = self
        else {
            return;
        };
        let (entries, chosen_index) = (&acceptor.entries, learner.chosen_index);
        let (ballot, end) = (ls.ballot, ls.next_index);
        for (&to, p) in ls.peers.iter_mut() {
            while p.next_index < end
                && p.inflight_entries() < config.limits.window_entries_max
                && p.inflight_bytes < config.limits.window_bytes_max
            {
                let first_index = p.next_index;
                let mut values = Vec::new();
                let mut bytes = 0usize;
                let room = (config.limits.window_entries_max - p.inflight_entries())
                    .min(config.limits.batch_entries_max);
                let budget = config.limits.batch_budget();
                let mut encoded = 0usize;
                let mut index = first_index;
                while index < end && values.len() < room {
                    let Some(value) = entries.get(&index).map(|a| a.value.clone()) else {
                        break;
                    };
                    // Bounded by encoded size, so the Accept always fits a frame.
                    let cost = super::Limits::entry_bytes(value.len());
                    if !values.is_empty() && encoded.saturating_add(cost) > budget {
                        break;
                    }
                    encoded = encoded.saturating_add(cost);
                    bytes += value.len();
                    values.push(value);
                    index += 1;
                }
                if values.is_empty() {
                    // Only chosen entries we no longer mirror: the peer catches up instead.
                    p.match_index = p.match_index.max(chosen_index);
                    p.on_match(now_ms);
                    continue;
                }
                let last = first_index + values.len() as Index - 1;
                let sync = !p.lazy;
                p.next_index = last + 1;
                p.sent.push_back((last, bytes));
                p.inflight_bytes += bytes;
                io.send(
                    to,
                    Message::Accept {
                        ballot,
                        first_index,
                        values,
                        chosen_index,
                        sync,
                    },
                );
            }
        }
    }
}
