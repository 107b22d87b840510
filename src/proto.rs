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

use crate::core::{Change, Holds, Membership, OpError, Role, SnapshotMeta};
pub use crate::node::HeldSnapshot;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Request {
    /// Opens a session: answered `Appended` with its index, the session id.
    Register {
        req: u64,
        /// The same client's previous session, closed for new seqs.
        supersedes: Option<u64>,
    },
    /// Seqs of one session are contiguous from 1; `floor` is the client's
    /// lowest seq not yet acknowledged.
    Append {
        req: u64,
        client_id: u64,
        seq: u64,
        floor: u64,
        payload: Bytes,
        expected_ballot: Option<Ballot>,
    },
    /// Trims are idempotent: they carry no session seq (and open no gap).
    Trim {
        req: u64,
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
    /// One membership step, if the configuration is still at `expect_epoch`:
    /// answered `Appended` with the index it was chosen at. Admin only.
    Reconfigure {
        req: u64,
        expect_epoch: u64,
        change: Change,
    },
    /// Push every chosen user entry from `from` on, in order, on this stream.
    Subscribe {
        req: u64,
        from: Index,
    },
    /// Appends `data` (at most `SNAPSHOT_CHUNK_BYTES`) to this node's upload
    /// of a snapshot at `index` if `offset` is where the upload ends (0
    /// starts over): answered `SnapshotWritten` with where it ends now.
    /// Admin only.
    SnapshotWrite {
        req: u64,
        index: Index,
        offset: u64,
        data: Bytes,
    },
    /// Checks the upload of `index` and makes it a snapshot this node holds:
    /// answered `Appended { index }`. Admin only.
    SnapshotSeal {
        req: u64,
        index: Index,
        size_bytes: u64,
        crc32c: u32,
    },
    /// Publishes a snapshot `holder` holds (a replicated command): answered
    /// `Appended` with the index it was chosen at. Admin only.
    PublishSnapshot {
        req: u64,
        index: Index,
        size_bytes: u64,
        crc32c: u32,
        holder: NodeId,
    },
    /// Sets or renews retention hold `name`: no trim passes `index` until it
    /// is released or goes `lease_ms` without a renewal. Answered `Appended`
    /// with the index it was chosen at. Admin only.
    Hold {
        req: u64,
        name: String,
        index: Index,
        lease_ms: u64,
    },
    /// Releases retention hold `name`. Admin only.
    Release {
        req: u64,
        name: String,
    },
    /// Up to `len` bytes of a snapshot this node holds, from `offset`.
    SnapshotRead {
        req: u64,
        index: Index,
        crc32c: u32,
        offset: u64,
        len: u32,
    },
}

impl Request {
    pub fn req(&self) -> u64 {
        match self {
            Request::Append { req, .. }
            | Request::Register { req, .. }
            | Request::Trim { req, .. }
            | Request::Read { req, .. }
            | Request::Tail { req }
            | Request::Status { req }
            | Request::Reconfigure { req, .. }
            | Request::Subscribe { req, .. }
            | Request::SnapshotWrite { req, .. }
            | Request::SnapshotSeal { req, .. }
            | Request::PublishSnapshot { req, .. }
            | Request::SnapshotRead { req, .. }
            | Request::Hold { req, .. }
            | Request::Release { req, .. } => *req,
        }
    }
}

// A status answer is rare and short-lived; boxing it buys nothing.
#[allow(clippy::large_enum_variant)]
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
        error: OpError,
    },
    SnapshotWritten {
        req: u64,
        next_offset: u64,
    },
    SnapshotData {
        req: u64,
        size_bytes: u64,
        data: Bytes,
    },
}

impl Response {
    pub fn req(&self) -> u64 {
        match self {
            Response::Appended { req, .. }
            | Response::Entries { req, .. }
            | Response::Tail { req, .. }
            | Response::Status { req, .. }
            | Response::Error { req, .. }
            | Response::SnapshotWritten { req, .. }
            | Response::SnapshotData { req, .. } => *req,
        }
    }
}

/// A chosen user entry. No-ops, trims and duplicates are never sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub index: Index,
    pub payload: Bytes,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeStatus {
    pub id: NodeId,
    pub role: Role,
    pub ballot: Ballot,
    pub leader: Option<NodeId>,
    pub chosen_index: Index,
    pub last_index: Index,
    pub trim_index: Index,
    pub peers: Vec<PeerStatus>,
    /// The configuration this node knows.
    pub membership: Membership,
    /// This node's data directory's incarnation.
    pub incarnation: u64,
    /// Why this node does not vote, if it does not.
    pub not_voting: Option<String>,
    /// The newest published snapshot this node knows.
    pub snapshot: Option<SnapshotMeta>,
    /// The snapshot files this node holds.
    pub snapshots_held: Vec<HeldSnapshot>,
    /// The retention holds this node knows.
    pub holds: Holds,
    /// How long this node has led (leader only).
    pub leader_tenure_ms: Option<u64>,
    /// Its recent synced writes (the last [`crate::node::LATENCY_WINDOW`]):
    /// p50 and p99 in microseconds; `None` before the first.
    pub fsync_p50_us: Option<u64>,
    pub fsync_p99_us: Option<u64>,
    /// Value bytes proposed and not yet chosen (leader only).
    pub uncommitted_bytes: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PeerStatus {
    pub id: NodeId,
    /// A voter (else a learner) in the configuration this node knows.
    pub voter: bool,
    /// Entries the peer is behind this node's last index; only a leader knows.
    pub lag_entries: Option<u64>,
    /// Chosen entries the peer is behind this node, by what it last reported
    /// (its catch-up progress); only a leader knows.
    pub chosen_lag_entries: Option<u64>,
    pub last_contact_ms: Option<u64>,
    /// Entries and value bytes sent to it and not yet acknowledged (leader only).
    pub inflight_entries: Option<u64>,
    pub inflight_bytes: Option<u64>,
    /// Median heartbeat round trip over the recent rounds, in microseconds
    /// (leader only; `None` before the first answer).
    pub round_trip_us: Option<u64>,
    /// Whether the leader asks it to sync the accepts it answers (leader
    /// only): a thrifty leader asks only a quorum (`paxlog serve --thrifty`).
    pub syncs: Option<bool>,
}
