//! The network client: mutual TLS to the cluster, leader discovery (redirect
//! with a hint, then cached), pipelined requests over one stream per node,
//! retries with exponential backoff and jitter that keep the same
//! `(client_id, seq)`, so a retried append is never appended twice.
//!
//! Errors say whether an append surely did not happen or may have happened
//! ([`ClientError::surely_not_appended`]).

mod local;
mod members;
pub use members::CATCH_UP_TIMEOUT;
mod holds;
mod read;
mod retry;
mod seqs;
mod session;
mod snapshot;
pub use snapshot::partial_path;
mod subscribe;
pub use subscribe::Delivery;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{FuturesOrdered, StreamExt};
use paxlog_net::{ClientEndpoint, ClientTls};
use paxlog_storage::{Ballot, Index, NodeId};
use tokio::sync::oneshot;

use crate::cluster::ClusterFile;
use crate::core::{Limits, OpError};
use crate::node::LocalPort;
use crate::proto::{Request, Response};

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A node's answer ([`OpError`], as the core produced it) or one of the few
/// things only the client can see: no node reachable, a connection lost
/// with the request in flight, a timeout, a certificate problem.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Op(#[from] OpError),
    #[error("no node of the cluster is reachable: {0}")]
    Unreachable(String),
    #[error("indeterminate: the append may or may not have happened ({0}); retry it with the same (client_id, seq)")]
    Indeterminate(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("unexpected response from the server: {0}")]
    Protocol(String),
    #[error("tls/certificates: {0}")]
    Tls(String),
    /// A snapshot file could not be read, written or verified here.
    #[error("snapshot: {0}")]
    Snapshot(String),
}

impl ClientError {
    /// True when the request surely had no effect on the log: the node's own
    /// rule for its answers, and for the client's cases only a lost
    /// connection or a timeout leave the outcome open.
    pub fn surely_not_appended(&self) -> bool {
        match self {
            ClientError::Op(e) => e.surely_not_appended(),
            ClientError::Indeterminate(_) | ClientError::Timeout(_) => false,
            ClientError::Unreachable(_)
            | ClientError::Protocol(_)
            | ClientError::Tls(_)
            | ClientError::Snapshot(_) => true,
        }
    }
}

#[derive(Clone, Debug)]
pub struct ClientOptions {
    pub nodes: BTreeMap<NodeId, SocketAddr>,
    pub timeout: Duration,
}

/// A cloneable handle; clones share connections, the leader cache and the
/// sequence counter, so concurrent appends pipeline over one stream per node.
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    endpoint: ClientEndpoint,
    /// Where each node listens: the ones given, and members learned from a
    /// configuration since (`members.rs`). Only grows.
    nodes: std::sync::RwLock<BTreeMap<NodeId, SocketAddr>>,
    timeout: Duration,
    /// Held from taking a seq until its request is on a connection's queue,
    /// so seq order is the order requests reach the stream, whichever tasks
    /// share this client. Settling never takes it: a settle waiting behind
    /// a caller that waits for settles would deadlock.
    order: tokio::sync::Mutex<()>,
    /// The session and its seqs; never held across an await.
    session: Mutex<seqs::Seqs>,
    /// Signalled whenever an append settles (the window may have room).
    settled: tokio::sync::Notify,
    next_req: AtomicU64,
    leader: Mutex<Option<NodeId>>,
    /// Each node's session, as the channel its requests are queued on.
    /// Invariant: one per entry of `nodes`.
    sessions: Mutex<BTreeMap<NodeId, Arc<tokio::sync::Mutex<Slot>>>>,
    /// The embedding process's own node, reached in process, not over QUIC.
    local: Option<LocalPort>,
    /// When this client last asked a node where the members are.
    discovered: Mutex<Option<std::time::Instant>>,
}

impl Client {
    pub fn new(tls: ClientTls, options: ClientOptions) -> Result<Client, ClientError> {
        Client::build(tls, options, None)
    }

    /// A client whose requests to `local`'s node go to its loop in process
    /// (no QUIC, no TLS, no serialization), and to every other node over
    /// the network. One session and one leader cache span both, so an
    /// append retried after a leader change keeps its `(client_id, seq)`
    /// whichever way it goes. Subscriptions still use QUIC.
    pub fn with_local(
        tls: ClientTls,
        options: ClientOptions,
        local: LocalPort,
    ) -> Result<Client, ClientError> {
        if !options.nodes.contains_key(&local.node_id()) {
            return Err(ClientError::Unreachable(format!(
                "the local node {} is not among the client's nodes",
                local.node_id()
            )));
        }
        Client::build(tls, options, Some(local))
    }

    fn build(
        tls: ClientTls,
        options: ClientOptions,
        local: Option<LocalPort>,
    ) -> Result<Client, ClientError> {
        if options.nodes.is_empty() {
            return Err(ClientError::Unreachable(
                "the client was given no nodes".into(),
            ));
        }
        let bind: SocketAddr = ([0, 0, 0, 0], 0).into();
        let endpoint = ClientEndpoint::with_config(tls, paxlog_net::NetConfig::liveness(), bind)
            .map_err(|e| ClientError::Tls(e.to_string()))?;
        let sessions = options
            .nodes
            .keys()
            .map(|&id| (id, Arc::default()))
            .collect();
        Ok(Client {
            inner: Arc::new(Inner {
                endpoint,
                nodes: std::sync::RwLock::new(options.nodes),
                timeout: options.timeout,
                order: tokio::sync::Mutex::new(()),
                session: Mutex::new(seqs::Seqs::default()),
                settled: tokio::sync::Notify::new(),
                next_req: AtomicU64::new(1),
                leader: Mutex::new(None),
                sessions: Mutex::new(sessions),
                local,
                discovered: Mutex::new(None),
            }),
        })
    }

    /// A client for the cluster file's nodes, presenting the certificate of
    /// `client` (or the file's `client`).
    pub fn from_cluster_file(
        file: &ClusterFile,
        client: Option<&str>,
        timeout: Duration,
    ) -> Result<Client, ClientError> {
        let name = client.or(file.client.as_deref()).ok_or_else(|| {
            ClientError::Tls(
                "no client name: set `client` in the cluster file or pass --client".into(),
            )
        })?;
        let tls =
            ClientTls::load(&file.certs, name).map_err(|e| ClientError::Tls(e.to_string()))?;
        Client::new(
            tls,
            ClientOptions {
                nodes: file.addrs(),
                timeout,
            },
        )
    }

    /// The current session's id (the index its registration was chosen
    /// at), once the first append opened it.
    pub async fn client_id(&self) -> Option<u64> {
        self.seqs(|s| s.id())
    }

    /// Continues a session another process opened (and persisted with the
    /// seq it would use next): its retries keep exactly-once across
    /// processes. The caller must not run two clients on one session.
    pub async fn resume_session(&self, client_id: u64, next_seq: u64) {
        let _order = self.inner.order.lock().await;
        self.seqs(|s| *s = seqs::Seqs::resumed(client_id, next_seq));
    }

    /// Appends one value; resolves with its chosen index.
    pub async fn append(&self, payload: Bytes) -> Result<Index, ClientError> {
        self.append_with(payload, None).await
    }

    /// Appends only if the leader's ballot is still `expected` (fencing).
    pub async fn append_if(&self, expected: Ballot, payload: Bytes) -> Result<Index, ClientError> {
        self.append_with(payload, Some(expected)).await
    }

    async fn append_with(
        &self,
        payload: Bytes,
        expected_ballot: Option<Ballot>,
    ) -> Result<Index, ClientError> {
        self.start_append(payload, expected_ballot).await.await
    }

    /// Takes the next seq and queues the append's first attempt; the returned
    /// future follows it to its index. Awaiting this for one value after
    /// another puts them on the stream in seq order while their answers
    /// overlap.
    async fn start_append(&self, payload: Bytes, expected_ballot: Option<Ballot>) -> Appending<'_> {
        if let Err(error) = check_size(&payload) {
            return Box::pin(std::future::ready(Err(error)));
        }
        let fresh = self
            .start_fresh(|client_id, seq, floor| {
                move |req| Request::Append {
                    req,
                    client_id,
                    seq,
                    floor,
                    payload: payload.clone(),
                    expected_ballot,
                }
            })
            .await;
        match fresh {
            Ok((started, make, taken)) => Box::pin(self.follow_append(started, make, taken)),
            Err(error) => Box::pin(std::future::ready(Err(error))),
        }
    }

    /// Appends many values, pipelined with at most `window` in flight; the
    /// results are in input order.
    pub async fn append_all(
        &self,
        payloads: Vec<Bytes>,
        window: usize,
    ) -> Vec<Result<Index, ClientError>> {
        let mut payloads = payloads.into_iter();
        let mut results = Vec::with_capacity(payloads.len());
        // Find the leader with the first value alone: a window of requests
        // spread over followers would be redirected and land out of order.
        if self.cached_leader().is_none() {
            if let Some(first) = payloads.next() {
                results.push(self.append(first).await);
            }
        }
        let mut in_flight = FuturesOrdered::new();
        for payload in payloads {
            if in_flight.len() >= window.max(1) {
                results.extend(in_flight.next().await);
            }
            // One at a time, so the values reach the stream in input order: a
            // set of concurrently polled appends would queue in no fixed order.
            // What is in flight is polled meanwhile: starting may wait for
            // appends to settle (the session's window, or a broken session).
            let start = self.start_append(payload, None);
            tokio::pin!(start);
            let appending = loop {
                tokio::select! {
                    biased;
                    appending = &mut start => break appending,
                    Some(result) = in_flight.next(), if !in_flight.is_empty() => results.push(result),
                }
            };
            in_flight.push_back(appending);
        }
        while let Some(result) = in_flight.next().await {
            results.push(result);
        }
        results
    }

    /// Trims the log up to and including `upto` (a replicated command).
    /// Idempotent, so it takes no seq of the session.
    pub async fn trim(&self, upto: Index) -> Result<Index, ClientError> {
        self.to_leader_index(|req| Request::Trim { req, upto })
            .await
    }

    /// The linearizable tail and the leader's ballot: a chosen index at or
    /// above every append acknowledged before this call, confirmed by the
    /// leader with one heartbeat round to a quorum; nothing is written.
    pub async fn tail(&self) -> Result<(Index, Ballot), ClientError> {
        let response = self.to_leader(|req| Request::Tail { req }).await?;
        match response {
            Response::Tail { index, ballot, .. } => Ok((index, ballot)),
            other => Err(unexpected(&other)),
        }
    }

    fn next_req(&self) -> u64 {
        self.inner.next_req.fetch_add(1, Ordering::Relaxed)
    }

    /// The session's seqs, under their lock. A panic elsewhere cannot leave
    /// them half-updated (each use is one small step), so poison is ignored.
    fn seqs<T>(&self, f: impl FnOnce(&mut seqs::Seqs) -> T) -> T {
        let mut seqs = self
            .inner
            .session
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut seqs)
    }

    fn cached_leader(&self) -> Option<NodeId> {
        self.inner.leader.lock().map(|l| *l).unwrap_or(None)
    }

    fn set_leader(&self, leader: Option<NodeId>) {
        if let Ok(mut l) = self.inner.leader.lock() {
            *l = leader.filter(|id| self.node_addr(*id).is_some());
        }
    }
}

/// A value that cannot fit in one frame is refused before anything is sent.
/// The client assumes the core's default limits: a node with a smaller value
/// limit still answers `TooLarge` itself.
fn check_size(payload: &Bytes) -> Result<(), ClientError> {
    let max = Limits::default().client_payload_bytes_max();
    if payload.len() > max {
        return Err(ClientError::Op(OpError::TooLarge {
            bytes: payload.len() as u64,
            max: max as u64,
        }));
    }
    Ok(())
}

/// An append whose first attempt is queued, on its way to its index.
type Appending<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Index, ClientError>> + Send + 'a>>;

/// One node's session: its request channel once connected, or when and why
/// the last connect failed (`session.rs` owns what they mean).
#[derive(Debug, Default)]
struct Slot {
    tx: Option<tokio::sync::mpsc::Sender<Pending>>,
    failed: Option<(std::time::Instant, ClientError)>,
}

/// A request queued on a session, with where its answer goes.
type Pending = (Request, oneshot::Sender<Result<Response, ClientError>>);

/// How many seqs a session may have unsettled: the cluster's default
/// `session_window` (a node with a smaller one answers `Busy` beyond it).
fn window() -> u64 {
    Limits::default().session_window
}

fn frame_max() -> usize {
    Limits::default().frame_bytes_max
}

fn unexpected(response: &Response) -> ClientError {
    match response {
        Response::Error { error, .. } => ClientError::Op(error.clone()),
        other => ClientError::Protocol(format!("{other:?}")),
    }
}
