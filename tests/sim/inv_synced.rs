//! Invariant 8 — a promise is synced before any vote reflects it: when an
//! acceptor sends Promise or a synced Accepted at a ballot, its durable
//! promise is at least that ballot (README, Durability). A vote whose
//! promise a crash can take back lets the acceptor vote again for a lower
//! ballot. An unsynced Accepted (`Config::thrifty`) is no vote: the world
//! passes it to no checker, and `CountUnsyncedAccepted` shows what counting
//! it breaks.

use paxlog::core::{Ballot, NodeId};

use super::invariants::{Found, Violation};

const NAME: &str = "inv_synced";

pub fn on_vote(node: NodeId, kind: &str, ballot: Ballot, durable: Ballot, found: &mut Found) {
    if ballot > durable {
        found.push(Violation {
            invariant: NAME,
            detail: format!("node {node} sent {kind} at {ballot} with durable promise {durable}"),
        });
    }
}
