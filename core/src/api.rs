//! Types that cross the boundary between the core and its driver.

use bytes::Bytes;
use paxlog_storage::{Ballot, Index, NodeId, StoreError, WriteBatch};
use serde::{Deserialize, Serialize};

use super::{Command, Hidden, Message, Refusal};

/// Chosen by the driver, echoed in replies.
pub type RequestId = u64;

/// A client append (or trim, registration, barrier) handed to the core.
#[derive(Clone, Debug)]
pub struct Proposal {
    pub id: RequestId,
    /// The session (appends only).
    pub client_id: u64,
    pub seq: u64,
    /// The client's lowest unacknowledged seq (appends only).
    pub floor: u64,
    pub command: ProposalCommand,
    /// Fencing: fail with `Fenced` unless the leader's ballot is this one.
    pub expected_ballot: Option<Ballot>,
}

#[derive(Clone, Debug)]
pub enum ProposalCommand {
    Append(Bytes),
    Trim(Index),
    /// A Noop: its choice proves leadership at its index (tails use
    /// `Replica::read_index`, which writes nothing).
    Barrier,
    /// Opens a session; its id is the index this is chosen at.
    Register {
        supersedes: Option<u64>,
    },
    /// One membership step, if the configuration is still at `expect_epoch`.
    Reconfigure {
        expect_epoch: u64,
        change: super::Change,
    },
    /// Sets or renews retention hold `name` at `index` (see `holds`).
    Hold {
        name: String,
        index: Index,
        lease_ms: u64,
    },
    /// Releases retention hold `name` (with `renewed_at`: only if not
    /// renewed since that index; the leader's expiry).
    Release {
        name: String,
        renewed_at: Option<Index>,
    },
    /// Publishes a snapshot of the application's state at `index` (a chosen
    /// index) that `holder` stores.
    Snapshot {
        index: Index,
        size_bytes: u64,
        crc32c: u32,
        holder: NodeId,
    },
}

/// The one outcome type of an operation that a node answers, end to end:
/// the core produces it, it travels on the wire as is, and the client and
/// the embedded log wrap it, adding only their transport cases.
/// Whether an append surely did not happen is decided in one place,
/// [`OpError::surely_not_appended`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum OpError {
    #[error("not the leader (leader hint: {leader_hint:?})")]
    NotLeader { leader_hint: Option<NodeId> },
    #[error("no quorum: the leader cannot reach a majority")]
    NoQuorum,
    #[error(
        "busy: too many uncommitted bytes at the leader; the append did not happen, retry later"
    )]
    Busy,
    #[error("value of {bytes} bytes is larger than the limit of {max} bytes")]
    TooLarge { bytes: u64, max: u64 },
    #[error("fenced: the leader's ballot is now {current}; the append did not happen")]
    Fenced { current: Ballot },
    #[error("index {index} is trimmed; the first index still held is {first}")]
    Trimmed { index: Index, first: Index },
    #[error("indeterminate: the append may or may not have happened; retry with the same (client_id, seq)")]
    Indeterminate,
    #[error("node is shutting down")]
    ShuttingDown,
    #[error("node failed: {0}")]
    Failed(String),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("session {client_id} is unknown, expired (evicted from the session table) or superseded; this attempt did not append; open a new session")]
    SessionExpired { client_id: u64 },
    #[error("seq is below the session's floor {floor} (the client said it was acknowledged); its index is no longer remembered; not appended")]
    BelowFloor { floor: u64 },
    #[error(
        "out of order: the session's next seq is {expected}; not appended; resubmit in seq order"
    )]
    OutOfOrder { expected: u64 },
    #[error("membership change refused: {0}")]
    ChangeRefused(super::ChangeError),
    #[error("not permitted: {0}")]
    NotPermitted(String),
    /// A trim past what is chosen would cut entries nobody has applied (a
    /// typo away from trimming the whole log): refused, nothing trimmed.
    #[error(
        "trim up to {upto} refused: the last chosen index the leader knows is {chosen}; \
         nothing was trimmed"
    )]
    TrimAboveChosen { upto: Index, chosen: Index },
    /// The trim point never passes the newest published snapshot: a node
    /// behind it could not rebuild the application's state.
    #[error(
        "trim up to {upto} refused: {}; the trim point never passes the newest snapshot, \
         so publish one at or above {upto} first; nothing was trimmed",
        newest_snapshot(*snapshot)
    )]
    TrimAboveSnapshot {
        upto: Index,
        /// The newest published snapshot's index (0: none).
        snapshot: Index,
    },
    /// A live retention hold keeps the indexes above it.
    #[error(
        "trim up to {upto} refused: retention hold {hold:?} keeps every index above {index} \
         (until it is released, or not renewed within its lease); nothing was trimmed"
    )]
    TrimPastHold {
        upto: Index,
        hold: String,
        index: Index,
    },
    /// A snapshot can only be of chosen indexes.
    #[error(
        "snapshot at index {index} refused: the last chosen index the leader knows is {chosen}"
    )]
    SnapshotAboveChosen { index: Index, chosen: Index },
    /// A snapshot file this node cannot serve or store (not held, or an
    /// I/O error); another holder may.
    #[error("snapshot unavailable: {0}")]
    SnapshotUnavailable(String),
}

fn newest_snapshot(index: Index) -> String {
    match index {
        0 => "no snapshot has been published".into(),
        i => format!("the newest published snapshot is at index {i}"),
    }
}

impl OpError {
    /// A short, stable name of the error's kind (a metric label).
    pub fn kind(&self) -> &'static str {
        match self {
            OpError::NotLeader { .. } => "not_leader",
            OpError::NoQuorum => "no_quorum",
            OpError::Busy => "busy",
            OpError::TooLarge { .. } => "too_large",
            OpError::Fenced { .. } => "fenced",
            OpError::Trimmed { .. } => "trimmed",
            OpError::Indeterminate => "indeterminate",
            OpError::ShuttingDown => "shutting_down",
            OpError::Failed(_) => "failed",
            OpError::BadRequest(_) => "bad_request",
            OpError::SessionExpired { .. } => "session_expired",
            OpError::BelowFloor { .. } => "below_floor",
            OpError::OutOfOrder { .. } => "out_of_order",
            OpError::ChangeRefused(_) => "change_refused",
            OpError::NotPermitted(_) => "not_permitted",
            OpError::TrimAboveChosen { .. } => "trim_above_chosen",
            OpError::TrimAboveSnapshot { .. } => "trim_above_snapshot",
            OpError::TrimPastHold { .. } => "trim_past_hold",
            OpError::SnapshotAboveChosen { .. } => "snapshot_above_chosen",
            OpError::SnapshotUnavailable(_) => "snapshot_unavailable",
        }
    }

    /// True when the operation surely had no effect on the log.
    pub fn surely_not_appended(&self) -> bool {
        !matches!(self, OpError::Indeterminate | OpError::Failed(_))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub id: RequestId,
    pub result: Result<Index, OpError>,
}

/// One chosen index, emitted by the learner in index order without gaps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chosen {
    pub index: Index,
    /// Exactly the command chosen at `index` (an append that is not
    /// effective is emitted as chosen, and flagged by `hidden`).
    pub command: Command,
    /// `Some` when this append is not effective (a retry of one effective
    /// earlier, or refused by its session): the application must treat it
    /// as a no-op. The same on every node.
    pub hidden: Option<Hidden>,
}

/// Opaque, strictly increasing; `on_persisted` must see them in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticket(pub(crate) u64);

impl Ticket {
    /// The ticket's sequence number (for logs and traces).
    pub fn get(self) -> u64 {
        self.0
    }
}

/// A write the driver must apply in ticket order: with `Store::write` when
/// `sync`, else with `Store::write_unsynced`. A driver that merges
/// consecutive batches syncs the merge if any of them asks to.
#[derive(Clone, Debug)]
pub struct Persist {
    pub ticket: Ticket,
    pub batch: WriteBatch,
    /// Whether a message waits for the batch to be durable. An unsynced one
    /// holds only accepts no leader counts (`Config::thrifty`).
    pub sync: bool,
}

#[derive(Clone, Debug)]
pub struct Outbound {
    pub to: NodeId,
    pub message: Message,
    /// Ours, for the envelope (`Envelope`): set by `poll_message`.
    pub epoch: u64,
    pub incarnation: u64,
}

impl Outbound {
    /// What goes on the wire.
    pub fn envelope(self) -> (NodeId, super::Envelope) {
        let envelope = super::Envelope {
            epoch: self.epoch,
            incarnation: self.incarnation,
            message: self.message,
        };
        (self.to, envelope)
    }
}

/// A node's role; on the wire and in `status --json` as `leader`, `follower`, `candidate`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Leader,
    Follower,
    Candidate,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerStatus {
    pub id: NodeId,
    /// Whether it votes in the configuration this node knows.
    pub voter: bool,
    /// Its chosen index as it last reported it to us (0: unknown).
    pub chosen_index: Index,
    /// Highest index known accepted by it (leader only; 0 otherwise).
    pub match_index: Index,
    /// The driver's clock (`now_ms`) when we last heard from it.
    pub last_contact_ms: Option<u64>,
    /// Entries and value bytes sent to it and not yet acknowledged (leader
    /// only; 0 otherwise).
    pub inflight_entries: u64,
    pub inflight_bytes: u64,
    /// Whether this leader asks it to sync its accepts (`Config::thrifty`;
    /// leader only; false otherwise).
    pub syncs: bool,
}

#[derive(Clone, Debug)]
pub struct Status {
    pub node_id: NodeId,
    pub role: Role,
    /// The promised ballot.
    pub ballot: Ballot,
    pub leader: Option<NodeId>,
    pub chosen_index: Index,
    pub last_index: Index,
    pub trim_index: Index,
    pub peers: Vec<PeerStatus>,
    /// Storage health is suspect: this node does not vote.
    pub suspect: bool,
    /// The configuration this node knows (at its applied prefix).
    pub membership: super::Membership,
    /// This node's data directory's incarnation.
    pub incarnation: u64,
    /// Why this node does not vote, if it does not (suspect storage, not
    /// a voter, an incarnation the configuration does not name).
    pub not_voting: Option<String>,
    /// The newest published snapshot this node knows.
    pub snapshot: Option<super::SnapshotMeta>,
    /// The retention holds this node knows.
    pub holds: super::Holds,
    /// Value bytes proposed and not yet chosen (leader only; 0 otherwise).
    pub uncommitted_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("index {index} is trimmed; the first index still held is {first}")]
    Trimmed { index: Index, first: Index },
    #[error(transparent)]
    Store(StoreError),
    #[error("index {index} is not chosen yet (chosen index is {chosen_index})")]
    NotChosen { index: Index, chosen_index: Index },
    #[error("chosen index {index} is missing from this node's log")]
    Missing { index: Index },
    #[error("undecodable command at index {index}: {reason}")]
    Decode { index: Index, reason: String },
    #[error("the replica has failed after a storage error")]
    Failed,
}

impl From<StoreError> for CoreError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Trimmed { index, first } => CoreError::Trimmed { index, first },
            other => CoreError::Store(other),
        }
    }
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Follower => "follower",
            Role::Candidate => "candidate",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl From<CoreError> for OpError {
    /// A read that failed: trimmed is the caller's answer, anything else is
    /// this node's failure.
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::Trimmed { index, first } => OpError::Trimmed { index, first },
            other => OpError::Failed(other.to_string()),
        }
    }
}

impl Refusal {
    /// What the client of `client_id` is told when the fold refused its append.
    pub fn to_error(self, client_id: u64) -> OpError {
        match self {
            Refusal::SessionExpired => OpError::SessionExpired { client_id },
            Refusal::BelowFloor { floor } => OpError::BelowFloor { floor },
            Refusal::OutOfOrder { expected } => OpError::OutOfOrder { expected },
            Refusal::WindowFull => OpError::Busy,
        }
    }
}
