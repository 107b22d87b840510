//! What a node reports of itself (`paxlog status`, the admin port).

use paxlog_storage::Store;

use super::replica::{Replica, RoleState};
use super::{PeerStatus, Status};

impl<S: Store> Replica<S> {
    pub fn status(&self) -> Status {
        let role = self.role();
        let peers = match &self.role {
            RoleState::Leader(ls) => Some(ls),
            RoleState::Follower | RoleState::Candidate(_) => None,
        };
        let peers = self
            .config
            .peers()
            .map(|id| PeerStatus {
                id,
                match_index: peers
                    .and_then(|ls| ls.peers.get(&id))
                    .map_or(0, |p| p.match_index),
                last_contact_ms: self.peer_contact_ms.get(&id).copied(),
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
        }
    }
}
