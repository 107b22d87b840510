//! Starting a node: open the store, bind the endpoint, create the queues,
//! spawn the writer thread, the admin port, the client acceptor and the
//! driver; and the handle that stops it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use paxlog_net::{NodeEndpoint, NodeTls};
use paxlog_storage::{Index, NodeId, RocksStore};
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use super::clients;
use super::config::{FollowerSync, NodeConfig, NodeError};
use super::driver::{Driver, Inputs};
use super::local::LocalPort;
use super::snapshots::SnapshotDir;
use super::telemetry::{SharedWindow, Telemetry};
use super::writer;
use crate::admin;
use crate::core::{Envelope, Replica};

/// Commands from client streams and the admin port waiting for the driver.
const CLIENT_QUEUE_CAPACITY: usize = 4096;
/// `Persist` batches waiting for the writer thread; full, it holds the driver back.
const WRITE_QUEUE_CAPACITY: usize = 1024;

/// A running node. Dropping it does not stop the node; call [`NodeHandle::shutdown`].
#[derive(Debug)]
pub struct NodeHandle {
    local_addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    shutdown: Arc<watch::Sender<bool>>,
    task: tokio::task::JoinHandle<Result<(), NodeError>>,
    chosen: watch::Receiver<Index>,
    local: LocalPort,
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

    /// The in-process way into this node's loop (what an embedded
    /// [`crate::log::Log`] uses for its own node).
    pub fn local_port(&self) -> LocalPort {
        self.local.clone()
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

/// Set to `1` to turn the store's sync off (the power-loss test's proof
/// that its cuts bite). Never for real use: acknowledged appends are lost.
pub const UNSYNCED_STORE_ENV: &str = "PAXLOG_TEST_UNSYNCED_STORE";

/// Opens the store, binds the endpoint and starts the node.
pub async fn start(config: NodeConfig) -> Result<NodeHandle, NodeError> {
    config.validate()?;
    let identity = paxlog_storage::Identity {
        cluster_id: config.cluster_id.clone(),
        node_id: config.node_id,
    };
    let mut store = RocksStore::open(&config.data_dir, identity)?;
    if std::env::var_os(UNSYNCED_STORE_ENV).is_some_and(|v| v == "1") {
        store = store.unsynced();
    }
    let store = Arc::new(store);
    let tls = NodeTls::load(&config.certs_dir, config.node_id)?;
    // One frame limit for the core's messages and the transport: the core's.
    let frame_bytes_max = config.core.limits.frame_bytes_max;
    let net = paxlog_net::NetConfig {
        frame_bytes_max,
        ..config.net.clone()
    };
    let endpoint = NodeEndpoint::bind(config.listen, tls, net)?;
    let local_addr = endpoint.local_addr();
    let seed = seed_from_clock(config.node_id);
    let started = Instant::now();
    let replica = Replica::new(config.core.clone(), store.clone(), seed, 0)
        .map_err(|e| NodeError::Core(e.to_string()))?;
    // The log's configuration, not the cluster file's, once it has one.
    let dial = config.dial_addrs_for(replica.membership());
    let (peer_tx, peer_rx) = endpoint.peers::<Envelope>(dial)?;
    if let Some(why) = replica.not_voting() {
        tracing::warn!(node = config.node_id, "this node does not vote: {why}");
    }

    let (client_tx, client_rx) = mpsc::channel(CLIENT_QUEUE_CAPACITY);
    let (write_tx, write_rx) = mpsc::channel(WRITE_QUEUE_CAPACITY);
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let fsync = SharedWindow::default();
    let writer = writer::spawn(store.clone(), write_rx, done_tx, fsync.clone())?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    // Readers follow what the driver has seen emitted, which starts again
    // from the trim point after a restart.
    let (chosen_tx, chosen_rx) = watch::channel(0);

    let admin_addr = match config.admin {
        Some(addr) => Some(admin::serve(
            addr,
            client_tx.clone(),
            config.data_dir.clone(),
        )?),
        None => None,
    };
    let snapshots = Arc::new(
        SnapshotDir::open(&config.data_dir)
            .map_err(|e| NodeError::Fatal(format!("snapshot directory: {e}")))?,
    );
    let local = LocalPort::new(config.node_id, client_tx.clone(), snapshots.clone());
    let endpoint = Arc::new(endpoint);
    let acceptor = clients::spawn_acceptor(
        endpoint.clone(),
        client_tx,
        chosen_rx.clone(),
        shutdown_rx.clone(),
        frame_bytes_max,
        Arc::new(config.admins.clone()),
        snapshots.clone(),
    );

    let loop_writer = (config.follower_sync == FollowerSync::Loop)
        .then(|| writer::LoopWriter::new(store.clone(), fsync.clone()));
    let driver = Driver::new(
        replica,
        loop_writer,
        started,
        peer_tx,
        write_tx,
        writer,
        chosen_tx,
        config.clone(),
        snapshots,
        Telemetry::new(config.node_id, fsync),
    );
    let inputs = Inputs {
        peer_rx,
        client_rx,
        done_rx,
        shutdown: shutdown_rx,
    };
    // Every log line of the loop names its node, so a test's or an
    // embedder's interleaved logs stay readable.
    let span = tracing::info_span!("node", id = config.node_id);
    let task = tokio::spawn(driver.run(inputs, endpoint, acceptor).instrument(span));
    tracing::info!(node = config.node_id, %local_addr, "node started");
    Ok(NodeHandle {
        local_addr,
        admin_addr,
        shutdown: Arc::new(shutdown_tx),
        task,
        chosen: chosen_rx,
        local,
    })
}

fn seed_from_clock(node_id: NodeId) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ node_id.rotate_left(32)
}
