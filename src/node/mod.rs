//! The node runtime: the thin I/O shell that drives the sans-IO core.
//!
//! One task owns the [`Replica`] and is the only place that touches it. Every
//! other part talks to it over bounded channels:
//! - peer messages arrive from `paxlog-net`'s [`PeerReceiver`];
//! - client connections ([`clients`]) send [`Command`]s with a reply channel;
//! - the writer thread ([`writer`]) group-commits `Persist` batches and
//!   reports their tickets durable;
//! - a ticker drives `Replica::tick`.
//!
//! After every burst of inputs the loop drains the core's outputs in the order
//! its calling protocol asks for: writes, messages, chosen entries, replies.

mod clients;
pub mod writer;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use paxlog_net::{NetConfig, NodeEndpoint, NodeTls, PeerReceiver, PeerSender};
use paxlog_storage::{Index, NodeId, ReadLimit, RocksStore, Store};
use tokio::sync::{mpsc, oneshot, watch};

use crate::core::OpError;
use crate::core::{self, Message, Replica, Role};
use crate::proto::{Entry, NodeStatus, PeerStatus};

/// How often the loop calls `Replica::tick`.
pub const TICK_INTERVAL_MS: u64 = 10;
/// Inputs taken in one burst before outputs are drained (batching without starving).
const BURST_INPUTS_MAX: usize = 1024;
const CLIENT_QUEUE_CAPACITY: usize = 4096;
const WRITE_QUEUE_CAPACITY: usize = 1024;

/// Everything a node needs to run.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub cluster_id: String,
    pub node_id: NodeId,
    pub listen: SocketAddr,
    /// Every member, including this node.
    pub members: BTreeMap<NodeId, SocketAddr>,
    pub certs_dir: PathBuf,
    pub data_dir: PathBuf,
    pub admin: Option<SocketAddr>,
    pub core: core::Config,
    pub net: NetConfig,
}

impl NodeConfig {
    pub fn new(
        cluster_id: String,
        node_id: NodeId,
        members: BTreeMap<NodeId, SocketAddr>,
        certs_dir: PathBuf,
        data_dir: PathBuf,
    ) -> Result<NodeConfig, NodeError> {
        let listen = *members
            .get(&node_id)
            .ok_or(NodeError::NotAMember(node_id))?;
        let core = core::Config::new(node_id, members.keys().copied().collect());
        Ok(NodeConfig {
            cluster_id,
            node_id,
            listen,
            members,
            certs_dir,
            data_dir,
            admin: None,
            core,
            net: NetConfig::liveness(),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("node {0} is not a member of the cluster it was given")]
    NotAMember(NodeId),
    #[error("a cluster has 3 or 5 members (or 1 for a toy); this one has {0}")]
    BadClusterSize(usize),
    #[error(transparent)]
    Storage(#[from] paxlog_storage::StoreError),
    #[error(transparent)]
    Net(#[from] paxlog_net::NetError),
    #[error("core: {0}")]
    Core(String),
    #[error(transparent)]
    Admin(#[from] crate::admin::AdminError),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("storage failed; the node stopped without acknowledging anything more: {0}")]
    Fatal(String),
}

/// A request from a client connection to the loop.
#[derive(Debug)]
pub(crate) enum Command {
    Propose {
        client_id: u64,
        seq: u64,
        command: core::ProposalCommand,
        expected_ballot: Option<paxlog_storage::Ballot>,
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

/// A running node. Dropping it does not stop the node; call [`NodeHandle::shutdown`].
#[derive(Debug)]
pub struct NodeHandle {
    local_addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    shutdown: Arc<watch::Sender<bool>>,
    task: tokio::task::JoinHandle<Result<(), NodeError>>,
    chosen: watch::Receiver<Index>,
}

impl NodeHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// The highest index this node knows chosen, updated as it learns more.
    pub fn chosen_index(&self) -> watch::Receiver<Index> {
        self.chosen.clone()
    }

    /// A handle that asks the node to stop, usable while another task waits.
    pub fn stopper(&self) -> Stopper {
        Stopper(self.shutdown.clone())
    }

    /// Stops the node gracefully and waits for it.
    pub async fn shutdown(self) -> Result<(), NodeError> {
        let _ = self.shutdown.send(true);
        self.wait().await
    }

    /// Waits until the node stops (after shutdown or a fatal error).
    pub async fn wait(self) -> Result<(), NodeError> {
        match self.task.await {
            Ok(result) => result,
            Err(join) => Err(NodeError::Fatal(format!("node task panicked: {join}"))),
        }
    }
}

/// Asks a node to stop gracefully.
#[derive(Clone, Debug)]
pub struct Stopper(Arc<watch::Sender<bool>>);

impl Stopper {
    pub fn stop(&self) {
        let _ = self.0.send(true);
    }
}

/// Opens the store, binds the endpoint and starts the node.
pub async fn start(config: NodeConfig) -> Result<NodeHandle, NodeError> {
    let n = config.members.len();
    if !matches!(n, 1 | 3 | 5) {
        return Err(NodeError::BadClusterSize(n));
    }
    if !config.members.contains_key(&config.node_id) {
        return Err(NodeError::NotAMember(config.node_id));
    }
    let identity = paxlog_storage::Identity {
        cluster_id: config.cluster_id.clone(),
        node_id: config.node_id,
    };
    let store = Arc::new(RocksStore::open(&config.data_dir, identity)?);
    let tls = NodeTls::load(&config.certs_dir, config.node_id)?;
    let endpoint = NodeEndpoint::bind(config.listen, tls, config.net.clone())?;
    let local_addr = endpoint.local_addr();
    let peers: BTreeMap<NodeId, SocketAddr> = config
        .members
        .iter()
        .filter(|(id, _)| **id != config.node_id)
        .map(|(id, addr)| (*id, *addr))
        .collect();
    let (peer_tx, peer_rx) = endpoint.peers::<Message>(peers)?;

    let seed = seed_from_clock(config.node_id);
    let started = Instant::now();
    let replica = Replica::new(config.core.clone(), store.clone(), seed, 0)
        .map_err(|e| NodeError::Core(e.to_string()))?;

    let (client_tx, client_rx) = mpsc::channel(CLIENT_QUEUE_CAPACITY);
    let (write_tx, write_rx) = mpsc::channel(WRITE_QUEUE_CAPACITY);
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let writer = writer::spawn(store.clone(), write_rx, done_tx)?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    // Readers follow what the driver has seen emitted, which starts again
    // from the trim point after a restart.
    let (chosen_tx, chosen_rx) = watch::channel(0);

    let admin_addr = match config.admin {
        Some(addr) => Some(crate::admin::serve(addr, client_tx.clone())?),
        None => None,
    };
    let endpoint = Arc::new(endpoint);
    let acceptor = clients::spawn_acceptor(
        endpoint.clone(),
        client_tx,
        chosen_rx.clone(),
        shutdown_rx.clone(),
    );

    let driver = Driver {
        node_id: config.node_id,
        replica,
        started,
        peer_tx,
        write_tx,
        writer: Some(writer),
        chosen_tx,
        replies: BTreeMap::new(),
        next_request: 1,
        last_role: None,
    };
    let task =
        tokio::spawn(driver.run(peer_rx, client_rx, done_rx, shutdown_rx, endpoint, acceptor));
    tracing::info!(node = config.node_id, %local_addr, "node started");
    Ok(NodeHandle {
        local_addr,
        admin_addr,
        shutdown: Arc::new(shutdown_tx),
        task,
        chosen: chosen_rx,
    })
}

fn seed_from_clock(node_id: NodeId) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ node_id.rotate_left(32)
}

struct Driver<S: Store + 'static> {
    node_id: NodeId,
    replica: Replica<Arc<S>>,
    started: Instant,
    peer_tx: PeerSender<Message>,
    write_tx: mpsc::Sender<core::Persist>,
    /// Joined on stop: RocksDB must be closed before the process exits, or its
    /// static teardown races the still-running writer ("pthread lock: Invalid argument").
    writer: Option<std::thread::JoinHandle<()>>,
    chosen_tx: watch::Sender<Index>,
    /// Invariant: holds exactly the proposals the core has not replied to yet.
    replies: BTreeMap<core::RequestId, oneshot::Sender<Result<Index, OpError>>>,
    next_request: core::RequestId,
    last_role: Option<Role>,
}

impl<S: Store + 'static> Driver<S> {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    async fn run(
        mut self,
        peer_rx: PeerReceiver<Message>,
        client_rx: mpsc::Receiver<Command>,
        done_rx: mpsc::UnboundedReceiver<writer::WriteDone>,
        shutdown: watch::Receiver<bool>,
        // Held so the endpoint (and its peer links) lives exactly as long as the loop.
        endpoint: Arc<NodeEndpoint>,
        acceptor: tokio::task::JoinHandle<()>,
    ) -> Result<(), NodeError> {
        let result = self.run_loop(peer_rx, client_rx, done_rx, shutdown).await;
        // The acceptor holds the other handle to the endpoint.
        acceptor.abort();
        let _ = acceptor.await;
        match Arc::try_unwrap(endpoint) {
            Ok(endpoint) => endpoint.shutdown().await,
            Err(_) => tracing::warn!(node = self.node_id, "endpoint still shared at stop"),
        }
        // Closing the channel ends the writer after its current write.
        let (closed, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut self.write_tx, closed));
        if let Some(writer) = self.writer.take() {
            let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        }
        result
    }

    async fn run_loop(
        &mut self,
        mut peer_rx: PeerReceiver<Message>,
        mut client_rx: mpsc::Receiver<Command>,
        mut done_rx: mpsc::UnboundedReceiver<writer::WriteDone>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), NodeError> {
        let mut ticker = tokio::time::interval(Duration::from_millis(TICK_INTERVAL_MS));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let result = loop {
            tokio::select! {
                _ = shutdown.changed() => break Ok(()),
                done = done_rx.recv() => match done {
                    Some(done) => {
                        if let Err(e) = self.on_write_done(done) {
                            break Err(e);
                        }
                        while let Ok(done) = done_rx.try_recv() {
                            if let Err(e) = self.on_write_done(done) {
                                return self.fail(e);
                            }
                        }
                    }
                    None => break Err(NodeError::Fatal("writer thread stopped".into())),
                },
                Some((from, message)) = peer_rx.recv() => {
                    let now = self.now_ms();
                    self.replica.on_message(from, message, now);
                    for _ in 0..BURST_INPUTS_MAX {
                        match peer_rx.try_recv() {
                            Some((from, message)) => self.replica.on_message(from, message, now),
                            None => break,
                        }
                    }
                }
                Some(command) = client_rx.recv() => {
                    self.on_command(command);
                    for _ in 0..BURST_INPUTS_MAX {
                        match client_rx.try_recv() {
                            Ok(command) => self.on_command(command),
                            Err(_) => break,
                        }
                    }
                }
                _ = ticker.tick() => {
                    let now = self.now_ms();
                    self.replica.tick(now);
                }
            }
            if let Err(e) = self.drain().await {
                break Err(e);
            }
        };
        match result {
            Ok(()) => {
                self.fail_pending(OpError::ShuttingDown);
                tracing::info!(node = self.node_id, "node stopped");
                Ok(())
            }
            Err(e) => self.fail(e),
        }
    }

    fn fail(&mut self, error: NodeError) -> Result<(), NodeError> {
        self.replica.on_storage_failed();
        self.fail_pending(OpError::Failed(error.to_string()));
        tracing::error!(node = self.node_id, %error, "node stopped after a fatal error");
        Err(error)
    }

    fn fail_pending(&mut self, error: OpError) {
        for (_, reply) in std::mem::take(&mut self.replies) {
            // The core may have sent these out: only the core knows; on stop
            // every pending one is indeterminate unless we are merely shutting down
            // before proposing, which the core does not tell apart.
            let _ = reply.send(Err(match &error {
                OpError::ShuttingDown => OpError::Indeterminate,
                other => other.clone(),
            }));
        }
    }

    fn on_write_done(&mut self, done: writer::WriteDone) -> Result<(), NodeError> {
        match done {
            writer::WriteDone::Durable(tickets) => {
                let now = self.now_ms();
                for ticket in tickets {
                    self.replica.on_persisted(ticket, now);
                }
                Ok(())
            }
            writer::WriteDone::Failed(error) => Err(NodeError::Fatal(error.to_string())),
        }
    }

    fn on_command(&mut self, command: Command) {
        let now = self.now_ms();
        match command {
            Command::Propose {
                client_id,
                seq,
                command,
                expected_ballot,
                reply,
            } => {
                let id = self.next_request;
                self.next_request += 1;
                self.replies.insert(id, reply);
                let proposal = core::Proposal {
                    id,
                    client_id,
                    seq,
                    command,
                    expected_ballot,
                };
                self.replica.propose(proposal, now);
                metrics::counter!("paxlog_appends_total").increment(1);
            }
            Command::Read {
                from,
                to,
                entries_max,
                reply,
            } => {
                let _ = reply.send(self.read(from, to, entries_max));
            }
            Command::Status { reply } => {
                let _ = reply.send(self.status(now));
            }
        }
    }

    fn read(&self, from: Index, to: Index, entries_max: usize) -> Result<ReadResult, OpError> {
        let limit = ReadLimit {
            entries_max: entries_max.max(1),
            bytes_max: READ_BYTES_MAX,
        };
        let run = self.replica.read_user_entries(from, to, limit)?;
        Ok(ReadResult {
            entries: run
                .entries
                .into_iter()
                .map(|(index, payload)| Entry { index, payload })
                .collect(),
            next: run.next,
            chosen_index: run.emitted_index,
        })
    }

    fn status(&self, now: u64) -> NodeStatus {
        let s = self.replica.status();
        let last_index = s.last_index;
        NodeStatus {
            id: s.node_id,
            role: s.role,
            ballot: s.ballot,
            leader: s.leader,
            chosen_index: s.chosen_index,
            last_index,
            trim_index: s.trim_index,
            peers: s
                .peers
                .iter()
                .map(|p| PeerStatus {
                    id: p.id,
                    lag_entries: (s.role == Role::Leader)
                        .then(|| last_index.saturating_sub(p.match_index)),
                    last_contact_ms: p.last_contact_ms.map(|t| now.saturating_sub(t)),
                })
                .collect(),
        }
    }

    async fn drain(&mut self) -> Result<(), NodeError> {
        while let Some(persist) = self.replica.poll_write() {
            if self.write_tx.send(persist).await.is_err() {
                return Err(NodeError::Fatal("writer thread stopped".into()));
            }
        }
        while let Some(out) = self.replica.poll_message() {
            // A full queue or a down peer drops the message; the protocol retransmits.
            if let Err(error) = self.peer_tx.try_send(out.to, out.message) {
                tracing::trace!(to = out.to, %error, "dropped a peer message");
            }
        }
        let mut emitted = None;
        while let Some(entry) = self.replica.poll_chosen() {
            if entry.duplicate_of.is_some() {
                metrics::counter!("paxlog_duplicate_appends_total").increment(1);
            }
            emitted = Some(entry.index);
        }
        if let Some(index) = emitted {
            // The node applies nothing itself: readers go through the core.
            self.replica.set_applied(index);
            self.chosen_tx.send_replace(index);
            metrics::gauge!("paxlog_chosen_index").set(index as f64);
        }
        while let Some(reply) = self.replica.poll_reply() {
            if let Some(tx) = self.replies.remove(&reply.id) {
                let _ = tx.send(reply.result);
            }
        }
        let role = self.replica.role();
        if self.last_role != Some(role) {
            tracing::info!(node = self.node_id, role = role.name(), "role changed");
            if role == Role::Leader {
                metrics::counter!("paxlog_leader_changes_total").increment(1);
            }
            self.last_role = Some(role);
        }
        Ok(())
    }
}

const READ_BYTES_MAX: usize = 1 << 20;
