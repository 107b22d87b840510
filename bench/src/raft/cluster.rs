//! The openraft system as the benchmark runs it: three `raft-node`
//! processes and clients that append to the leader over QUIC.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use paxlog_net::{framed_bi, ClientEndpoint, ClientTls, FrameReader, FrameWriter};
use tokio::process::Command;
use tokio::time::Instant;

use super::config::{net_config, BATCH, UNBATCHED};
use super::types::NodeId;
use super::wire::{ClientRequest, ClientResponse};
use crate::procs::{not_yet, Procs};
use crate::system::{free_addrs, Appender, BoxFuture, Cluster, StartCtx};

const NODE_IDS: [NodeId; 3] = [1, 2, 3];
pub(super) const CLIENT_NAME: &str = "bench";
/// One append, retries after leader changes included.
const APPEND_TIMEOUT: Duration = Duration::from_secs(10);
/// A loopback handshake takes milliseconds; a dead node takes forever.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause before asking again while no leader is known (an election runs).
const NO_LEADER_RETRY: Duration = Duration::from_millis(20);
/// A fresh cluster elects a leader within a few election timeouts.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Client payloads per log entry (`raft-node --batch-payloads-max`); set it
/// to 1 to measure openraft with one entry per payload.
pub(super) const BATCH_ENV: &str = "PAXLOG_BENCH_OPENRAFT_BATCH";

/// `BATCH_ENV`, or the default batch size.
fn batch_payloads_max() -> anyhow::Result<u64> {
    match std::env::var(BATCH_ENV) {
        Ok(v) => v
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=65536).contains(n))
            .with_context(|| format!("{BATCH_ENV}={v:?}: expected 1..=65536")),
        Err(_) => Ok(BATCH.payloads_max as u64),
    }
}

pub async fn start(ctx: &StartCtx) -> anyhow::Result<Box<dyn Cluster>> {
    let certs = ctx.dir.join("certs");
    paxlog_net::generate_certs(&certs, &NODE_IDS, &[CLIENT_NAME.to_string()])
        .context("generate certificates")?;
    let addrs = free_addrs(NODE_IDS.len())?;
    let nodes: BTreeMap<NodeId, SocketAddr> = NODE_IDS.iter().copied().zip(addrs).collect();
    let members = nodes
        .iter()
        .map(|(id, addr)| format!("{id}={addr}"))
        .collect::<Vec<_>>()
        .join(",");

    let batch_payloads_max = batch_payloads_max()?;
    let mut procs = Procs::default();
    for &id in &NODE_IDS {
        let mut cmd = Command::new(&ctx.self_exe);
        cmd.arg("raft-node")
            .arg("--id")
            .arg(id.to_string())
            .arg("--members")
            .arg(&members)
            .arg("--data")
            .arg(ctx.dir.join(format!("raft-{id}")))
            .arg("--certs")
            .arg(&certs)
            .arg("--payload-bytes-max")
            .arg(ctx.payload_bytes_max.to_string())
            .arg("--batch-payloads-max")
            .arg(batch_payloads_max.to_string())
            .env("RUST_LOG", "warn");
        if id == NODE_IDS[0] {
            cmd.arg("--initialize");
        }
        procs.spawn(cmd, &ctx.dir.join(format!("raft-{id}.log")))?;
    }

    let client = Arc::new(ClientSide::new(&certs, nodes, ctx.payload_bytes_max)?);
    procs
        .wait_ready("openraft", READY_TIMEOUT, NO_LEADER_RETRY, || {
            let mut probe = RaftAppender::new(client.clone());
            async move { not_yet("openraft", probe.append(b"ready").await) }
        })
        .await?;
    let cluster = RaftCluster { procs, client };
    Ok(Box::new(cluster))
}

/// What every client of one cluster shares: the endpoint, one connection
/// per node (streams multiplexed on it), and the last known leader.
#[derive(Debug)]
pub(super) struct ClientSide {
    endpoint: ClientEndpoint,
    nodes: BTreeMap<NodeId, SocketAddr>,
    /// One slot per node, locked only while that node is (re)dialed.
    conns: BTreeMap<NodeId, tokio::sync::Mutex<Option<quinn::Connection>>>,
    leader: AtomicU64,
}

type Stream = (FrameWriter<ClientRequest>, FrameReader<ClientResponse>);

impl ClientSide {
    /// Nothing is dialed until the first append.
    pub(super) fn new(
        certs: &Path,
        nodes: BTreeMap<NodeId, SocketAddr>,
        payload_bytes_max: usize,
    ) -> anyhow::Result<Self> {
        // Requests carry one payload each: the unbatched frame limit fits them.
        let net = net_config(payload_bytes_max, &UNBATCHED);
        let tls = ClientTls::load(certs, CLIENT_NAME).context("load client certificate")?;
        let endpoint =
            ClientEndpoint::with_config(tls, net, SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let first = *nodes.keys().next().context("no nodes")?;
        Ok(Self {
            endpoint,
            conns: nodes.keys().map(|&id| (id, Default::default())).collect(),
            nodes,
            leader: AtomicU64::new(first),
        })
    }

    /// The node the next new stream goes to.
    pub(super) fn leader_guess(&self) -> NodeId {
        self.leader.load(Ordering::Relaxed)
    }

    pub(super) fn set_leader_guess(&self, node: NodeId) {
        self.leader.store(node, Ordering::Relaxed);
    }

    /// Opens a stream to `node`, dialing (again) when there is no live connection.
    async fn open(&self, node: NodeId) -> anyhow::Result<Stream> {
        let frame_bytes_max = self.endpoint.config().frame_bytes_max;
        let (Some(slot), Some(&addr)) = (self.conns.get(&node), self.nodes.get(&node)) else {
            anyhow::bail!("unknown node {node}");
        };
        let mut slot = slot.lock().await;
        if let Some(conn) = slot.as_ref() {
            match framed_bi(conn, frame_bytes_max).await {
                Ok(stream) => return Ok(stream),
                Err(_) => *slot = None,
            }
        }
        // A stopped node never answers the handshake: do not wait for QUIC's idle timeout.
        let conn = tokio::time::timeout(CONNECT_TIMEOUT, self.endpoint.connect(addr, node))
            .await
            .with_context(|| format!("connecting to node {node} timed out"))??;
        let stream = framed_bi(&conn, frame_bytes_max).await?;
        *slot = Some(conn);
        Ok(stream)
    }

    /// The node after `node`, to try when no leader is known.
    fn next_node(&self, node: NodeId) -> NodeId {
        self.nodes
            .range(node.saturating_add(1)..)
            .chain(self.nodes.iter())
            .map(|(&id, _)| id)
            .next()
            .unwrap_or(node)
    }
}

#[derive(Debug)]
struct RaftCluster {
    procs: Procs,
    client: Arc<ClientSide>,
}

impl Cluster for RaftCluster {
    fn pids(&self) -> Vec<u32> {
        self.procs.pids()
    }

    fn connect(&self, _client: usize) -> BoxFuture<'_, anyhow::Result<Box<dyn Appender>>> {
        Box::pin(async move {
            let appender: Box<dyn Appender> = Box::new(RaftAppender::new(self.client.clone()));
            Ok(appender)
        })
    }

    fn stop(self: Box<Self>) -> BoxFuture<'static, anyhow::Result<()>> {
        Box::pin(self.procs.stop())
    }
}

/// One closed-loop client with its own stream to the node it believes leads.
pub(super) struct RaftAppender {
    client: Arc<ClientSide>,
    stream: Option<(NodeId, Stream)>,
}

impl RaftAppender {
    pub(super) fn new(client: Arc<ClientSide>) -> Self {
        Self {
            client,
            stream: None,
        }
    }

    pub(super) async fn append_bytes(&mut self, payload: Bytes) -> anyhow::Result<()> {
        self.request(|| ClientRequest::Append(payload.clone()))
            .await
    }

    /// Sends what `make` builds to the leader (following redirects) and
    /// waits for its answer; not retried once sent.
    async fn request(&mut self, make: impl Fn() -> ClientRequest) -> anyhow::Result<()> {
        let deadline = Instant::now() + APPEND_TIMEOUT;
        loop {
            if self.stream.is_none() {
                let node = self.client.leader_guess();
                match self.client.open(node).await {
                    Ok(stream) => self.stream = Some((node, stream)),
                    Err(e) => {
                        tracing::debug!(node, "open stream: {e:#}");
                        let next = self.client.next_node(node);
                        // Another client may already have found the leader.
                        let _ = self.client.leader.compare_exchange(
                            node,
                            next,
                            Ordering::Relaxed,
                            Ordering::Relaxed,
                        );
                        anyhow::ensure!(Instant::now() < deadline, "no node reachable: {e:#}");
                        tokio::time::sleep(NO_LEADER_RETRY).await;
                        continue;
                    }
                }
            }
            let Some((node, (writer, reader))) = self.stream.as_mut() else {
                continue;
            };
            let node = *node;
            let exchange = async {
                writer.write(&make()).await?;
                reader.read().await
            };
            let response = match tokio::time::timeout_at(deadline, exchange).await {
                Err(_) => {
                    self.stream = None;
                    anyhow::bail!("append timed out after {APPEND_TIMEOUT:?}");
                }
                Ok(Err(e)) => {
                    // It may or may not have been appended: report, do not retry.
                    self.stream = None;
                    return Err(anyhow::Error::from(e).context(format!("stream to node {node}")));
                }
                Ok(Ok(None)) => {
                    self.stream = None;
                    anyhow::bail!("node {node} closed the stream");
                }
                Ok(Ok(Some(response))) => response,
            };
            match response {
                ClientResponse::Ok(_) => return Ok(()),
                ClientResponse::NotLeader(hint) => {
                    self.stream = None;
                    let next = match hint {
                        Some(leader) if leader != node => leader,
                        _ => {
                            tokio::time::sleep(NO_LEADER_RETRY).await;
                            self.client.next_node(node)
                        }
                    };
                    self.client.set_leader_guess(next);
                    anyhow::ensure!(
                        Instant::now() < deadline,
                        "no leader within {APPEND_TIMEOUT:?}"
                    );
                }
                ClientResponse::Err(e) => anyhow::bail!("node {node}: {e}"),
            }
        }
    }
}

impl Appender for RaftAppender {
    fn append<'a>(&'a mut self, payload: &'a [u8]) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(self.append_bytes(Bytes::copy_from_slice(payload)))
    }

    fn tail(&mut self) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(self.request(|| ClientRequest::Tail))
    }
}
