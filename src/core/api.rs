//! Types that cross the boundary between the core and its driver.

use bytes::Bytes;
use paxlog_storage::{Ballot, Index, NodeId, StoreError, WriteBatch};

use super::{Command, Message};

/// Chosen by the driver, echoed in replies.
pub type RequestId = u64;

/// A client append (or trim) handed to the core.
#[derive(Clone, Debug)]
pub struct Proposal {
    pub id: RequestId,
    pub client_id: u64,
    pub seq: u64,
    pub command: ProposalCommand,
    /// Fencing: fail with `Fenced` unless the leader's ballot is this one.
    pub expected_ballot: Option<Ballot>,
}

#[derive(Clone, Debug)]
pub enum ProposalCommand {
    Append(Bytes),
    Trim(Index),
    /// A Noop whose choice proves leadership at its index: linearizable tail.
    Barrier,
}

/// Why a proposal failed. All but `Indeterminate` mean "surely not appended".
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    #[error("not the leader (leader hint: {leader_hint:?})")]
    NotLeader { leader_hint: Option<NodeId> },
    #[error("the leader cannot reach a quorum")]
    NoQuorum,
    #[error("too many uncommitted bytes at the leader; retry later")]
    Busy,
    #[error("value of {bytes} bytes exceeds the limit of {max}")]
    TooLarge { bytes: usize, max: usize },
    #[error("the leader's ballot is {current}, not the expected one")]
    Fenced { current: Ballot },
    #[error("the outcome is unknown; retry with the same (client_id, seq)")]
    Indeterminate,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub id: RequestId,
    pub result: Result<Index, ProposeError>,
}

/// One chosen index, emitted by the learner in index order without gaps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chosen {
    pub index: Index,
    /// Exactly the command chosen at `index` (a duplicate append is emitted
    /// as chosen, and flagged by `duplicate_of`).
    pub command: Command,
    /// `Some(first)` when this is a retried `(client_id, seq)` already
    /// chosen at `first`: the application must treat it as a no-op.
    pub duplicate_of: Option<Index>,
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

/// A write the driver must apply with `Store::write`, in ticket order.
#[derive(Clone, Debug)]
pub struct Persist {
    pub ticket: Ticket,
    pub batch: WriteBatch,
}

#[derive(Clone, Debug)]
pub struct Outbound {
    pub to: NodeId,
    pub message: Message,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Leader,
    Follower,
    Candidate,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerStatus {
    pub id: NodeId,
    /// Highest index known accepted by it (leader only; 0 otherwise).
    pub match_index: Index,
    /// The driver's clock (`now_ms`) when we last heard from it.
    pub last_contact_ms: Option<u64>,
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
