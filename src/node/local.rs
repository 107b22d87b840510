//! The in-process way into a node: what an embedded [`crate::log::Log`]
//! uses for its own node instead of a QUIC stream. A [`LocalPort`] hands a
//! proto [`Request`] to the loop through the same [`super::handle`] a
//! client stream uses, so the answers, the errors and the order rules are
//! the network path's; only the frames, the TLS and the serialization are
//! left out.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::handle::{self, Answer};
use super::request::Command;
use super::snapshots::SnapshotDir;
use crate::core::NodeId;
use crate::proto::Request;

/// A running node's loop, reachable in process. Cloning is cheap; a port
/// of a stopped node answers every request as the network path does when
/// its node's loop stopped (`ShuttingDown`, or `Indeterminate` for a
/// proposal).
#[derive(Clone, Debug)]
pub struct LocalPort {
    node_id: NodeId,
    loop_tx: mpsc::Sender<Command>,
    snapshots: Arc<SnapshotDir>,
}

impl LocalPort {
    pub(super) fn new(
        node_id: NodeId,
        loop_tx: mpsc::Sender<Command>,
        snapshots: Arc<SnapshotDir>,
    ) -> LocalPort {
        LocalPort {
            node_id,
            loop_tx,
            snapshots,
        }
    }

    /// The node this port reaches.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// Hands `request` to the loop and returns the future of its answer.
    /// Requests handed one after another reach the loop in that order;
    /// only the waits for their answers overlap.
    pub(crate) async fn dispatch(&self, request: Request) -> Answer {
        // The embedding application owns this node: it is its admin.
        let caller = handle::Caller { admin: true };
        handle::dispatch(request, caller, &self.loop_tx, &self.snapshots).await
    }
}
