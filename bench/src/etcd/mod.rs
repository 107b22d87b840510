//! etcd as benchmarked: Debian's `etcd-server` (installed when missing),
//! three members on loopback, each with its own data directory and its WAL
//! fsynced before every acknowledgement (etcd's default; `--unsafe-no-fsync`
//! is never set). Clients use etcd's native gRPC API ([`grpc`], the
//! `etcd-client` crate: what applications use), or — as the optional system
//! `etcd-gateway` — its JSON gateway over HTTP, each caller on its own
//! kept-alive connection (HTTP → gRPC inside etcd, so slower). Both to the
//! leader, without TLS: etcd's TLS would only slow it; paxlog pays for mTLS.

mod api;
mod grpc;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use tokio::process::Command;

use crate::procs::{not_yet, Procs};
use crate::system::{free_addrs, Appender, BoxFuture, Cluster, StartCtx};

const NODES: usize = 3;
const PACKAGE: &str = "etcd-server";
/// A fresh cluster elects within a few election timeouts (1 s by default).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const READY_RETRY: Duration = Duration::from_millis(50);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// etcd's largest supported backend; a 10 s run of 4 KiB puts with every
/// revision kept (no compaction) stays far below it.
const QUOTA_BACKEND_BYTES: u64 = 8 << 30;
/// etcd's default request limit.
const REQUEST_BYTES_DEFAULT: usize = 1536 * 1024;
/// Room for the key, protobuf framing and the gateway's JSON around a value.
const REQUEST_OVERHEAD_BYTES: usize = 64 * 1024;

/// How the benchmark's clients talk to etcd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Grpc,
    Gateway,
}

struct EtcdCluster {
    procs: Procs,
    /// Client URL of the member that led when the cluster became ready.
    leader_url: String,
    /// The one gRPC client every caller shares (`None`: the JSON gateway).
    grpc: Option<etcd_client::Client>,
}

pub async fn start(ctx: &StartCtx, transport: Transport) -> anyhow::Result<Box<dyn Cluster>> {
    let etcd = ensure_installed(&ctx.dir).await?;
    let addrs = free_addrs(2 * NODES)?;
    let (clients, peers) = addrs.split_at(NODES);
    let names: Vec<String> = (1..=NODES).map(|i| format!("etcd-{i}")).collect();
    let initial_cluster = names
        .iter()
        .zip(peers)
        .map(|(name, peer)| format!("{name}={}", url(*peer)))
        .collect::<Vec<_>>()
        .join(",");
    let max_request_bytes =
        REQUEST_BYTES_DEFAULT.max(ctx.payload_bytes_max + REQUEST_OVERHEAD_BYTES);
    // Unique per cluster so members of another run can never join this one.
    let token = format!("paxlog-bench-{}-{}", std::process::id(), clients[0].port());

    let mut procs = Procs::default();
    for ((name, client), peer) in names.iter().zip(clients).zip(peers) {
        let mut cmd = Command::new(&etcd);
        cmd.arg("--name")
            .arg(name)
            .arg("--data-dir")
            .arg(ctx.dir.join(format!("{name}.etcd")))
            .arg("--listen-peer-urls")
            .arg(url(*peer))
            .arg("--initial-advertise-peer-urls")
            .arg(url(*peer))
            .arg("--listen-client-urls")
            .arg(url(*client))
            .arg("--advertise-client-urls")
            .arg(url(*client))
            .arg("--initial-cluster")
            .arg(&initial_cluster)
            .arg("--initial-cluster-state")
            .arg("new")
            .arg("--initial-cluster-token")
            .arg(&token)
            .arg("--quota-backend-bytes")
            .arg(QUOTA_BACKEND_BYTES.to_string())
            .arg("--max-request-bytes")
            .arg(max_request_bytes.to_string())
            // Off (etcd's default) said out loud: no compaction pauses mid-run.
            .arg("--auto-compaction-retention")
            .arg("0")
            .arg("--logger")
            .arg("zap")
            .arg("--log-level")
            .arg("warn");
        // ETCD_* variables would be read as flags and clash with these.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("ETCD_") {
                cmd.env_remove(key);
            }
        }
        procs.spawn(cmd, &ctx.dir.join(format!("{name}.log")))?;
    }
    let client_urls: Vec<String> = clients.iter().map(|a| url(*a)).collect();
    let http = reqwest::Client::new();
    // Returns the client URL of the member that leads once it accepts a put.
    let leader_url = procs
        .wait_ready("etcd", READY_TIMEOUT, READY_RETRY, || async {
            not_yet("etcd", try_ready(&http, &client_urls).await)
        })
        .await?;
    let grpc = match transport {
        Transport::Grpc => Some(grpc::connect(&leader_url).await?),
        Transport::Gateway => None,
    };
    Ok(Box::new(EtcdCluster {
        procs,
        leader_url,
        grpc,
    }))
}

fn url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

async fn try_ready(http: &reqwest::Client, client_urls: &[String]) -> anyhow::Result<String> {
    let leader = find_leader(http, client_urls).await?;
    let mut probe = EtcdAppender::new(&leader, "bench/ready")?;
    probe.put(b"ready").await?;
    Ok(leader)
}

/// Asks every member for its status and picks the leader's client URL.
async fn find_leader(http: &reqwest::Client, client_urls: &[String]) -> anyhow::Result<String> {
    let mut members = Vec::new();
    for base in client_urls {
        let reply = http
            .post(format!("{base}{}", api::STATUS_PATH))
            .body("{}")
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await;
        // A member still starting up is skipped; the others may know the leader.
        let Ok(reply) = reply else { continue };
        if !reply.status().is_success() {
            continue;
        }
        let body = reply.bytes().await?;
        members.push((base.clone(), api::parse_status(&body)?));
    }
    Ok(api::leader_url(&members)?.to_string())
}

/// Path of the `etcd` binary, installing Debian's package first if needed
/// (as root only; otherwise an error that names the package).
async fn ensure_installed(dir: &Path) -> anyhow::Result<PathBuf> {
    if let Some(path) = find_in_path("etcd") {
        return Ok(path);
    }
    anyhow::ensure!(
        effective_uid() == Some(0),
        "`etcd` is not installed and installing it needs root: run `apt-get install -y {PACKAGE}`"
    );
    let log = dir.join("apt-get.log");
    let out = std::fs::File::create(&log)?;
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("apt-get update && apt-get install -y {PACKAGE}"))
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .status()
        .await
        .context("run apt-get")?;
    anyhow::ensure!(
        status.success(),
        "`apt-get install -y {PACKAGE}` failed ({status}); see {}",
        log.display()
    );
    find_in_path("etcd").with_context(|| {
        format!("`apt-get install -y {PACKAGE}` succeeded but `etcd` is not on PATH")
    })
}

/// From /proc/self/status ("Uid: real effective saved fs").
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

impl Cluster for EtcdCluster {
    fn pids(&self) -> Vec<u32> {
        self.procs.pids()
    }

    fn connect(&self, client: usize) -> BoxFuture<'_, anyhow::Result<Box<dyn Appender>>> {
        Box::pin(async move {
            let key = format!("bench/client-{client}");
            let appender: Box<dyn Appender> = match &self.grpc {
                Some(grpc) => Box::new(grpc::GrpcAppender::new(grpc, &key)),
                None => Box::new(EtcdAppender::new(&self.leader_url, &key)?),
            };
            Ok(appender)
        })
    }

    fn stop(self: Box<Self>) -> BoxFuture<'static, anyhow::Result<()>> {
        Box::pin(self.procs.stop())
    }
}

/// One closed-loop client: its own key, overwritten by every put (each put
/// is a new revision, a new Raft entry), on its own HTTP connection.
struct EtcdAppender {
    http: reqwest::Client,
    put_url: String,
    range_url: String,
    key_b64: String,
    /// Invariant: the revision of this client's last acknowledged put (0: none yet).
    last_revision: u64,
}

impl EtcdAppender {
    fn new(base_url: &str, key: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .tcp_nodelay(true)
            .timeout(REQUEST_TIMEOUT)
            .build()?;
        Ok(Self {
            http,
            put_url: format!("{base_url}{}", api::PUT_PATH),
            range_url: format!("{base_url}{}", api::RANGE_PATH),
            key_b64: api::encode_key(key),
            last_revision: 0,
        })
    }

    async fn put(&mut self, value: &[u8]) -> anyhow::Result<()> {
        let reply = self
            .http
            .post(&self.put_url)
            .json(&api::PutRequest::new(&self.key_b64, value))
            .send()
            .await
            .with_context(|| format!("POST {}", self.put_url))?;
        let status = reply.status().as_u16();
        let body = reply.bytes().await?;
        let revision = api::check_put(status, &body)?;
        anyhow::ensure!(
            revision > self.last_revision,
            "etcd acknowledged revision {revision} after {}: revisions must grow",
            self.last_revision
        );
        self.last_revision = revision;
        Ok(())
    }
}

impl EtcdAppender {
    /// A range read of this client's key: linearizable (etcd's default,
    /// `serializable` unset), so it goes through etcd's ReadIndex.
    async fn range(&mut self) -> anyhow::Result<()> {
        let reply = self
            .http
            .post(&self.range_url)
            .json(&api::RangeRequest { key: &self.key_b64 })
            .send()
            .await
            .with_context(|| format!("POST {}", self.range_url))?;
        let status = reply.status().as_u16();
        let body = reply.bytes().await?;
        api::check_range(status, &body)?;
        Ok(())
    }
}

impl Appender for EtcdAppender {
    fn append<'a>(&'a mut self, payload: &'a [u8]) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(self.put(payload))
    }

    fn tail(&mut self) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(self.range())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The real `etcd` (installed by `start` when missing, as root): three
    /// members elect, clients on distinct keys commit through gRPC and
    /// through the gateway, and `stop` reaps all.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn three_members_accept_puts_and_stop() {
        for transport in [Transport::Grpc, Transport::Gateway] {
            three_members_accept_puts_and_stop_through(transport).await;
        }
    }

    async fn three_members_accept_puts_and_stop_through(transport: Transport) {
        let dir = tempfile::tempdir().expect("tempdir");
        let ctx = StartCtx {
            dir: dir.path().to_path_buf(),
            self_exe: PathBuf::from("unused"),
            paxlog_bin: PathBuf::from("unused"),
            payload_bytes_max: 4096,
        };
        let cluster = start(&ctx, transport).await.expect("etcd starts");
        let pids = cluster.pids();
        assert_eq!(pids.len(), NODES);
        for client in 0..2 {
            let mut a = cluster.connect(client).await.expect("connect");
            for size in [0, 256, 4096] {
                a.append(&vec![0xa5; size]).await.expect("put commits");
            }
            a.tail().await.expect("a linearizable range read");
        }
        cluster.stop().await.expect("stop");
        for pid in pids {
            assert!(
                !Path::new(&format!("/proc/{pid}")).exists(),
                "etcd member {pid} outlived stop"
            );
        }
    }
}
