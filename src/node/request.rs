//! What the driver's loop receives: a [`Command`] with the oneshot to answer
//! it on. Client streams and the admin port both send these, so the types
//! live in this leaf, which imports nothing from the node runtime or the admin
//! port; that keeps `start` free to call `admin::serve`.

use paxlog_storage::{Ballot, Index};
use tokio::sync::{mpsc, oneshot};

use crate::core::{OpError, ProposalCommand};
use crate::proto::{Entry, NodeStatus};

/// A request to the loop.
#[derive(Debug)]
pub(crate) enum Command {
    Propose {
        client_id: u64,
        seq: u64,
        floor: u64,
        command: ProposalCommand,
        expected_ballot: Option<Ballot>,
        reply: oneshot::Sender<Result<Index, OpError>>,
    },
    /// A linearizable tail: the leader's read index, confirmed by a
    /// heartbeat round (`core::read_index`), with no log write.
    ReadIndex {
        reply: oneshot::Sender<Result<Index, OpError>>,
    },
    Read {
        from: Index,
        to: Index,
        entries_max: usize,
        reply: oneshot::Sender<Result<ReadResult, OpError>>,
    },
    Status {
        reply: oneshot::Sender<NodeStatus>,
    },
}

#[derive(Debug)]
pub(crate) struct ReadResult {
    pub entries: Vec<Entry>,
    pub next: Index,
    pub chosen_index: Index,
}

/// Sends the command `make` builds and waits for its answer; `None` when the
/// loop stopped before answering.
pub(crate) async fn ask<T>(
    loop_tx: &mpsc::Sender<Command>,
    make: impl FnOnce(oneshot::Sender<T>) -> Command,
) -> Option<T> {
    let (tx, rx) = oneshot::channel();
    loop_tx.send(make(tx)).await.ok()?;
    rx.await.ok()
}
