//! paxlog as benchmarked: the real `paxlog serve` binary, three processes,
//! QUIC with mutual TLS, RocksDB with a synced write before every reply.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use paxlog::client::Client;
use paxlog::cluster::{ClusterFile, NodeEntry};
use tokio::process::Command;

use crate::procs::Procs;
use crate::system::{free_addrs, Appender, BoxFuture, Cluster, StartCtx};

const NODES: u64 = 3;
const CLIENT_NAME: &str = "bench";
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A fresh cluster elects a leader within a few election timeouts.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const READY_RETRY: Duration = Duration::from_millis(50);

#[derive(Debug)]
struct PaxlogCluster {
    procs: Procs,
    /// Shared by every benchmark client, as an application's concurrent
    /// callers share one `Client`: one connection per node, appends pipelined.
    client: Client,
}

pub async fn start(ctx: &StartCtx) -> anyhow::Result<Box<dyn Cluster>> {
    let certs = ctx.dir.join("certs");
    let ids: Vec<u64> = (1..=NODES).collect();
    paxlog_net::generate_certs(&certs, &ids, &[CLIENT_NAME.to_string()])
        .context("generate certificates")?;
    let addrs = free_addrs(ids.len())?;
    let nodes = ids
        .iter()
        .zip(&addrs)
        .map(|(&id, &addr)| NodeEntry {
            id,
            addr,
            admin: None,
            data: Some(data_dir(&ctx.dir, id)),
            pid: None,
        })
        .collect();
    let file = ClusterFile {
        cluster_id: "bench".into(),
        certs,
        client: Some(CLIENT_NAME.into()),
        nodes,
    };
    let cluster_path = ctx.dir.join("cluster.toml");
    std::fs::write(&cluster_path, file.to_toml())?;

    let mut procs = Procs::default();
    for id in &ids {
        let mut cmd = Command::new(&ctx.paxlog_bin);
        cmd.arg("serve")
            .arg("--cluster")
            .arg(&cluster_path)
            .arg("--id")
            .arg(id.to_string())
            .arg("--data")
            .arg(data_dir(&ctx.dir, *id))
            .env("RUST_LOG", "warn");
        procs.spawn(cmd, &ctx.dir.join(format!("node-{id}.log")))?;
    }
    let client = Client::from_cluster_file(&file, None, REQUEST_TIMEOUT)?;
    procs
        .wait_ready("paxlog", READY_TIMEOUT, READY_RETRY, || async {
            match client.append(Bytes::from_static(b"ready")).await {
                Ok(_) => Ok(Some(())),
                Err(e) if e.surely_not_appended() => {
                    tracing::debug!("waiting for a leader: {e}");
                    Ok(None)
                }
                Err(e) => Err(anyhow::Error::from(e)),
            }
        })
        .await?;
    let cluster = PaxlogCluster { procs, client };
    Ok(Box::new(cluster))
}

fn data_dir(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("node-{id}"))
}

impl Cluster for PaxlogCluster {
    fn pids(&self) -> Vec<u32> {
        self.procs.pids()
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
        Box::pin(self.procs.stop())
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
}
