//! One openraft node process (`paxlog-bench raft-node`): RocksDB log store,
//! paxlog-net QUIC peer links and client endpoint, until SIGTERM/SIGINT or a
//! fatal Raft error (fail-stop: the process exits with an error).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use openraft::error::{InitializeError, RaftError};
use openraft::BasicNode;
use paxlog_net::{NodeEndpoint, NodeTls};
use tokio::signal::unix::{signal, SignalKind};
use tokio::task::JoinHandle;
use tracing::{error, info};

use super::batcher::{BatchLimits, Batcher};
use super::config::{net_config, raft_config, BATCH, UNBATCHED};
use super::network::{NetworkFactory, Rpc};
use super::server::{serve_clients, serve_peers};
use super::sm::{AppliedCounters, StateMachine};
use super::store::{open_db, LogStore};
use super::types::{NodeId, Raft};
use super::wire::PeerMsg;

/// How long a stopping node lets its QUIC connections drain.
const ENDPOINT_DRAIN_MAX: Duration = Duration::from_millis(500);

/// Flags of the hidden `raft-node` subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct NodeArgs {
    /// This node's id; must be one of `--members`.
    #[arg(long)]
    pub id: NodeId,
    /// Every member as ID=ADDR, comma-separated; this node listens on its own ADDR.
    #[arg(long, value_delimiter = ',', value_parser = parse_member, required = true)]
    pub members: Vec<(NodeId, SocketAddr)>,
    /// RocksDB directory of this node.
    #[arg(long)]
    pub data: PathBuf,
    /// Certificates directory (paxlog_net::generate_certs layout).
    #[arg(long)]
    pub certs: PathBuf,
    /// Largest client payload accepted; sizes the frame limit.
    #[arg(long, default_value_t = 4096)]
    pub payload_bytes_max: usize,
    /// Initialize the cluster with every member (one node, once).
    #[arg(long)]
    pub initialize: bool,
    /// Client payloads per log entry; 1 = every payload its own entry.
    #[arg(long, default_value_t = BATCH.payloads_max as u64, value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub batch_payloads_max: u64,
}

impl NodeArgs {
    pub fn batch_limits(&self) -> BatchLimits {
        if self.batch_payloads_max <= 1 {
            UNBATCHED
        } else {
            BatchLimits {
                payloads_max: self.batch_payloads_max as usize,
                ..BATCH
            }
        }
    }
}

fn parse_member(s: &str) -> Result<(NodeId, SocketAddr), String> {
    let (id, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not ID=ADDR"))?;
    let id = id
        .parse()
        .map_err(|e| format!("node id {id:?} in {s:?}: {e}"))?;
    let addr = addr
        .parse()
        .map_err(|e| format!("address {addr:?} in {s:?}: {e}"))?;
    Ok((id, addr))
}

pub fn node_main(args: NodeArgs) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // A second init (tests) is harmless.
    let _ = tracing_subscriber::fmt().with_env_filter(filter).try_init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("raft-node")
        .build()?;
    runtime.block_on(run(args))
}

async fn run(args: NodeArgs) -> anyhow::Result<()> {
    let node = RunningNode::start(&args).await?;
    let mut term = signal(SignalKind::terminate())?;
    let outcome = tokio::select! {
        _ = term.recv() => Ok(()),
        r = tokio::signal::ctrl_c() => r.context("waiting for SIGINT"),
        fatal = wait_fatal(&node.raft) => Err(anyhow::anyhow!("raft stopped: {fatal}")),
    };
    if let Err(e) = &outcome {
        error!("{e:#}");
    }
    node.stop().await;
    outcome
}

/// A started node: openraft, its store, and its serving tasks.
pub struct RunningNode {
    pub raft: Raft,
    pub applied: Arc<AppliedCounters>,
    endpoint: Arc<NodeEndpoint>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for RunningNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningNode")
            .field("applied", &self.applied)
            .finish_non_exhaustive()
    }
}

impl RunningNode {
    pub async fn start(args: &NodeArgs) -> anyhow::Result<Self> {
        let members: BTreeMap<NodeId, SocketAddr> = args.members.iter().copied().collect();
        anyhow::ensure!(
            members.len() == args.members.len(),
            "duplicate node id in --members"
        );
        let listen = *members
            .get(&args.id)
            .with_context(|| format!("node {} is not in --members", args.id))?;

        let batch = args.batch_limits();
        let tls = NodeTls::load(&args.certs, args.id).context("load node certificate")?;
        let endpoint = Arc::new(NodeEndpoint::bind(
            listen,
            tls,
            net_config(args.payload_bytes_max, &batch),
        )?);
        let (sender, inbound) = endpoint.peers::<PeerMsg>(members.clone())?;
        let rpc = Rpc::new(args.id, sender);

        let db = open_db(&args.data).with_context(|| format!("open {}", args.data.display()))?;
        let log_store = LogStore::new(db.clone());
        let state_machine = StateMachine::open(db)?;
        let applied = state_machine.counters();
        let raft = Raft::new(
            args.id,
            Arc::new(raft_config(&batch)?),
            NetworkFactory::new(rpc.clone()),
            log_store,
            state_machine,
        )
        .await?;

        let tasks = vec![
            tokio::spawn(serve_peers(raft.clone(), rpc, inbound)),
            tokio::spawn(serve_clients(
                endpoint.clone(),
                raft.clone(),
                Batcher::start(raft.clone(), batch),
                args.payload_bytes_max,
            )),
        ];
        if args.initialize {
            initialize(&raft, &members).await?;
        }
        info!(id = args.id, %listen, "raft node running");
        Ok(Self {
            raft,
            applied,
            endpoint,
            tasks,
        })
    }

    /// Stops openraft, the serving tasks and the endpoint; releases the database.
    pub async fn stop(self) {
        info!(
            payloads = self.applied.payloads.load(Ordering::Relaxed),
            "stopping; client payloads applied"
        );
        if let Err(e) = self.raft.shutdown().await {
            error!(error = %e, "raft shutdown");
        }
        for task in &self.tasks {
            task.abort();
        }
        for task in self.tasks {
            // Cancelled is the expected outcome.
            let _ = task.await;
        }
        if let Ok(endpoint) = Arc::try_unwrap(self.endpoint) {
            // Peers and clients got the close at once; only QUIC's draining
            // period (seconds) is cut short.
            let _ = tokio::time::timeout(ENDPOINT_DRAIN_MAX, endpoint.shutdown()).await;
        }
    }
}

async fn initialize(raft: &Raft, members: &BTreeMap<NodeId, SocketAddr>) -> anyhow::Result<()> {
    let nodes: BTreeMap<NodeId, BasicNode> = members
        .iter()
        .map(|(&id, addr)| (id, BasicNode::new(addr.to_string())))
        .collect();
    match raft.initialize(nodes).await {
        Ok(()) => Ok(()),
        // A restarted node finds its cluster already initialized.
        Err(RaftError::APIError(InitializeError::NotAllowed(e))) => {
            info!("already initialized: {e}");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Resolves when openraft stopped on a fatal error (e.g. a failed fsync).
async fn wait_fatal(raft: &Raft) -> String {
    let mut metrics = raft.metrics();
    loop {
        if let Err(fatal) = &metrics.borrow().running_state {
            return fatal.to_string();
        }
        if metrics.changed().await.is_err() {
            return "raft metrics closed".into();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_member_accepts_id_addr_and_rejects_garbage() {
        assert_eq!(
            parse_member("2=127.0.0.1:4000").expect("valid"),
            (2, SocketAddr::from(([127, 0, 0, 1], 4000)))
        );
        for bad in ["", "2", "x=127.0.0.1:1", "2=nowhere", "2=127.0.0.1"] {
            assert!(parse_member(bad).is_err(), "{bad:?} accepted");
        }
    }
}
