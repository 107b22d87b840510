//! Thrifty Paxos (`Config::thrifty`): the leader asks only as many peers to
//! sync each Accept as make a quorum with itself. The others ("lazy") write
//! the same Accepts unsynced and answer `Accepted { synced: false }`, which
//! keeps their copy current and paces their window but is never a vote: a
//! crash may take it back, and a quorum counts only durable accepts.
//!
//! Safety does not depend on which peers are lazy, only on that counting
//! rule (`on_accepted`) and on acceptors never writing a promise unsynced
//! (`on_accept`). This file decides liveness and speed:
//! - after the leader's start and after a stall, every peer syncs for an
//!   election timeout (`all_eager_until_ms`);
//! - a stall is the oldest entry not chosen waiting two heartbeat intervals:
//!   a syncing peer died or is slow, and the lazy ones are asked to sync
//!   everything not known chosen again (`Progress::make_eager`);
//! - otherwise the syncing peers are voters that keep up (answered lately,
//!   and nothing waits on them long), taken in turn
//!   from a rotation that moves at each stall; the rest are lazy, until
//!   the next stall;
//! - while a configuration change is in flight, or when this leader is not
//!   a voter, every peer syncs: the quorum that counts is not a plain one.

use std::collections::BTreeSet;

use paxlog_storage::{NodeId, Store};

use super::replica::{Replica, RoleState};

impl<S: Store> Replica<S> {
    pub(crate) fn thrifty_tick(&mut self, now_ms: u64) {
        let eager = self.eager_peers(now_ms);
        let chosen_index = self.learner.chosen_index;
        let RoleState::Leader(ls) = &mut self.role else {
            return;
        };
        for (id, p) in ls.peers.iter_mut() {
            let lazy = eager.as_ref().is_some_and(|e| !e.contains(id));
            if p.lazy && !lazy {
                p.make_eager(chosen_index, now_ms);
            }
            p.lazy = lazy;
        }
    }

    /// The peers that must sync, or `None` for all of them.
    fn eager_peers(&mut self, now_ms: u64) -> Option<BTreeSet<NodeId>> {
        let me = self.config.node_id;
        let stall_ms = 2 * self.config.heartbeat_interval_ms;
        let settle_ms = self.config.election_timeout_max_ms;
        let m = &self.learner.membership;
        let plain = m.is_voter(me) && self.config.thrifty;
        let quorum = self.quorum_of(m);
        let contact = &self.peer_contact_ms;
        let RoleState::Leader(ls) = &mut self.role else {
            return None;
        };
        let stalled = ls
            .log
            .first_key_value()
            .is_some_and(|(_, e)| now_ms.saturating_sub(e.proposed_ms) >= stall_ms);
        if stalled && ls.peers.values().any(|p| p.lazy) {
            ls.all_eager_until_ms = now_ms + settle_ms;
            ls.eager_rotation = ls.eager_rotation.wrapping_add(1);
            tracing::info!(
                node = me,
                chosen_index = self.learner.chosen_index,
                "the chosen index stalled: every follower syncs again"
            );
        }
        let settling = now_ms < ls.all_eager_until_ms;
        if !plain || settling || ls.change_index > self.learner.chosen_index {
            return None;
        }
        if ls.peers.values().any(|p| p.lazy) {
            // Kept until a stall: making a peer eager again costs a resend.
            return Some(
                ls.peers
                    .iter()
                    .filter(|(_, p)| !p.lazy)
                    .map(|(id, _)| *id)
                    .collect(),
            );
        }
        // A peer keeps up when it answered at our ballot lately and nothing
        // of ours waits on it long. Not the window alone: a go-back empties
        // a dead peer's window and restarts its clock.
        let keeping_up: Vec<NodeId> = ls
            .peers
            .iter()
            .filter(|(id, p)| {
                let heard = contact
                    .get(id)
                    .is_some_and(|&t| now_ms.saturating_sub(t) < stall_ms);
                m.is_voter(**id)
                    && heard
                    && (p.inflight_entries() == 0
                        || now_ms.saturating_sub(p.last_progress_ms) < stall_ms)
            })
            .map(|(id, _)| *id)
            .collect();
        let needed = quorum.saturating_sub(1);
        if keeping_up.len() < needed || keeping_up.is_empty() {
            return None;
        }
        let start = ls.eager_rotation % keeping_up.len();
        let eager: BTreeSet<NodeId> = keeping_up
            .iter()
            .cycle()
            .skip(start)
            .take(needed)
            .copied()
            .collect();
        if ls.peers.len() > eager.len() {
            tracing::info!(node = me, syncing = ?eager, "only these followers sync (thrifty)");
        }
        Some(eager)
    }
}
