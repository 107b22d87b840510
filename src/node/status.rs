//! The core's [`Status`] as the wire's [`NodeStatus`]: the core keeps
//! timestamps and match indexes, clients want ages and lags.

use crate::core::{Role, Status};
use crate::proto::{NodeStatus, PeerStatus};

pub(super) fn node_status(s: Status, now_ms: u64) -> NodeStatus {
    let last_index = s.last_index;
    NodeStatus {
        id: s.node_id,
        role: s.role,
        ballot: s.ballot,
        leader: s.leader,
        chosen_index: s.chosen_index,
        last_index,
        trim_index: s.trim_index,
        peers: s
            .peers
            .iter()
            .map(|p| PeerStatus {
                id: p.id,
                voter: p.voter,
                // Only a leader tracks how far each peer got.
                lag_entries: (s.role == Role::Leader)
                    .then(|| last_index.saturating_sub(p.match_index)),
                chosen_lag_entries: (s.role == Role::Leader)
                    .then(|| s.chosen_index.saturating_sub(p.chosen_index)),
                last_contact_ms: p.last_contact_ms.map(|t| now_ms.saturating_sub(t)),
                inflight_entries: (s.role == Role::Leader).then_some(p.inflight_entries),
                inflight_bytes: (s.role == Role::Leader).then_some(p.inflight_bytes),
                syncs: (s.role == Role::Leader).then_some(p.syncs),
                // Filled in by the driver's telemetry.
                round_trip_us: None,
            })
            .collect(),
        membership: s.membership,
        incarnation: s.incarnation,
        not_voting: s.not_voting,
        snapshot: s.snapshot,
        holds: s.holds,
        // Filled in by the request's handler, off the loop.
        snapshots_held: Vec::new(),
        uncommitted_bytes: (s.role == Role::Leader).then_some(s.uncommitted_bytes),
        // Filled in by the driver's telemetry.
        leader_tenure_ms: None,
        fsync_p50_us: None,
        fsync_p99_us: None,
    }
}
