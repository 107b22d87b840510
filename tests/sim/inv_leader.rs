//! Invariant 6 — at most one leader per ballot (and a node leads only with
//! its own ballots). A ballot is one leadership: the same node leading it
//! again after a restart (a second incarnation) counts as a second leader.

use std::collections::BTreeMap;

use paxlog::core::{Ballot, NodeId, Role, Status};

use super::invariants::{Found, Violation};

const NAME: &str = "inv_leader";

#[derive(Debug, Default)]
pub struct OneLeaderPerBallot {
    /// ballot → (node, incarnation).
    pub leaders: BTreeMap<Ballot, (NodeId, u64)>,
}

impl OneLeaderPerBallot {
    pub fn on_status(&mut self, status: &Status, incarnation: u64, found: &mut Found) {
        if status.role != Role::Leader {
            return;
        }
        let (ballot, node) = (status.ballot, status.node_id);
        if ballot.node != node {
            found.push(Violation {
                invariant: NAME,
                detail: format!("node {node} leads with ballot {ballot} of another node"),
            });
        }
        match self.leaders.get(&ballot) {
            Some(&other) if other != (node, incarnation) => found.push(Violation {
                invariant: NAME,
                detail: format!(
                    "ballot {ballot} led by {other:?} and {:?} (node, incarnation)",
                    (node, incarnation)
                ),
            }),
            Some(_) => {}
            None => {
                self.leaders.insert(ballot, (node, incarnation));
            }
        }
    }
}
