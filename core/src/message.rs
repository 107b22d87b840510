//! Peer-to-peer protocol messages. The sender is the authenticated
//! connection's node, never a field here.

use bytes::Bytes;
use paxlog_storage::{Accepted, Ballot, Index, NodeId};
use serde::{Deserialize, Serialize};

/// What travels between nodes: a message and who, by configuration, sent
/// it. The sender's node id is the connection's certificate's, never a field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The sender's configuration epoch.
    pub epoch: u64,
    /// The sender's data directory's incarnation (`Store::incarnation`).
    pub incarnation: u64,
    pub message: Message,
}

impl From<Message> for Envelope {
    /// As sent by an unbound seed member at epoch 0 (cluster birth).
    fn from(message: Message) -> Self {
        Envelope {
            epoch: 0,
            incarnation: 0,
            message,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Phase 1: covers every index `>= from_index`. Re-sent with a later
    /// `from_index` to fetch the rest of a bounded promise.
    Prepare { ballot: Ballot, from_index: Index },
    /// Entries the acceptor accepted in `[from_index, next_index)` (or to the
    /// end when `next_index` is `None`). Entries `<= chosen_index` are chosen.
    Promise {
        ballot: Ballot,
        from_index: Index,
        entries: Vec<(Index, Accepted)>,
        next_index: Option<Index>,
        chosen_index: Index,
        trim_index: Index,
    },
    /// `ballot` was refused: the acceptor promised `promised`, or (when
    /// `leader` is set) it still hears a live leader.
    Nack {
        ballot: Ballot,
        promised: Ballot,
        leader: Option<NodeId>,
    },
    /// Phase 2: consecutive entries from `first_index`. Without `sync` the
    /// leader will not count the answer (Thrifty, `Config::thrifty`): the
    /// acceptor may write the entries unsynced unless they raise its promise.
    Accept {
        ballot: Ballot,
        first_index: Index,
        values: Vec<Bytes>,
        chosen_index: Index,
        sync: bool,
    },
    /// The listed indexes are accepted at `ballot`, durably when `synced`;
    /// only a synced answer counts toward a quorum.
    Accepted {
        ballot: Ballot,
        indexes: Vec<Index>,
        chosen_index: Index,
        synced: bool,
    },
    /// Also a read round (ReadIndex): `round` is the leader's latest.
    Heartbeat {
        ballot: Ballot,
        chosen_index: Index,
        round: u64,
    },
    /// Sent only while not promised above `ballot`; echoes the round.
    HeartbeatAck {
        ballot: Ballot,
        chosen_index: Index,
        round: u64,
    },
    /// Would you promise `ballot`? Changes nothing at the receiver.
    PreVote { ballot: Ballot },
    PreVoteReply {
        ballot: Ballot,
        granted: bool,
        promised: Ballot,
    },
    /// A follower asks its leader for a read index (`read_index.rs`); `id`
    /// is the follower's own.
    ReadIndexRequest { id: u64 },
    /// The leader's answer: a chosen index confirmed by a read round, or
    /// `None` when it does not lead (any more).
    ReadIndexReply { id: u64, index: Option<Index> },
    /// Send me chosen entries from `from_index`.
    CatchupRequest { from_index: Index },
    /// Chosen values, consecutive from `first_index`. To a node behind the
    /// trim point: no values, and the session table at the trim point
    /// (an encoded `TrimState`).
    Catchup {
        first_index: Index,
        values: Vec<Bytes>,
        chosen_index: Index,
        trim_index: Index,
        trim_state: Option<Bytes>,
    },
}
