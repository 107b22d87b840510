//! paxlog embedded: node 1 runs inside this benchmark process behind the
//! `Log` API, as a database that embeds paxlog runs it, and leads; nodes 2
//! and 3 are `paxlog serve` processes. The clients call `Log::append`,
//! which reaches node 1's loop in process (no QUIC, no TLS, no
//! serialization of its own calls); the peers still talk QUIC.
//!
//! Node 1 leads because its election timeout is the default (300–600 ms)
//! and the others' is far longer; a run whose leader is not node 1 is
//! refused rather than measured as something else. This process counts as
//! node 1 in the CPU accounting, load generator included.

use std::sync::Arc;

use bytes::Bytes;
use paxlog::core::Role;
use paxlog::launch::LocalCluster;
use paxlog::log::{Log, LogConfig, LogError};
use paxlog::node::NodeConfig;

use crate::paxlog_sys::{
    launch_config, CLIENT_NAME, READY_RETRY, READY_TIMEOUT, REQUEST_TIMEOUT, STOP_GRACE,
};
use crate::system::{Appender, BoxFuture, Cluster, StartCtx};

const EMBEDDED: u64 = 1;
/// The served nodes' election timeout: long, so node 1 wins the first one.
const OTHERS_ELECTION_TIMEOUT_MS: &str = "3000..5000";

struct EmbeddedCluster {
    nodes: LocalCluster,
    /// Shared by every benchmark client, as an application's callers share
    /// its one `Log`.
    log: Arc<Log>,
}

pub async fn start(ctx: &StartCtx) -> anyhow::Result<Box<dyn Cluster>> {
    let mut nodes = LocalCluster::create(launch_config(ctx))?;
    let node = NodeConfig::new(
        nodes.file().cluster_id.clone(),
        EMBEDDED,
        nodes.file().addrs(),
        ctx.dir.join("certs"),
        nodes.data_dir(EMBEDDED),
    )?;
    let log = Log::open(LogConfig {
        node,
        client_name: CLIENT_NAME.into(),
        request_timeout_ms: REQUEST_TIMEOUT.as_millis() as u64,
    })
    .await?;
    for id in nodes.ids().into_iter().filter(|&id| id != EMBEDDED) {
        nodes.set_node_env(id, "PAXLOG_ELECTION_TIMEOUT_MS", OTHERS_ELECTION_TIMEOUT_MS);
        nodes.start_node(id)?;
    }
    let log = Arc::new(log);
    nodes
        .wait_ready(READY_TIMEOUT, READY_RETRY, || async {
            match log.append(Bytes::from_static(b"ready")).await {
                Ok(_) => Ok(Some(())),
                Err(LogError::Client(e)) if !e.surely_not_appended() => Err(e),
                Err(_) => Ok(None),
            }
        })
        .await
        .map_err(|e| anyhow::anyhow!("embedded paxlog did not start: {e}"))?;
    let leader = log
        .status()
        .await
        .into_iter()
        .find(|s| s.role == Role::Leader)
        .map(|s| s.id);
    anyhow::ensure!(
        leader == Some(EMBEDDED),
        "the embedded node does not lead (leader: {leader:?}); not measuring a remote leader as embedded"
    );
    Ok(Box::new(EmbeddedCluster { nodes, log }))
}

impl Cluster for EmbeddedCluster {
    /// This process first: it is node 1.
    fn pids(&self) -> Vec<u32> {
        let mut pids = vec![std::process::id()];
        pids.extend(self.nodes.pids());
        pids
    }

    fn connect(&self, _client: usize) -> BoxFuture<'_, anyhow::Result<Box<dyn Appender>>> {
        Box::pin(async move {
            let appender: Box<dyn Appender> = Box::new(EmbeddedAppender {
                log: self.log.clone(),
            });
            Ok(appender)
        })
    }

    fn stop(self: Box<Self>) -> BoxFuture<'static, anyhow::Result<()>> {
        Box::pin(async move {
            let EmbeddedCluster { mut nodes, log } = *self;
            nodes.stop(STOP_GRACE).await;
            match Arc::try_unwrap(log) {
                Ok(log) => log.close().await?,
                Err(_) => anyhow::bail!("a benchmark client still holds the embedded log"),
            }
            Ok(())
        })
    }
}

struct EmbeddedAppender {
    log: Arc<Log>,
}

impl Appender for EmbeddedAppender {
    fn append<'a>(&'a mut self, payload: &'a [u8]) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            self.log.append(Bytes::copy_from_slice(payload)).await?;
            Ok(())
        })
    }

    fn tail(&mut self) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            self.log.tail().await?;
            Ok(())
        })
    }
}
