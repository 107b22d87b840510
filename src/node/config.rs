//! What a node is started with, what can stop it, and the checks `start`
//! makes before it touches the disk or the network.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use paxlog_net::NetConfig;
use paxlog_storage::NodeId;

use crate::admin::AdminError;
use crate::core;

/// The client certificate `paxlog dev` and `paxlog certs` make for the CLI:
/// an admin unless a node's configuration names others.
pub const DEFAULT_ADMIN: &str = "cli";

/// Everything a node needs to run.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub cluster_id: String,
    pub node_id: NodeId,
    pub listen: SocketAddr,
    /// Every member, including this node.
    pub members: BTreeMap<NodeId, SocketAddr>,
    /// Peers this node dials at another address than their `members` entry
    /// (fault-injection tests route each link through a proxy). A peer is
    /// still known by its certificate, so the address proves nothing.
    pub peer_via: BTreeMap<NodeId, SocketAddr>,
    pub certs_dir: PathBuf,
    pub data_dir: PathBuf,
    pub admin: Option<SocketAddr>,
    /// Client certificate names allowed destructive operations (member
    /// changes, trim); every other client gets `NotPermitted`.
    pub admins: Vec<String>,
    pub core: core::Config,
    pub net: NetConfig,
    pub follower_sync: FollowerSync,
}

/// Where a follower syncs the accepts it answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FollowerSync {
    /// On the writer thread, as a leader does: the loop goes on taking
    /// messages and requests while the disk syncs. The default of
    /// [`NodeConfig::new`]: an embedded node's loop runs on the application's
    /// runtime, which a sync must not block.
    Writer,
    /// In the loop, whenever the writer has no write in flight: the Accepted
    /// leaves without two thread hand-offs, and the loop takes nothing while
    /// the disk syncs (`writer::LoopWriter` says why that is cheap for a
    /// follower). `paxlog serve`'s default: its runtime is the node's own.
    Loop,
}

impl NodeConfig {
    pub fn new(
        cluster_id: String,
        node_id: NodeId,
        members: BTreeMap<NodeId, SocketAddr>,
        certs_dir: PathBuf,
        data_dir: PathBuf,
    ) -> Result<NodeConfig, NodeError> {
        let listen = *members
            .get(&node_id)
            .ok_or(NodeError::NotAMember(node_id))?;
        let core = core::Config::new(node_id, members.keys().copied().collect());
        Ok(NodeConfig {
            cluster_id,
            node_id,
            listen,
            members,
            peer_via: BTreeMap::new(),
            certs_dir,
            data_dir,
            admin: None,
            admins: vec![DEFAULT_ADMIN.to_string()],
            core,
            net: NetConfig::liveness(),
            follower_sync: FollowerSync::Writer,
        })
    }

    /// The fields are public, so a config built by hand is checked again at start.
    pub(super) fn validate(&self) -> Result<(), NodeError> {
        let n = self.members.len();
        if n == 0 || n > core::VOTERS_MAX {
            return Err(NodeError::BadClusterSize(n));
        }
        if !self.members.contains_key(&self.node_id) {
            return Err(NodeError::NotAMember(self.node_id));
        }
        for &id in self.peer_via.keys() {
            if id == self.node_id {
                return Err(NodeError::PeerViaSelf(id));
            }
            if !self.members.contains_key(&id) {
                return Err(NodeError::PeerViaNotAMember(id));
            }
        }
        Ok(())
    }

    /// Where this node dials each peer: `peer_via` where given, else the
    /// peer's member address.
    pub fn peer_dial_addrs(&self) -> BTreeMap<NodeId, SocketAddr> {
        self.members
            .iter()
            .filter(|(id, _)| **id != self.node_id)
            .map(|(&id, &addr)| (id, self.peer_via.get(&id).copied().unwrap_or(addr)))
            .collect()
    }

    /// The peers this node links with: every member of `membership` and
    /// every node of the cluster file, but itself. The file's nodes stay
    /// even when the configuration this node knows lacks them: a lagging
    /// node must still hear the newer members it catches up from (the core
    /// drops what a non-member sends, so the link grants nothing). Each is
    /// dialed at `peer_via` where given, else the address the configuration
    /// holds, else the cluster file's; a member with none is left out (and
    /// logged): it can still dial us.
    pub fn dial_addrs_for(&self, membership: &core::Membership) -> BTreeMap<NodeId, SocketAddr> {
        let mut out = self.peer_dial_addrs();
        for m in membership.members.iter().filter(|m| m.id != self.node_id) {
            let addr = self
                .peer_via
                .get(&m.id)
                .copied()
                .or_else(|| m.addr.parse().ok())
                .or_else(|| self.members.get(&m.id).copied());
            match addr {
                Some(addr) => {
                    out.insert(m.id, addr);
                }
                None => tracing::warn!(
                    node = self.node_id,
                    member = m.id,
                    "no address known for a member; it must dial us"
                ),
            }
        }
        out
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("node {0} is not a member of the cluster it was given")]
    NotAMember(NodeId),
    #[error("a peer address override names node {0}, which is not a member")]
    PeerViaNotAMember(NodeId),
    #[error("a peer address override names node {0}, this node itself")]
    PeerViaSelf(NodeId),
    #[error(
        "a cluster file lists 1 to 7 seed members (3 or 5 for fault tolerance); this one has {0}"
    )]
    BadClusterSize(usize),
    #[error(transparent)]
    Storage(#[from] paxlog_storage::StoreError),
    #[error(transparent)]
    Net(#[from] paxlog_net::NetError),
    #[error("core: {0}")]
    Core(String),
    #[error(transparent)]
    Admin(#[from] AdminError),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("storage failed; the node stopped without acknowledging anything more: {0}")]
    Fatal(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(peer_via: &[(NodeId, &str)]) -> NodeConfig {
        let members = (1..=3)
            .map(|id| (id, SocketAddr::from(([127, 0, 0, 1], 7000 + id as u16))))
            .collect();
        let mut config = NodeConfig::new("c".into(), 1, members, "certs".into(), "data".into())
            .expect("node 1 is a member");
        for &(id, addr) in peer_via {
            config
                .peer_via
                .insert(id, addr.parse().expect("literal address"));
        }
        config
    }

    #[test]
    fn peer_via_must_name_another_member() {
        assert!(config(&[(2, "127.0.0.1:9002")]).validate().is_ok());
        assert!(matches!(
            config(&[(4, "127.0.0.1:9004")]).validate(),
            Err(NodeError::PeerViaNotAMember(4))
        ));
        assert!(matches!(
            config(&[(1, "127.0.0.1:9001")]).validate(),
            Err(NodeError::PeerViaSelf(1))
        ));
    }
}
