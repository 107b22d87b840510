//! What a test waits for, seen through the nodes' status (clients talk to
//! nodes directly, so this works whatever the peer links suffer).

use std::collections::BTreeMap;
use std::time::Duration;

use paxlog::core::{Ballot, Role};
use paxlog::proto::NodeStatus;

use super::TestCluster;

/// The node leading at the highest ballot: during a change an old leader
/// may still believe it leads for a while; the newer ballot wins.
pub fn leader(cluster: &TestCluster) -> (u64, Ballot) {
    cluster.wait_for("a leader", |statuses| {
        leaders(statuses)
            .max_by_key(|s| s.ballot)
            .map(|s| (s.id, s.ballot))
    })
}

/// Waits until a node other than `old` leads at a ballot above `ballot`.
pub fn new_leader(cluster: &TestCluster, old: u64, ballot: Ballot) -> (u64, Ballot) {
    cluster.wait_for(&format!("a leader other than node {old}"), |statuses| {
        leaders(statuses)
            .filter(|s| s.id != old && s.ballot > ballot)
            .max_by_key(|s| s.ballot)
            .map(|s| (s.id, s.ballot))
    })
}

fn leaders(statuses: &[(u64, Option<NodeStatus>)]) -> impl Iterator<Item = &NodeStatus> {
    statuses
        .iter()
        .filter_map(|(_, s)| s.as_ref())
        .filter(|s| s.role == Role::Leader)
}

/// Waits until `listener` reports having heard nothing from `speaker` for
/// `quiet` (a node's status gives the age of its last contact with each
/// peer): the cut is felt, e.g. `listener`'s election timeout had time to fire.
pub fn silence(cluster: &TestCluster, listener: u64, speaker: u64, quiet: Duration) {
    let quiet_ms = quiet.as_millis() as u64;
    cluster.wait_for(
        &format!("node {listener} to hear nothing from node {speaker} for {quiet:?}"),
        |statuses| {
            let age_ms = statuses
                .iter()
                .find(|(id, _)| *id == listener)
                .and_then(|(_, s)| s.as_ref())
                .and_then(|s| s.peers.iter().find(|p| p.id == speaker))
                .and_then(|p| p.last_contact_ms)?;
            (age_ms >= quiet_ms).then_some(())
        },
    )
}

/// Waits until every node follows one leader at its ballot and has heard
/// from it within `recent`: a healed network is whole again, not just
/// serving on a majority.
pub fn converged(cluster: &TestCluster, recent: Duration) -> (u64, Ballot) {
    let recent_ms = recent.as_millis() as u64;
    cluster.wait_for("every node to follow one leader", |statuses| {
        let leader = leaders(statuses).max_by_key(|s| s.ballot)?;
        let all_follow = statuses.iter().all(|(id, s)| {
            let Some(s) = s else { return false };
            *id == leader.id
                || (s.leader == Some(leader.id)
                    && s.ballot == leader.ballot
                    && s.peers
                        .iter()
                        .find(|p| p.id == leader.id)
                        .and_then(|p| p.last_contact_ms)
                        .is_some_and(|age| age < recent_ms))
        });
        all_follow.then_some((leader.id, leader.ballot))
    })
}

/// Wall-clock time as the nodes' logs print it, to line a test's report up with them.
pub fn now() -> String {
    humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string()
}

/// Each node's chosen index in one status round (absent if it did not
/// answer): for `TestCluster::wait_for` predicates, since a single round
/// may miss a busy node.
pub fn chosen_in(statuses: &[(u64, Option<NodeStatus>)]) -> BTreeMap<u64, u64> {
    statuses
        .iter()
        .filter_map(|(id, s)| s.as_ref().map(|s| (*id, s.chosen_index)))
        .collect()
}

/// The nodes' longest election timeout (they run with the core's default).
pub fn election_timeout() -> Duration {
    Duration::from_millis(paxlog::core::Config::new(1, vec![1, 2, 3]).election_timeout_max_ms)
}
