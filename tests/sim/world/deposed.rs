//! The `DeposedLeader` scenario: a leader that another one replaced still
//! believes it leads, and takes tails, for a while.
//!
//! How it is built: every 700–1,200 ms the previous cut heals and the
//! leader's outbound links are blocked (one way), while everything sent to
//! it becomes slow (`SLOW_MIN_MS..=SLOW_MAX_MS`). Its followers stop
//! hearing it and elect another leader after their election timeout; it
//! still counts them as in contact, because their last acknowledgements
//! reach it that much later, and it learns of the new ballot only when the
//! new leader's messages arrive, as slowly. In between, tailer 1 asks it
//! (`world/tails.rs`): a leader that answers without a round that a quorum
//! confirmed after the tail arrived (`ReadWithoutRound`) answers from its
//! own chosen index, below what the new leader acknowledged or answered,
//! which `inv_tail` sees. The real core starts a round no follower hears,
//! and answers `NotLeader` once it learns it was deposed.

use paxlog::core::{NodeId, Role};
use rand::Rng;

use super::{Event, Scenario, World};

const SLOW_MIN_MS: u64 = 200;
const SLOW_MAX_MS: u64 = 280;

impl World {
    /// Heals the previous cut, cuts the current leader's outbound links.
    pub(super) fn deposed_fault(&mut self) {
        let next = self.rng.gen_range(700..1_200);
        self.schedule(next, Event::Fault);
        self.net.heal();
        let leader = self
            .live()
            .into_iter()
            .filter_map(|id| {
                let status = self.nodes[&id].replica.as_ref()?.status();
                (status.role == Role::Leader).then_some((status.ballot, id))
            })
            .max()
            .map(|(_, id)| id);
        self.cut_off = leader;
        let Some(leader) = leader else {
            return;
        };
        for &b in &self.members {
            if b != leader {
                self.net.blocked.insert((leader, b));
            }
        }
        self.stats.partitions += 1;
        self.trace(&format!("leader {leader} cut off outbound, slow inbound"));
    }

    /// Extra delay for a message sent to `to` now (0 outside the scenario,
    /// or once healed).
    pub(super) fn deposed_scenario_delay(&mut self, to: NodeId) -> u64 {
        let cut_off = self.p.scenario == Scenario::DeposedLeader
            && self.healed_at_ms.is_none()
            && self.cut_off == Some(to);
        if cut_off {
            self.rng.gen_range(SLOW_MIN_MS..=SLOW_MAX_MS)
        } else {
            0
        }
    }
}
