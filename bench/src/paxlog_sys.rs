//! paxlog as benchmarked: the real `paxlog serve` binary, three processes,
//! QUIC with mutual TLS, RocksDB with a synced write before every reply.

use std::time::Duration;

use bytes::Bytes;
use paxlog::client::Client;
use paxlog::launch::{LaunchConfig, LaunchError, LocalCluster};

use crate::system::{Appender, BoxFuture, Cluster, StartCtx};

const NODES: u64 = 3;
pub(crate) const CLIENT_NAME: &str = "bench";
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A fresh cluster elects a leader within a few election timeouts.
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(30);
pub(crate) const READY_RETRY: Duration = Duration::from_millis(50);
/// How long a node gets to exit after SIGTERM before it is killed, as in `Procs`.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct PaxlogCluster {
    /// The node processes; their pids feed the CPU/RSS sampling.
    nodes: LocalCluster,
    /// Shared by every benchmark client, as an application's concurrent
    /// callers share one `Client`: one connection per node, appends pipelined.
    client: Client,
}

/// The benchmark's three-node paxlog cluster in `ctx.dir`.
pub(crate) fn launch_config(ctx: &StartCtx) -> LaunchConfig {
    LaunchConfig {
        dir: ctx.dir.clone(),
        exe: ctx.paxlog_bin.clone(),
        nodes: NODES,
        cluster_id: "bench".into(),
        client: CLIENT_NAME.into(),
        admin: false,
        rust_log: "warn".into(),
    }
}

pub async fn start(ctx: &StartCtx) -> anyhow::Result<Box<dyn Cluster>> {
    let mut nodes = LocalCluster::start(launch_config(ctx))?;
    let client = nodes.client(REQUEST_TIMEOUT)?;
    let ready = nodes
        .wait_ready(READY_TIMEOUT, READY_RETRY, || async {
            match client.append(Bytes::from_static(b"ready")).await {
                Ok(_) => Ok(Some(())),
                Err(e) if e.surely_not_appended() => {
                    tracing::debug!("waiting for a leader: {e}");
                    Ok(None)
                }
                Err(e) => Err(e),
            }
        })
        .await;
    if let Err(error) = ready {
        // A node that exited at start explains itself in its log.
        let quoted = match &error {
            LaunchError::Exited { log_tail, .. } => format!(": {}", log_tail.trim()),
            _ => String::new(),
        };
        anyhow::bail!("paxlog did not start: {error}{quoted}");
    }
    Ok(Box::new(PaxlogCluster { nodes, client }))
}

impl Cluster for PaxlogCluster {
    fn pids(&self) -> Vec<u32> {
        self.nodes.pids()
    }

    fn connect(&self, _client: usize) -> BoxFuture<'_, anyhow::Result<Box<dyn Appender>>> {
        Box::pin(async move {
            let appender: Box<dyn Appender> = Box::new(PaxlogAppender {
                client: self.client.clone(),
            });
            Ok(appender)
        })
    }

    fn stop(self: Box<Self>) -> BoxFuture<'static, anyhow::Result<()>> {
        Box::pin(async move {
            let mut nodes = self.nodes;
            nodes.stop(STOP_GRACE).await;
            Ok(())
        })
    }
}

struct PaxlogAppender {
    client: Client,
}

impl Appender for PaxlogAppender {
    fn append<'a>(&'a mut self, payload: &'a [u8]) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            self.client.append(Bytes::copy_from_slice(payload)).await?;
            Ok(())
        })
    }

    fn tail(&mut self) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            self.client.tail().await?;
            Ok(())
        })
    }
}
