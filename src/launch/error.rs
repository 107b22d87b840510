//! Why launching or watching a local cluster failed.

use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use paxlog_storage::NodeId;

use crate::client::ClientError;
use crate::cluster::ClusterFileError;

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("generating certificates in {}: {source}", path.display())]
    Certs {
        path: PathBuf,
        source: paxlog_net::NetError,
    },
    #[error("finding free loopback ports: {0}")]
    Ports(io::Error),
    #[error("starting node {id}: {source}")]
    Spawn { id: NodeId, source: io::Error },
    /// `log_tail` holds the node's last log lines, for callers that show them.
    #[error("node {id} exited early with {status}")]
    Exited {
        id: NodeId,
        status: ExitStatus,
        log_tail: String,
    },
    #[error("killing node {id}: {source}")]
    Kill { id: NodeId, source: io::Error },
    #[error("watching the node processes: {0}")]
    Wait(io::Error),
    #[error("node {0} is not part of this cluster")]
    UnknownNode(NodeId),
    #[error("node {peer} is not a peer of node {id}")]
    NotAPeer { id: NodeId, peer: NodeId },
    #[error("node {0} is already running")]
    AlreadyRunning(NodeId),
    #[error("node {0} is not running")]
    NotRunning(NodeId),
    #[error("the cluster was not ready within {0:?}")]
    NotReady(Duration),
    #[error(transparent)]
    ClusterFile(#[from] ClusterFileError),
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// Maps an I/O error on `path` while doing `what`.
pub(super) fn io_error(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> LaunchError {
    let path = path.to_path_buf();
    move |source| LaunchError::Io { what, path, source }
}
