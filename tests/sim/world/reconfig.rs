//! The operator: membership steps during the faults, each proposed at a
//! node that leads (as `paxlog members` would), conditional on the epoch
//! that node knows, interleaved with every fault (crashes at any step of a
//! change, partitions, leader changes). The ghosts count every index
//! against the configuration the one history says governs it.

use std::collections::BTreeSet;

use paxlog::core::{Change, Index, NodeId, OpError, Proposal, ProposalCommand, Role, MEMBERS_MAX};
use rand::Rng;

use super::{Event, World};

/// Request ids of reconfigurations (clients' are below, see `request_id`).
const RECONFIG_ID: u64 = 1 << 62;

#[derive(Debug, Default)]
pub struct Reconfigs {
    pub pending: BTreeSet<u64>,
    pub next: u64,
    /// The operator removes a voter only above this many.
    pub voters_min: usize,
    /// Whether a node may restart suspect (see `World::new`).
    pub suspects_allowed: bool,
}

/// What the operator's steps got.
#[derive(Clone, Debug, Default)]
pub struct ReconfigStats {
    pub proposed: u64,
    pub chosen: u64,
    /// Refused by the configuration (a stale epoch, an invalid step).
    pub refused: u64,
    /// Busy (a change in flight), not leader, indeterminate.
    pub other: u64,
    /// Configurations the history went through (binds included).
    pub epochs: u64,
    /// Runs whose last configuration has voters outside the seed.
    pub new_voters: u64,
}

impl World {
    pub(super) fn reconfig_step(&mut self) {
        if self.healed_at_ms.is_some() || self.quiet {
            return;
        }
        let next = self.rng.gen_range(150..600);
        self.schedule(next, Event::Reconfig);
        let leader = self.live().into_iter().find(|id| {
            self.nodes[id]
                .replica
                .as_ref()
                .is_some_and(|r| r.role() == Role::Leader)
        });
        let Some(leader) = leader else {
            return;
        };
        let Some(r) = self.nodes[&leader].replica.as_ref() else {
            return;
        };
        let m = r.membership().clone();
        let mut options = Vec::new();
        for &id in &self.members {
            if !m.is_member(id) && m.members.len() < MEMBERS_MAX {
                let addr = format!("10.0.0.{id}:7000");
                options.push(Change::AddLearner { id, addr });
            }
        }
        for member in &m.members {
            if !member.voter && member.incarnation != 0 {
                options.push(Change::Promote { id: member.id });
            }
            // Down to two voters in some runs, so the 2-voter middle state occurs.
            if !member.voter || m.voters_len() > self.reconfig.voters_min {
                options.push(Change::Remove { id: member.id });
            }
        }
        if options.is_empty() {
            return;
        }
        let change = options.swap_remove(self.rng.gen_range(0..options.len()));
        // Now and then a stale epoch, as a change raced by another would be.
        let expect_epoch = if self.rng.gen_range(0..8) == 0 {
            m.epoch.saturating_sub(1)
        } else {
            m.epoch
        };
        self.reconfig.next += 1;
        let id = RECONFIG_ID + self.reconfig.next;
        self.reconfig.pending.insert(id);
        self.stats.reconfig.proposed += 1;
        self.trace(&format!(
            "reconfigure at {leader} (epoch {expect_epoch}): {change:?}"
        ));
        let now = self.now_ms;
        let Some(r) = self.nodes.get_mut(&leader).and_then(|n| n.replica.as_mut()) else {
            return;
        };
        r.propose(
            Proposal {
                id,
                client_id: 0,
                seq: 0,
                floor: 0,
                command: ProposalCommand::Reconfigure {
                    expect_epoch,
                    change,
                },
                expected_ballot: None,
            },
            now,
        );
        self.drain(leader);
    }

    /// Takes the answer to a reconfiguration; false if `id` is not one.
    pub(super) fn on_reconfig_reply(&mut self, id: u64, result: &Result<Index, OpError>) -> bool {
        if !self.reconfig.pending.remove(&id) {
            return id >= RECONFIG_ID;
        }
        let s = &mut self.stats.reconfig;
        match result {
            Ok(_) => s.chosen += 1,
            Err(OpError::ChangeRefused(_)) => s.refused += 1,
            Err(_) => s.other += 1,
        }
        true
    }

    /// Run totals from the history the ghosts folded.
    pub(super) fn reconfig_totals(&mut self) {
        let g = self.checkers.agreement.governing();
        self.stats.reconfig.epochs = g.changes() as u64;
        let seed: &[NodeId] = &self.seed;
        let new_voter = g.latest().voters().any(|v| !seed.contains(&v));
        self.stats.reconfig.new_voters = u64::from(new_voter);
    }
}
