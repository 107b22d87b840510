//! Messages on the wire: openraft RPCs multiplexed over the peer links, and
//! the client protocol. Both travel in paxlog-net's postcard frames.

use bytes::Bytes;
use openraft::error::SnapshotMismatch;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};

use super::types::{NodeId, TypeConfig};

/// One message on a peer link. A request's `id` is unique per sender; the
/// response carries it back on the responder's own link.
#[derive(Debug, Serialize, Deserialize)]
pub enum PeerMsg {
    Request {
        id: u64,
        rpc: RpcRequest,
    },
    Response {
        id: u64,
        result: Result<RpcResponse, RpcFailure>,
    },
}

#[derive(Debug, Serialize, Deserialize)]
pub enum RpcRequest {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
}

#[derive(Debug, Serialize, Deserialize)]
pub enum RpcResponse {
    AppendEntries(AppendEntriesResponse<NodeId>),
    Vote(VoteResponse<NodeId>),
    InstallSnapshot(InstallSnapshotResponse<NodeId>),
}

/// Why the remote Raft could not answer.
#[derive(Debug, Clone, Serialize, Deserialize, thiserror::Error)]
pub enum RpcFailure {
    /// The remote Raft stopped (shutdown or a fatal storage error).
    #[error("remote raft stopped: {0}")]
    Fatal(String),
    /// The remote expected another snapshot segment; openraft restarts the transfer.
    #[error(transparent)]
    SnapshotMismatch(#[from] SnapshotMismatch),
}

/// A client's request on its stream; requests may be pipelined and are
/// answered in order.
#[derive(Debug, Serialize, Deserialize)]
pub enum ClientRequest {
    Append(Bytes),
    /// A linearizable read of the log's end (`Raft::ensure_linearizable`).
    Tail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientResponse {
    /// Committed (on a quorum, fsynced) and applied at this log index.
    Ok(u64),
    /// Not the leader; the leader it knows of, if any. Surely not appended.
    NotLeader(Option<NodeId>),
    Err(String),
}
