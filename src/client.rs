//! The network client: mutual TLS to the cluster, leader discovery (redirect
//! with a hint, then cached), pipelined requests over one stream per node,
//! retries with exponential backoff and jitter that keep the same
//! `(client_id, seq)`, so a retried append is never appended twice.
//!
//! Errors say whether an append surely did not happen or may have happened
//! ([`ClientError::surely_not_appended`]).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::{self, Stream, StreamExt};
use paxlog_net::{ClientEndpoint, ClientTls, FrameReader, FrameWriter};
use paxlog_storage::{Ballot, Index, NodeId};
use rand::Rng;
use tokio::sync::{mpsc, oneshot};

use crate::cluster::ClusterFile;
use crate::core::OpError;
use crate::proto::{Entry, NodeStatus, Request, Response};

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on reaching one node, so a dead node costs little of the caller's timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const BACKOFF_MIN: Duration = Duration::from_millis(20);
const BACKOFF_MAX: Duration = Duration::from_millis(500);
/// Requests one session keeps in flight before callers wait.
const SESSION_QUEUE_CAPACITY: usize = 4096;
const READ_CHUNK_ENTRIES: u32 = 1024;

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
}

impl ClientError {
    /// True when the request surely had no effect on the log: the node's own
    /// rule for its answers, and for the client's cases only a lost
    /// connection or a timeout leave the outcome open.
    pub fn surely_not_appended(&self) -> bool {
        match self {
            ClientError::Op(e) => e.surely_not_appended(),
            ClientError::Indeterminate(_) | ClientError::Timeout(_) => false,
            ClientError::Unreachable(_) | ClientError::Protocol(_) | ClientError::Tls(_) => true,
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
    nodes: BTreeMap<NodeId, SocketAddr>,
    timeout: Duration,
    client_id: u64,
    next_seq: AtomicU64,
    next_req: AtomicU64,
    leader: Mutex<Option<NodeId>>,
    sessions: tokio::sync::Mutex<BTreeMap<NodeId, Session>>,
}

impl Client {
    pub fn new(tls: ClientTls, options: ClientOptions) -> Result<Client, ClientError> {
        if options.nodes.is_empty() {
            return Err(ClientError::Unreachable(
                "the client was given no nodes".into(),
            ));
        }
        let bind: SocketAddr = ([0, 0, 0, 0], 0).into();
        let endpoint = ClientEndpoint::with_config(tls, paxlog_net::NetConfig::liveness(), bind)
            .map_err(|e| ClientError::Tls(e.to_string()))?;
        Ok(Client {
            inner: Arc::new(Inner {
                endpoint,
                nodes: options.nodes,
                timeout: options.timeout,
                client_id: rand::thread_rng().gen(),
                next_seq: AtomicU64::new(1),
                next_req: AtomicU64::new(1),
                leader: Mutex::new(None),
                sessions: tokio::sync::Mutex::new(BTreeMap::new()),
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

    pub fn client_id(&self) -> u64 {
        self.inner.client_id
    }

    /// Appends one value; resolves with its chosen index.
    pub async fn append(&self, payload: Bytes) -> Result<Index, ClientError> {
        self.append_with(payload, None).await
    }

    /// Appends only if the leader's ballot is still `expected` (fencing).
    pub async fn append_if(&self, expected: Ballot, payload: Bytes) -> Result<Index, ClientError> {
        self.append_with(payload, Some(expected)).await
    }

    /// Appends with an explicit `seq`, for a caller that retries across
    /// processes; `seq` must be unique per client id.
    pub async fn append_seq(&self, seq: u64, payload: Bytes) -> Result<Index, ClientError> {
        check_size(&payload)?;
        self.submit(move |req, client_id| Request::Append {
            req,
            client_id,
            seq,
            payload: payload.clone(),
            expected_ballot: None,
        })
        .await
    }

    async fn append_with(
        &self,
        payload: Bytes,
        expected_ballot: Option<Ballot>,
    ) -> Result<Index, ClientError> {
        check_size(&payload)?;
        let seq = self.inner.next_seq.fetch_add(1, Ordering::Relaxed);
        self.submit(move |req, client_id| Request::Append {
            req,
            client_id,
            seq,
            payload: payload.clone(),
            expected_ballot,
        })
        .await
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
        let rest: Vec<_> = stream::iter(payloads.map(|p| self.append(p)))
            .buffered(window.max(1))
            .collect()
            .await;
        results.extend(rest);
        results
    }

    /// Trims the log up to and including `upto` (a replicated command).
    pub async fn trim(&self, upto: Index) -> Result<Index, ClientError> {
        let seq = self.inner.next_seq.fetch_add(1, Ordering::Relaxed);
        self.submit(move |req, client_id| Request::Trim {
            req,
            client_id,
            seq,
            upto,
        })
        .await
    }

    /// The highest chosen index, confirmed by the leader.
    pub async fn tail(&self) -> Result<(Index, Ballot), ClientError> {
        let response = self.to_leader(|req| Request::Tail { req }).await?;
        match response {
            Response::Tail { index, ballot, .. } => Ok((index, ballot)),
            other => Err(unexpected(&other)),
        }
    }

    /// Sends a leader-only request, following redirects until the deadline.
    async fn submit(&self, make: impl Fn(u64, u64) -> Request) -> Result<Index, ClientError> {
        let client_id = self.inner.client_id;
        match self.to_leader(|req| make(req, client_id)).await? {
            Response::Appended { index, .. } => Ok(index),
            other => Err(unexpected(&other)),
        }
    }

    async fn to_leader(&self, make: impl Fn(u64) -> Request) -> Result<Response, ClientError> {
        let deadline = Instant::now() + self.inner.timeout;
        let mut backoff = BACKOFF_MIN;
        let mut maybe_applied: Option<String> = None;
        let mut last_error: Option<ClientError> = None;
        let mut unreachable: Option<ClientError> = None;
        let ids: Vec<NodeId> = self.inner.nodes.keys().copied().collect();
        let mut rotation = 0usize;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(match (maybe_applied, last_error.or(unreachable)) {
                    (Some(why), _) => ClientError::Indeterminate(why),
                    (None, Some(e)) => e,
                    (None, None) => ClientError::Timeout(self.inner.timeout),
                });
            }
            let target = self.cached_leader().unwrap_or_else(|| {
                rotation += 1;
                ids[(rotation - 1) % ids.len()]
            });
            let tx = match self.session(target).await {
                Ok(tx) => tx,
                Err(e) => {
                    // Nothing was sent: this attempt surely did not append. What
                    // a reachable node said explains more than this, so keep that.
                    self.set_leader(None);
                    unreachable = Some(e);
                    sleep_backoff(&mut backoff).await;
                    continue;
                }
            };
            let req = self.inner.next_req.fetch_add(1, Ordering::Relaxed);
            let remaining = deadline.saturating_duration_since(Instant::now());
            let attempt = tokio::time::timeout(remaining, self.send(target, tx, make(req))).await;
            let error = match attempt {
                Err(_) => {
                    maybe_applied.get_or_insert_with(|| "no answer before the timeout".into());
                    continue;
                }
                Ok(Ok(Response::Error { error, .. })) => error,
                Ok(Ok(response)) => {
                    self.set_leader(Some(target));
                    return Ok(response);
                }
                Ok(Err(e)) => {
                    tracing::debug!(node = target, error = %e, "session failed");
                    // The request may have reached the node before the connection failed.
                    self.drop_session(target).await;
                    self.set_leader(None);
                    maybe_applied.get_or_insert_with(|| e.to_string());
                    last_error = Some(e);
                    sleep_backoff(&mut backoff).await;
                    continue;
                }
            };
            tracing::debug!(node = target, %error, "append attempt refused; retrying or failing");
            match error {
                OpError::NotLeader {
                    leader_hint: Some(hint),
                } if hint != target => {
                    self.set_leader(Some(hint));
                }
                OpError::NotLeader { .. } => {
                    self.set_leader(None);
                    last_error = Some(ClientError::Op(OpError::NoQuorum));
                    sleep_backoff(&mut backoff).await;
                }
                OpError::NoQuorum => {
                    self.set_leader(None);
                    last_error = Some(ClientError::Op(OpError::NoQuorum));
                    sleep_backoff(&mut backoff).await;
                }
                OpError::Busy => {
                    last_error = Some(ClientError::Op(OpError::Busy));
                    sleep_backoff(&mut backoff).await;
                }
                OpError::Indeterminate | OpError::ShuttingDown | OpError::Failed(_) => {
                    maybe_applied.get_or_insert_with(|| error.to_string());
                    self.set_leader(None);
                    sleep_backoff(&mut backoff).await;
                }
                OpError::TooLarge { bytes, max } => {
                    return Err(ClientError::Op(OpError::TooLarge { bytes, max }));
                }
                OpError::Fenced { current } => {
                    return Err(match maybe_applied {
                        Some(why) => ClientError::Indeterminate(why),
                        None => ClientError::Op(OpError::Fenced { current }),
                    })
                }
                OpError::Trimmed { index, first } => {
                    return Err(ClientError::Op(OpError::Trimmed { index, first }))
                }
                OpError::BadRequest(why) => return Err(ClientError::Op(OpError::BadRequest(why))),
            }
        }
    }

    /// Chosen user entries with `from <= index <= to` (to = chosen index when
    /// `None`), from any node that answers.
    pub async fn read(&self, from: Index, to: Option<Index>) -> Result<Vec<Entry>, ClientError> {
        // Without an end, read up to the linearizable tail: everything
        // acknowledged before this call is included, from whichever node answers.
        let to = match to {
            Some(to) => to,
            None => self.tail().await?.0,
        };
        let mut out = Vec::new();
        let mut next = from.max(1);
        let deadline = Instant::now() + self.inner.timeout;
        let mut backoff = BACKOFF_MIN;
        while next <= to {
            let (entries, after, _chosen) = self.read_chunk(next, to).await?;
            out.extend(entries);
            if after > next {
                next = after;
            } else if Instant::now() < deadline {
                // The node answering has not learned `next` yet; it will.
                sleep_backoff(&mut backoff).await;
            } else {
                return Err(ClientError::Timeout(self.inner.timeout));
            }
        }
        Ok(out)
    }

    async fn read_chunk(
        &self,
        from: Index,
        to: Index,
    ) -> Result<(Vec<Entry>, Index, Index), ClientError> {
        let deadline = Instant::now() + self.inner.timeout;
        let mut last = ClientError::Unreachable("no node answered".into());
        let mut backoff = BACKOFF_MIN;
        while Instant::now() < deadline {
            // The leader knows the most; any node is safe for chosen entries.
            let mut order: Vec<NodeId> = self.inner.nodes.keys().copied().collect();
            if let Some(leader) = self.cached_leader() {
                order.retain(|id| *id != leader);
                order.insert(0, leader);
            }
            for id in order {
                let req = self.inner.next_req.fetch_add(1, Ordering::Relaxed);
                let request = Request::Read {
                    req,
                    from,
                    to,
                    entries_max: READ_CHUNK_ENTRIES,
                };
                let remaining = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(remaining, self.request(id, request)).await {
                    Ok(Ok(Response::Entries {
                        entries,
                        next,
                        chosen_index,
                        ..
                    })) => return Ok((entries, next, chosen_index)),
                    Ok(Ok(Response::Error {
                        error: OpError::Trimmed { index, first },
                        ..
                    })) => return Err(ClientError::Op(OpError::Trimmed { index, first })),
                    Ok(Ok(other)) => last = unexpected(&other),
                    Ok(Err(e)) => {
                        self.drop_session(id).await;
                        last = e;
                    }
                    Err(_) => last = ClientError::Timeout(self.inner.timeout),
                }
            }
            sleep_backoff(&mut backoff).await;
        }
        Err(last)
    }

    /// Every chosen user entry from `from` on, in order, without gaps or
    /// repeats, following new entries as they are chosen. Survives node
    /// failures by resuming elsewhere from the next index.
    pub fn subscribe(&self, from: Index) -> impl Stream<Item = Result<Entry, ClientError>> + '_ {
        stream::unfold(
            (
                from.max(1),
                std::collections::VecDeque::<Entry>::new(),
                None::<Subscription>,
            ),
            move |(mut next, mut buffered, mut sub)| async move {
                loop {
                    if let Some(entry) = buffered.pop_front() {
                        return Some((Ok(entry), (next, buffered, sub)));
                    }
                    if sub.is_none() {
                        match self.open_subscription(next).await {
                            Ok(s) => sub = Some(s),
                            Err(e) => return Some((Err(e), (next, buffered, None))),
                        }
                    }
                    let Some(s) = sub.as_mut() else { continue };
                    match s.reader.read().await {
                        Ok(Some(Response::Entries {
                            entries,
                            next: after,
                            ..
                        })) => {
                            for entry in entries {
                                // Invariant: a subscription never repeats or reorders.
                                if entry.index >= next {
                                    buffered.push_back(entry);
                                }
                            }
                            next = next.max(after);
                        }
                        Ok(Some(Response::Error {
                            error: OpError::Trimmed { index, first },
                            ..
                        })) => {
                            return Some((
                                Err(ClientError::Op(OpError::Trimmed { index, first })),
                                (next, buffered, None),
                            ))
                        }
                        Ok(_) | Err(_) => {
                            // Resume from `next` on a fresh stream, possibly another node.
                            sub = None;
                            let mut backoff = BACKOFF_MIN;
                            sleep_backoff(&mut backoff).await;
                        }
                    }
                }
            },
        )
    }

    async fn open_subscription(&self, from: Index) -> Result<Subscription, ClientError> {
        let deadline = Instant::now() + self.inner.timeout;
        let mut last = ClientError::Unreachable("no node answered".into());
        let ids: Vec<NodeId> = self.inner.nodes.keys().copied().collect();
        let mut backoff = BACKOFF_MIN;
        while Instant::now() < deadline {
            for id in &ids {
                match self.connect(*id).await {
                    Ok(conn) => match conn.open_bi().await {
                        Ok((send, recv)) => {
                            let mut writer = FrameWriter::<Request>::new(send, frame_max());
                            let req = self.inner.next_req.fetch_add(1, Ordering::Relaxed);
                            if let Err(e) = writer.write(&Request::Subscribe { req, from }).await {
                                last = ClientError::Unreachable(e.to_string());
                                continue;
                            }
                            return Ok(Subscription {
                                _writer: writer,
                                reader: FrameReader::new(recv, frame_max()),
                            });
                        }
                        Err(e) => last = ClientError::Unreachable(e.to_string()),
                    },
                    Err(e) => last = e,
                }
            }
            sleep_backoff(&mut backoff).await;
        }
        Err(last)
    }

    /// Status of every node; unreachable ones carry their error.
    pub async fn status_all(&self) -> Vec<(NodeId, SocketAddr, Result<NodeStatus, ClientError>)> {
        let mut out = Vec::new();
        for (id, addr) in &self.inner.nodes {
            let req = self.inner.next_req.fetch_add(1, Ordering::Relaxed);
            let per_node = self.inner.timeout.min(Duration::from_secs(2));
            let result =
                match tokio::time::timeout(per_node, self.request(*id, Request::Status { req }))
                    .await
                {
                    Ok(Ok(Response::Status { status, .. })) => Ok(status),
                    Ok(Ok(other)) => Err(unexpected(&other)),
                    Ok(Err(e)) => {
                        self.drop_session(*id).await;
                        Err(e)
                    }
                    Err(_) => Err(ClientError::Timeout(per_node)),
                };
            out.push((*id, *addr, result));
        }
        out
    }

    fn cached_leader(&self) -> Option<NodeId> {
        self.inner.leader.lock().map(|l| *l).unwrap_or(None)
    }

    fn set_leader(&self, leader: Option<NodeId>) {
        if let Ok(mut l) = self.inner.leader.lock() {
            *l = leader.filter(|id| self.inner.nodes.contains_key(id));
        }
    }

    async fn connect(&self, id: NodeId) -> Result<quinn::Connection, ClientError> {
        let addr = *self
            .inner
            .nodes
            .get(&id)
            .ok_or_else(|| ClientError::Unreachable(format!("unknown node {id}")))?;
        self.inner
            .endpoint
            .connect(addr, id)
            .await
            .map_err(|e| ClientError::Unreachable(format!("node {id} at {addr}: {e}")))
    }

    /// The request channel of the session with node `id`, connecting if needed.
    /// Failing here means nothing was sent.
    async fn session(&self, id: NodeId) -> Result<mpsc::Sender<Pending>, ClientError> {
        let mut sessions = self.inner.sessions.lock().await;
        match sessions.get(&id) {
            Some(s) if !s.tx.is_closed() => Ok(s.tx.clone()),
            _ => {
                let connecting = async {
                    let conn = self.connect(id).await?;
                    Session::start(conn, id).await
                };
                let session = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
                    .await
                    .map_err(|_| {
                        ClientError::Unreachable(format!(
                            "node {id}: no connection within {CONNECT_TIMEOUT:?}"
                        ))
                    })??;
                let tx = session.tx.clone();
                sessions.insert(id, session);
                Ok(tx)
            }
        }
    }

    /// Sends on an established session; failing here means the request may
    /// have reached the node.
    async fn send(
        &self,
        id: NodeId,
        tx: mpsc::Sender<Pending>,
        request: Request,
    ) -> Result<Response, ClientError> {
        let (reply_tx, reply_rx) = oneshot::channel();
        tx.send((request, reply_tx))
            .await
            .map_err(|_| ClientError::Unreachable(format!("connection to node {id} closed")))?;
        reply_rx
            .await
            .map_err(|_| ClientError::Unreachable(format!("connection to node {id} lost")))?
    }

    async fn request(&self, id: NodeId, request: Request) -> Result<Response, ClientError> {
        let tx = self.session(id).await?;
        self.send(id, tx, request).await
    }

    async fn drop_session(&self, id: NodeId) {
        self.inner.sessions.lock().await.remove(&id);
    }
}

/// Room a frame needs besides the payload (request fields, postcard framing).
const FRAME_OVERHEAD_BYTES: usize = 1024;

/// A value that cannot fit in one frame is refused before anything is sent.
fn check_size(payload: &Bytes) -> Result<(), ClientError> {
    let max = frame_max() - FRAME_OVERHEAD_BYTES;
    if payload.len() > max {
        return Err(ClientError::Op(OpError::TooLarge {
            bytes: payload.len() as u64,
            max: max as u64,
        }));
    }
    Ok(())
}

fn frame_max() -> usize {
    paxlog_net::FRAME_BYTES_MAX_DEFAULT
}

fn unexpected(response: &Response) -> ClientError {
    match response {
        Response::Error { error, .. } => ClientError::Op(error.clone()),
        other => ClientError::Protocol(format!("{other:?}")),
    }
}

async fn sleep_backoff(backoff: &mut Duration) {
    let jitter = rand::thread_rng().gen_range(0..=backoff.as_millis() as u64 / 2);
    tokio::time::sleep(*backoff + Duration::from_millis(jitter)).await;
    *backoff = (*backoff * 2).min(BACKOFF_MAX);
}

struct Subscription {
    _writer: FrameWriter<Request>,
    reader: FrameReader<Response>,
}

type Pending = (Request, oneshot::Sender<Result<Response, ClientError>>);
/// Requests sent on a session and not yet answered, by `req` id.
type Waiting = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Response, ClientError>>>>>;

/// One connection to one node with one pipelined request stream.
#[derive(Debug)]
struct Session {
    tx: mpsc::Sender<Pending>,
}

impl Session {
    async fn start(conn: quinn::Connection, id: NodeId) -> Result<Session, ClientError> {
        let (send, recv) = conn.open_bi().await.map_err(|e| {
            ClientError::Unreachable(format!(
                "node {id}: {e} (is this client's certificate accepted?)"
            ))
        })?;
        let mut writer = FrameWriter::<Request>::new(send, frame_max());
        let mut reader = FrameReader::<Response>::new(recv, frame_max());
        let (tx, mut rx) = mpsc::channel::<Pending>(SESSION_QUEUE_CAPACITY);
        let waiting: Waiting = Arc::new(Mutex::new(HashMap::new()));
        let waiting_reader = waiting.clone();
        let reader_task = tokio::spawn(async move {
            let reason = loop {
                match reader.read().await {
                    Ok(Some(response)) => {
                        let waiter = waiting_reader
                            .lock()
                            .ok()
                            .and_then(|mut w| w.remove(&response.req()));
                        if let Some(waiter) = waiter {
                            let _ = waiter.send(Ok(response));
                        }
                    }
                    Ok(None) => break "stream closed by the node".to_string(),
                    Err(e) => break e.to_string(),
                }
            };
            let stranded: Vec<_> = waiting_reader
                .lock()
                .map(|mut w| w.drain().collect())
                .unwrap_or_default();
            for (_, waiter) in stranded {
                let _ = waiter.send(Err(ClientError::Unreachable(format!(
                    "node {id}: {reason}"
                ))));
            }
        });
        tokio::spawn(async move {
            while let Some((request, reply)) = rx.recv().await {
                if let Ok(mut w) = waiting.lock() {
                    w.insert(request.req(), reply);
                }
                if let Err(e) = writer.write(&request).await {
                    let stranded: Vec<_> = waiting
                        .lock()
                        .map(|mut w| w.drain().collect())
                        .unwrap_or_default();
                    for (_, waiter) in stranded {
                        let _ =
                            waiter.send(Err(ClientError::Unreachable(format!("node {id}: {e}"))));
                    }
                    break;
                }
            }
            reader_task.abort();
            conn.close(0u32.into(), b"client done");
        });
        Ok(Session { tx })
    }
}
