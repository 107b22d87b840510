//! Peer messages the transport refused: counted by reason and logged at the
//! level their cause deserves.

use paxlog_net::{FrameError, SendError};
use paxlog_storage::NodeId;

use crate::core::Message;

/// Counts and logs a message the transport refused. A full queue or a down
/// peer is routine: the protocol retransmits. A message that cannot be
/// encoded would fail again on every retransmission, which can stop the
/// cluster for good (a candidate waiting on a promise forever), so it is an
/// error: the core's message budgets are meant to make it impossible.
pub(super) fn note_dropped(node: NodeId, to: NodeId, kind: &'static str, error: &SendError) {
    let reason = match error {
        SendError::Full(_) => "queue_full",
        SendError::Closed(_) => "closed",
        SendError::UnknownPeer(_) => "unknown_peer",
        SendError::Frame {
            source: FrameError::TooLarge { .. },
            ..
        } => "too_large",
        SendError::Frame { .. } => "encode",
    };
    metrics::counter!("paxlog_peer_messages_dropped_total", "reason" => reason).increment(1);
    match error {
        SendError::Full(_) | SendError::Closed(_) => {
            tracing::trace!(node, to, kind, %error, "dropped a peer message");
        }
        SendError::UnknownPeer(_) | SendError::Frame { .. } => {
            tracing::error!(node, to, kind, %error, reason, "a peer message cannot be sent");
        }
    }
}

pub(super) fn message_kind(message: &Message) -> &'static str {
    match message {
        Message::Prepare { .. } => "Prepare",
        Message::Promise { .. } => "Promise",
        Message::Nack { .. } => "Nack",
        Message::Accept { .. } => "Accept",
        Message::Accepted { .. } => "Accepted",
        Message::Heartbeat { .. } => "Heartbeat",
        Message::HeartbeatAck { .. } => "HeartbeatAck",
        Message::PreVote { .. } => "PreVote",
        Message::PreVoteReply { .. } => "PreVoteReply",
        Message::CatchupRequest { .. } => "CatchupRequest",
        Message::Catchup { .. } => "Catchup",
        Message::ReadIndexRequest { .. } => "ReadIndexRequest",
        Message::ReadIndexReply { .. } => "ReadIndexReply",
    }
}
