//! What a node is started with, what can stop it, and the checks `start`
//! makes before it touches the disk or the network.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use paxlog_net::NetConfig;
use paxlog_storage::NodeId;

use crate::admin::AdminError;
use crate::core;

/// Everything a node needs to run.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub cluster_id: String,
    pub node_id: NodeId,
    pub listen: SocketAddr,
    /// Every member, including this node.
    pub members: BTreeMap<NodeId, SocketAddr>,
    pub certs_dir: PathBuf,
    pub data_dir: PathBuf,
    pub admin: Option<SocketAddr>,
    pub core: core::Config,
    pub net: NetConfig,
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
            certs_dir,
            data_dir,
            admin: None,
            core,
            net: NetConfig::liveness(),
        })
    }

    /// The fields are public, so a config built by hand is checked again at start.
    pub(super) fn validate(&self) -> Result<(), NodeError> {
        let n = self.members.len();
        if !matches!(n, 1 | 3 | 5) {
            return Err(NodeError::BadClusterSize(n));
        }
        if !self.members.contains_key(&self.node_id) {
            return Err(NodeError::NotAMember(self.node_id));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("node {0} is not a member of the cluster it was given")]
    NotAMember(NodeId),
    #[error("a cluster has 3 or 5 members (or 1 for a toy); this one has {0}")]
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
