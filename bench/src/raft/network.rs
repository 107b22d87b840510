//! openraft's request/response RPCs over paxlog-net's one-way peer links.
//!
//! A request carries an id; the caller waits on a oneshot kept in a pending
//! map under that id, and the response (which comes back on the responder's
//! own link) completes it. A response that nobody waits for any more (timed
//! out) is dropped. Queues are the links' bounded queues: a full one makes
//! the RPC fail at once as `Unreachable`, and openraft backs off.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Timeout, Unreachable,
};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, RPCTypes, RaftNetwork, RaftNetworkFactory};
use paxlog_net::{PeerSender, SendError};
use tokio::sync::oneshot;

use super::types::{NodeId, TypeConfig};
use super::wire::{PeerMsg, RpcFailure, RpcRequest, RpcResponse};

/// RPCs awaiting a response at once. openraft keeps about one per peer per
/// kind in flight; beyond this something is wrong and the call fails.
const PENDING_MAX: usize = 1024;

type RpcResult = Result<RpcResponse, RpcFailure>;

/// Why an RPC got no answer from the remote Raft.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("peer link: {0}")]
    Send(#[from] SendError),
    #[error("no response within {0:?}")]
    Timeout(Duration),
    #[error("{PENDING_MAX} RPCs already pending")]
    TooManyPending,
    #[error("the response router stopped")]
    Closed,
    #[error("response of the wrong kind for {0:?}")]
    WrongKind(RPCTypes),
    #[error(transparent)]
    Remote(#[from] RpcFailure),
}

struct Pending {
    to: NodeId,
    reply: oneshot::Sender<RpcResult>,
}

/// Sends requests and routes responses back to their callers. Cheap to clone.
#[derive(Clone)]
pub struct Rpc {
    inner: Arc<RpcInner>,
}

struct RpcInner {
    node_id: NodeId,
    sender: PeerSender<PeerMsg>,
    next_id: AtomicU64,
    /// Invariant: at most `PENDING_MAX` entries; an entry lives only while
    /// its caller waits (the caller's guard removes it).
    pending: Mutex<HashMap<u64, Pending>>,
}

impl std::fmt::Debug for Rpc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rpc")
            .field("node_id", &self.inner.node_id)
            .finish_non_exhaustive()
    }
}

/// Removes the pending entry however the call ends (answer, timeout, cancel).
struct PendingGuard<'a> {
    rpc: &'a RpcInner,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.rpc.lock_pending().remove(&self.id);
    }
}

impl RpcInner {
    fn lock_pending(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Pending>> {
        // A panic while holding this lock leaves the map consistent (single
        // inserts and removes), so a poisoned lock is still usable.
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Rpc {
    pub fn new(node_id: NodeId, sender: PeerSender<PeerMsg>) -> Self {
        Self {
            inner: Arc::new(RpcInner {
                node_id,
                sender,
                next_id: AtomicU64::new(1),
                pending: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn node_id(&self) -> NodeId {
        self.inner.node_id
    }

    pub fn sender(&self) -> &PeerSender<PeerMsg> {
        &self.inner.sender
    }

    /// Sends `rpc` to `to` and waits up to `ttl` for its response.
    pub async fn call(
        &self,
        to: NodeId,
        rpc: RpcRequest,
        ttl: Duration,
    ) -> Result<RpcResponse, CallError> {
        let inner = &*self.inner;
        let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply, rx) = oneshot::channel();
        {
            let mut pending = inner.lock_pending();
            if pending.len() >= PENDING_MAX {
                return Err(CallError::TooManyPending);
            }
            pending.insert(id, Pending { to, reply });
            assert!(pending.len() <= PENDING_MAX);
        }
        let _guard = PendingGuard { rpc: inner, id };
        inner.sender.try_send(to, PeerMsg::Request { id, rpc })?;
        match tokio::time::timeout(ttl, rx).await {
            Err(_) => Err(CallError::Timeout(ttl)),
            Ok(Err(_)) => Err(CallError::Closed),
            Ok(Ok(result)) => Ok(result?),
        }
    }

    /// Completes the call `id` with `result`, if `from` is the node it was
    /// sent to and its caller still waits. False if nobody took it.
    pub fn complete(&self, from: NodeId, id: u64, result: RpcResult) -> bool {
        let mut pending = self.inner.lock_pending();
        // A node cannot answer a call that went to another node.
        if pending.get(&id).is_none_or(|p| p.to != from) {
            return false;
        }
        match pending.remove(&id) {
            Some(p) => p.reply.send(result).is_ok(),
            None => false,
        }
    }

    #[cfg(test)]
    pub fn pending_len(&self) -> usize {
        self.inner.lock_pending().len()
    }
}

/// Hands openraft one [`PeerNetwork`] per target.
#[derive(Debug, Clone)]
pub struct NetworkFactory {
    rpc: Rpc,
}

impl NetworkFactory {
    pub fn new(rpc: Rpc) -> Self {
        Self { rpc }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerNetwork;

    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> PeerNetwork {
        PeerNetwork {
            rpc: self.rpc.clone(),
            target,
        }
    }
}

/// openraft's view of one peer.
#[derive(Debug)]
pub struct PeerNetwork {
    rpc: Rpc,
    target: NodeId,
}

type RpcErr<E = openraft::error::Infallible> = RPCError<NodeId, BasicNode, RaftError<NodeId, E>>;

impl PeerNetwork {
    /// Maps a failed call to openraft's error kinds: no answer → timeout or
    /// unreachable (openraft backs off); a stopped remote → unreachable.
    fn rpc_error<E: std::error::Error>(&self, action: RPCTypes, err: CallError) -> RpcErr<E> {
        match err {
            CallError::Timeout(timeout) => RPCError::Timeout(Timeout {
                action,
                id: self.rpc.node_id(),
                target: self.target,
                timeout,
            }),
            CallError::Send(_) | CallError::Remote(_) | CallError::Closed => {
                RPCError::Unreachable(Unreachable::new(&err))
            }
            CallError::TooManyPending | CallError::WrongKind(_) => {
                RPCError::Network(NetworkError::new(&err))
            }
        }
    }
}

impl RaftNetwork<TypeConfig> for PeerNetwork {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcErr> {
        let action = RPCTypes::AppendEntries;
        match self
            .rpc
            .call(
                self.target,
                RpcRequest::AppendEntries(rpc),
                option.hard_ttl(),
            )
            .await
        {
            Ok(RpcResponse::AppendEntries(resp)) => Ok(resp),
            Ok(_) => Err(self.rpc_error(action, CallError::WrongKind(action))),
            Err(e) => Err(self.rpc_error(action, e)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcErr<InstallSnapshotError>> {
        let action = RPCTypes::InstallSnapshot;
        match self
            .rpc
            .call(
                self.target,
                RpcRequest::InstallSnapshot(rpc),
                option.hard_ttl(),
            )
            .await
        {
            Ok(RpcResponse::InstallSnapshot(resp)) => Ok(resp),
            Ok(_) => Err(self.rpc_error(action, CallError::WrongKind(action))),
            Err(CallError::Remote(RpcFailure::SnapshotMismatch(m))) => {
                Err(RPCError::RemoteError(RemoteError::new(
                    self.target,
                    RaftError::APIError(InstallSnapshotError::SnapshotMismatch(m)),
                )))
            }
            Err(e) => Err(self.rpc_error(action, e)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcErr> {
        let action = RPCTypes::Vote;
        match self
            .rpc
            .call(self.target, RpcRequest::Vote(rpc), option.hard_ttl())
            .await
        {
            Ok(RpcResponse::Vote(resp)) => Ok(resp),
            Ok(_) => Err(self.rpc_error(action, CallError::WrongKind(action))),
            Err(e) => Err(self.rpc_error(action, e)),
        }
    }
}
