//! What a node reports of itself (`paxlog status`, the admin port).

use paxlog_storage::{Index, NodeId, Store};

use super::replica::{Replica, RoleState};
use super::{PeerStatus, Role, Status};

impl<S: Store> Replica<S> {
    pub fn status(&self) -> Status {
        let role = self.role();
        let leader = match &self.role {
            RoleState::Leader(ls) => Some(ls),
            RoleState::Follower | RoleState::Candidate(_) => None,
        };
        let m = &self.learner.membership;
        let peers = self
            .member_peers()
            .into_iter()
            .map(|id| {
                let progress = leader.and_then(|ls| ls.peers.get(&id));
                PeerStatus {
                    id,
                    voter: m.is_voter(id),
                    chosen_index: self.peer_chosen.get(&id).copied().unwrap_or(0),
                    match_index: progress.map_or(0, |p| p.match_index),
                    last_contact_ms: self.peer_contact_ms.get(&id).copied(),
                    inflight_entries: progress.map_or(0, |p| p.inflight_entries() as u64),
                    inflight_bytes: progress.map_or(0, |p| p.inflight_bytes as u64),
                    syncs: progress.is_some_and(|p| !p.lazy),
                }
            })
            .collect();
        Status {
            node_id: self.config.node_id,
            role,
            ballot: self.acceptor.promised,
            leader: self.leader,
            chosen_index: self.learner.chosen_index,
            last_index: self.acceptor.last_index,
            trim_index: self.learner.trim_index,
            peers,
            suspect: self.acceptor.suspect,
            membership: m.clone(),
            incarnation: self.incarnation,
            not_voting: self.not_voting(),
            snapshot: self.learner.snapshot.clone(),
            holds: self.learner.holds.clone(),
            uncommitted_bytes: leader.map_or(0, |ls| ls.uncommitted_bytes as u64),
        }
    }

    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// This node's role, without building a whole [`Status`].
    pub fn role(&self) -> Role {
        match &self.role {
            RoleState::Follower => Role::Follower,
            RoleState::Candidate(_) => Role::Candidate,
            RoleState::Leader(_) => Role::Leader,
        }
    }

    /// The leader this node knows of, other than itself: where a refusal
    /// points the client.
    pub(crate) fn leader_hint(&self) -> Option<NodeId> {
        self.leader.filter(|&l| l != self.config.node_id)
    }

    /// Appends proposed at a new index as leader, and their encoded bytes,
    /// since this replica started.
    pub fn appends_proposed(&self) -> (u64, u64) {
        self.appends_proposed
    }

    /// The leader this node knows of (itself included).
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// The highest ballot this node promised.
    pub fn promised(&self) -> paxlog_storage::Ballot {
        self.acceptor.promised
    }

    /// The highest index this node knows chosen.
    pub fn chosen_index(&self) -> Index {
        self.learner.chosen_index
    }

    pub fn trim_index(&self) -> Index {
        self.learner.trim_index
    }

    /// The last index handed out by `poll_chosen`: reads for clients stop
    /// here, since above it whether an entry is a duplicate is not known yet.
    pub fn emitted_index(&self) -> Index {
        self.learner.emitted_index
    }
}
