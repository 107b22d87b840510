//! The client wire protocol, carried as postcard frames on `paxlog-client/1`
//! QUIC streams.
//!
//! A client opens one bidirectional stream for requests and pipelines them:
//! every request carries a `req` id, echoed by its response, and responses may
//! arrive in any order. A `Subscribe` request gets its own stream, on which the
//! node pushes `Entries` frames until either side closes it.

use bytes::Bytes;
use paxlog_storage::{Ballot, Index, NodeId};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Request {
    Append {
        req: u64,
        client_id: u64,
        seq: u64,
        payload: Bytes,
        expected_ballot: Option<Ballot>,
    },
    Trim {
        req: u64,
        client_id: u64,
        seq: u64,
        upto: Index,
    },
    /// Chosen user entries with `from <= index <= to`, bounded by `entries_max`.
    Read {
        req: u64,
        from: Index,
        to: Index,
        entries_max: u32,
    },
    /// The highest chosen index, confirmed by a quorum round at the leader.
    Tail {
        req: u64,
    },
    Status {
        req: u64,
    },
    /// Push every chosen user entry from `from` on, in order, on this stream.
    Subscribe {
        req: u64,
        from: Index,
    },
}

impl Request {
    pub fn req(&self) -> u64 {
        match self {
            Request::Append { req, .. }
            | Request::Trim { req, .. }
            | Request::Read { req, .. }
            | Request::Tail { req }
            | Request::Status { req }
            | Request::Subscribe { req, .. } => *req,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Response {
    Appended {
        req: u64,
        index: Index,
    },
    Entries {
        req: u64,
        entries: Vec<Entry>,
        /// Where the next read should start: past every index this response covered.
        next: Index,
        chosen_index: Index,
    },
    Tail {
        req: u64,
        index: Index,
        ballot: Ballot,
    },
    Status {
        req: u64,
        status: NodeStatus,
    },
    Error {
        req: u64,
        error: WireError,
    },
}

impl Response {
    pub fn req(&self) -> u64 {
        match self {
            Response::Appended { req, .. }
            | Response::Entries { req, .. }
            | Response::Tail { req, .. }
            | Response::Status { req, .. }
            | Response::Error { req, .. } => *req,
        }
    }
}

/// A chosen user entry. No-ops, trims and duplicates are never sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub index: Index,
    pub payload: Bytes,
}

/// Errors on the wire. Which of them mean "surely not appended" is decided by
/// [`WireError::surely_not_appended`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum WireError {
    #[error("not the leader (leader hint: {leader:?})")]
    NotLeader { leader: Option<NodeId> },
    #[error("no quorum: the node cannot reach a majority")]
    NoQuorum,
    #[error("busy: too many uncommitted bytes at the leader, retry later")]
    Busy,
    #[error("value of {bytes} bytes is larger than the limit of {max} bytes")]
    TooLarge { bytes: u64, max: u64 },
    #[error("fenced: the leader's ballot is now {current}")]
    Fenced { current: Ballot },
    #[error("indeterminate: the append may or may not have happened; retry with the same (client_id, seq)")]
    Indeterminate,
    #[error("index {index} is trimmed; the first index still held is {first}")]
    Trimmed { index: Index, first: Index },
    #[error("node is shutting down")]
    ShuttingDown,
    #[error("node failed: {0}")]
    Failed(String),
    #[error("bad request: {0}")]
    BadRequest(String),
}

impl WireError {
    /// True when the request surely had no effect on the log.
    pub fn surely_not_appended(&self) -> bool {
        !matches!(self, WireError::Indeterminate | WireError::Failed(_))
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeStatus {
    pub id: NodeId,
    pub role: String,
    pub ballot: Ballot,
    pub leader: Option<NodeId>,
    pub chosen_index: Index,
    pub last_index: Index,
    pub trim_index: Index,
    pub peers: Vec<PeerStatus>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PeerStatus {
    pub id: NodeId,
    /// Entries the peer is behind this node's last index; only a leader knows.
    pub lag_entries: Option<u64>,
    pub last_contact_ms: Option<u64>,
}
