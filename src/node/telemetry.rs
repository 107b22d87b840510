//! What the node tells operators about itself: the driver reports what
//! happened (a proposal, its answer, a heartbeat sent or answered, a role
//! taken, a status built) and this turns it into Prometheus series, role
//! logs, and the figures `paxlog status` quotes. One owner: the driver's task
//! (the fsync window is shared with the writer thread).
//!
//! Series named here, by the etcd metric each stands in for where there is one:
//! - `paxlog_commit_latency_seconds` (leader: a proposal's arrival to its
//!   answer, `etcd_server_proposals_committed` latency);
//! - `paxlog_peer_round_trip_time_seconds{peer}` (leader: heartbeat to its
//!   echo, `etcd_network_peer_round_trip_time_seconds`);
//! - `paxlog_elections_total{result}` (`started`, `won`, `lost`),
//!   `paxlog_leader_changes_seen_total` (`etcd_server_leader_changes_seen_total`),
//!   `paxlog_is_leader`, `paxlog_leader_tenure_seconds`, `paxlog_promised_ballot`;
//! - `paxlog_appends_total` and `paxlog_appended_bytes_total` (as leader,
//!   each append once, resends not counted),
//!   `paxlog_entries_chosen_total`, `paxlog_duplicate_appends_total`;
//! - gauges from the core's status: indexes, per-peer lag and in-flight
//!   window, uncommitted bytes, snapshot index, holds.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use paxlog_storage::{Ballot, Index, NodeId};

use super::latency::LatencyWindow;
use crate::core::{self, Message, OpError, Role, Status};
use crate::proto::NodeStatus;

/// Gauges from the core's status are set this often at most.
const EXPORT_INTERVAL: Duration = Duration::from_secs(1);
/// Heartbeat rounds awaiting an echo kept per peer; an older echo is not timed.
const ROUNDS_PENDING_MAX: usize = 8;

pub type SharedWindow = Arc<Mutex<LatencyWindow>>;

pub(super) struct Telemetry {
    node_id: NodeId,
    /// Arrival of each proposal this node took as leader.
    /// Invariant: every key is a pending reply of the driver's.
    proposed: HashMap<core::RequestId, Instant>,
    /// Heartbeat rounds sent to each peer, and when; oldest first.
    /// Invariant: at most [`ROUNDS_PENDING_MAX`] per peer.
    rounds: HashMap<NodeId, VecDeque<(u64, Instant)>>,
    round_trips: BTreeMap<NodeId, LatencyWindow>,
    fsync: SharedWindow,
    role: Option<Role>,
    leader: Option<NodeId>,
    leading_since: Option<Instant>,
    exported: Option<Instant>,
}

impl Telemetry {
    pub(super) fn new(node_id: NodeId, fsync: SharedWindow) -> Self {
        Telemetry {
            node_id,
            proposed: HashMap::new(),
            rounds: HashMap::new(),
            round_trips: BTreeMap::new(),
            fsync,
            role: None,
            leader: None,
            leading_since: None,
            exported: None,
        }
    }

    /// Only a leader's proposals are timed: a follower refuses them.
    pub(super) fn on_propose(&mut self, id: core::RequestId) {
        if self.role == Some(Role::Leader) {
            self.proposed.insert(id, Instant::now());
        }
    }

    pub(super) fn on_reply(&mut self, id: core::RequestId, result: &Result<Index, OpError>) {
        let Some(arrived) = self.proposed.remove(&id) else {
            return;
        };
        if result.is_ok() {
            metrics::histogram!("paxlog_commit_latency_seconds")
                .record(arrived.elapsed().as_secs_f64());
        }
    }

    /// The driver answered every pending request at once (stop or failure).
    pub(super) fn on_replies_dropped(&mut self) {
        self.proposed.clear();
    }

    pub(super) fn on_sent(&mut self, to: NodeId, message: &Message) {
        if let Message::Heartbeat { round, .. } = message {
            let pending = self.rounds.entry(to).or_default();
            if pending.len() == ROUNDS_PENDING_MAX {
                pending.pop_front();
            }
            pending.push_back((*round, Instant::now()));
        }
    }

    pub(super) fn on_received(&mut self, from: NodeId, message: &Message) {
        let Message::HeartbeatAck { round, .. } = message else {
            return;
        };
        let Some(pending) = self.rounds.get_mut(&from) else {
            return;
        };
        let Some(at) = pending.iter().position(|(r, _)| r == round) else {
            return;
        };
        let sent = pending[at].1;
        // Rounds up to this one are answered or overtaken.
        pending.drain(..=at);
        let took = sent.elapsed();
        metrics::histogram!("paxlog_peer_round_trip_time_seconds", "peer" => from.to_string())
            .record(took.as_secs_f64());
        self.round_trips.entry(from).or_default().record(took);
    }

    pub(super) fn on_chosen(&mut self, entries: u64, duplicates: u64) {
        metrics::counter!("paxlog_entries_chosen_total").increment(entries);
        metrics::counter!("paxlog_duplicate_appends_total").increment(duplicates);
    }

    /// Called after every burst: notices a change of role or known leader.
    pub(super) fn on_role(&mut self, role: Role, leader: Option<NodeId>, ballot: Ballot) {
        if leader.is_some() && leader != self.leader {
            metrics::counter!("paxlog_leader_changes_seen_total").increment(1);
            tracing::info!(node = self.node_id, ?leader, %ballot, "leader changed");
        }
        if leader.is_some() {
            self.leader = leader;
        }
        let was = self.role.replace(role);
        if was == Some(role) {
            return;
        }
        tracing::info!(node = self.node_id, role = role.name(), %ballot, "role changed");
        let election = match (was, role) {
            (_, Role::Candidate) => Some("started"),
            (Some(Role::Candidate), Role::Leader) => Some("won"),
            (Some(Role::Candidate), Role::Follower) => Some("lost"),
            _ => None,
        };
        if let Some(result) = election {
            metrics::counter!("paxlog_elections_total", "result" => result).increment(1);
        }
        if role == Role::Leader {
            self.leading_since = Some(Instant::now());
        } else {
            self.leading_since = None;
            self.proposed.clear();
            self.rounds.clear();
            self.round_trips.clear();
        }
        metrics::gauge!("paxlog_is_leader").set(f64::from(u8::from(role == Role::Leader)));
    }

    /// Whether the status gauges are due; the caller then builds a status.
    pub(super) fn export_due(&self) -> bool {
        self.exported
            .is_none_or(|at| at.elapsed() >= EXPORT_INTERVAL)
    }

    /// `appends` is the core's count of appends proposed at a new index and
    /// their bytes: a client's resend of one append is not a second one.
    pub(super) fn export(&mut self, status: &Status, appends: (u64, u64)) {
        self.exported = Some(Instant::now());
        metrics::counter!("paxlog_appends_total").absolute(appends.0);
        metrics::counter!("paxlog_appended_bytes_total").absolute(appends.1);
        let leading = status.role == Role::Leader;
        metrics::gauge!("paxlog_promised_ballot").set(status.ballot.counter as f64);
        metrics::gauge!("paxlog_leader_tenure_seconds")
            .set(self.tenure().map_or(0.0, |t| t.as_secs_f64()));
        metrics::gauge!("paxlog_chosen_index").set(status.chosen_index as f64);
        metrics::gauge!("paxlog_last_index").set(status.last_index as f64);
        metrics::gauge!("paxlog_trim_index").set(status.trim_index as f64);
        metrics::gauge!("paxlog_uncommitted_bytes").set(status.uncommitted_bytes as f64);
        metrics::gauge!("paxlog_snapshot_index")
            .set(status.snapshot.as_ref().map_or(0.0, |s| s.index as f64));
        metrics::gauge!("paxlog_holds").set(status.holds.len() as f64);
        for peer in &status.peers {
            let id = peer.id.to_string();
            // Only a leader tracks its peers: elsewhere the series read 0.
            let lag = if leading {
                status.last_index.saturating_sub(peer.match_index)
            } else {
                0
            };
            metrics::gauge!("paxlog_peer_lag_entries", "peer" => id.clone()).set(lag as f64);
            metrics::gauge!("paxlog_peer_inflight_entries", "peer" => id.clone())
                .set(peer.inflight_entries as f64);
            metrics::gauge!("paxlog_peer_inflight_bytes", "peer" => id.clone())
                .set(peer.inflight_bytes as f64);
            let role = if peer.voter { "voter" } else { "learner" };
            let chosen_lag = if leading {
                status.chosen_index.saturating_sub(peer.chosen_index)
            } else {
                0
            };
            metrics::gauge!("paxlog_member_lag_entries", "peer" => id, "role" => role)
                .set(chosen_lag as f64);
        }
    }

    fn tenure(&self) -> Option<Duration> {
        self.leading_since.map(|at| at.elapsed())
    }

    /// Adds what only this side knows to a status built from the core's.
    pub(super) fn fill(&self, status: &mut NodeStatus) {
        status.leader_tenure_ms = self
            .tenure()
            .map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX));
        let fsync = self.fsync.lock().unwrap_or_else(|e| e.into_inner());
        status.fsync_p50_us = fsync.quantile_us(0.5);
        status.fsync_p99_us = fsync.quantile_us(0.99);
        drop(fsync);
        for peer in &mut status.peers {
            peer.round_trip_us = self
                .round_trips
                .get(&peer.id)
                .and_then(|w| w.quantile_us(0.5));
        }
    }
}
