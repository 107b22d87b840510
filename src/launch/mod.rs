//! A local cluster of `paxlog serve` child processes on loopback ports, for
//! `paxlog dev`, the integration tests and the benchmark.
//!
//! Layout under the cluster's directory: `certs/` (a CA, node certificates
//! and one client certificate), `cluster.toml` (with each node's pid once it
//! runs), `data/node-N/` and `logs/node-N.log`. Children are killed (SIGKILL)
//! when the [`LocalCluster`] is dropped; [`LocalCluster::stop`] stops them
//! gracefully first.

mod error;
mod grow;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use paxlog_storage::NodeId;

use self::error::io_error;
pub use self::error::LaunchError;
use crate::client::{Client, ClientError};
use crate::cluster::{ClusterFile, NodeEntry};

/// How often exits are polled while waiting on children.
const POLL_EVERY: Duration = Duration::from_millis(100);
/// How much of a node's log an early exit quotes.
const LOG_TAIL_LINES: usize = 20;

/// What to launch; the nodes are numbered `1..=nodes`.
#[derive(Clone, Debug)]
pub struct LaunchConfig {
    /// The cluster's directory, created if missing; an absolute path keeps
    /// the cluster file usable from any working directory.
    pub dir: PathBuf,
    /// The `paxlog` executable that runs each node (`paxlog serve`).
    pub exe: PathBuf,
    pub nodes: u64,
    pub cluster_id: String,
    /// The client certificate generated beside the node certificates, and the
    /// cluster file's default client.
    pub client: String,
    /// Whether each node also serves /metrics, /livez and /readyz.
    pub admin: bool,
    /// `RUST_LOG` of the nodes.
    pub rust_log: String,
}

/// A running (or ready to run) local cluster; see the module docs.
#[derive(Debug)]
pub struct LocalCluster {
    config: LaunchConfig,
    file: ClusterFile,
    path: PathBuf,
    children: BTreeMap<NodeId, Child>,
    /// Nodes started at least once: a restart appends to their log.
    started: BTreeSet<NodeId>,
    /// Extra environment for a node's process, from its next start on.
    env: BTreeMap<NodeId, BTreeMap<String, String>>,
    /// Per node, the peers it dials elsewhere than the cluster file says
    /// (`paxlog serve --peer-via`); kept across restarts.
    peer_via: BTreeMap<NodeId, BTreeMap<NodeId, SocketAddr>>,
}

impl LocalCluster {
    /// Certificates (kept if the directory already has them), free ports and
    /// the cluster file; starts no node.
    pub fn create(config: LaunchConfig) -> Result<LocalCluster, LaunchError> {
        let dir = &config.dir;
        let logs = dir.join("logs");
        std::fs::create_dir_all(&logs).map_err(io_error("creating", &logs))?;
        let ids: Vec<NodeId> = (1..=config.nodes).collect();
        let certs = dir.join("certs");
        let have_certs = ids
            .iter()
            .all(|id| certs.join(format!("node-{id}.pem")).exists())
            && certs.join(format!("client-{}.pem", config.client)).exists();
        if !have_certs {
            paxlog_net::generate_certs(&certs, &ids, std::slice::from_ref(&config.client))
                .map_err(|source| LaunchError::Certs {
                    path: certs.clone(),
                    source,
                })?;
        }
        let ports = free_ports(ids.len()).map_err(LaunchError::Ports)?;
        let nodes = ids
            .iter()
            .zip(ports)
            .map(|(&id, (addr, admin))| NodeEntry {
                id,
                addr,
                admin: config.admin.then_some(admin),
                data: Some(PathBuf::from(format!("data/node-{id}"))),
                pid: None,
            })
            .collect();
        let file = ClusterFile {
            cluster_id: config.cluster_id.clone(),
            certs: PathBuf::from("certs"),
            client: Some(config.client.clone()),
            // The launcher's client is the cluster's operator.
            admins: Some(vec![config.client.clone()]),
            nodes,
        };
        let cluster = LocalCluster {
            path: dir.join("cluster.toml"),
            config,
            file,
            children: BTreeMap::new(),
            env: BTreeMap::new(),
            started: BTreeSet::new(),
            peer_via: BTreeMap::new(),
        };
        cluster.write_file()?;
        Ok(cluster)
    }

    /// [`LocalCluster::create`], then every node started.
    pub fn start(config: LaunchConfig) -> Result<LocalCluster, LaunchError> {
        let mut cluster = LocalCluster::create(config)?;
        for id in cluster.ids() {
            cluster.start_node(id)?;
        }
        Ok(cluster)
    }

    pub fn ids(&self) -> Vec<NodeId> {
        self.file.nodes.iter().map(|n| n.id).collect()
    }

    pub fn dir(&self) -> &Path {
        &self.config.dir
    }

    /// The cluster file as written (paths relative to its directory).
    pub fn file(&self) -> &ClusterFile {
        &self.file
    }

    pub fn cluster_path(&self) -> &Path {
        &self.path
    }

    pub fn data_dir(&self, id: NodeId) -> PathBuf {
        self.config.dir.join("data").join(format!("node-{id}"))
    }

    pub fn log_path(&self, id: NodeId) -> PathBuf {
        self.config.dir.join("logs").join(format!("node-{id}.log"))
    }

    /// A node's whole log so far; empty if it has none.
    pub fn log(&self, id: NodeId) -> String {
        std::fs::read_to_string(self.log_path(id)).unwrap_or_default()
    }

    /// A client of this cluster with the cluster file's client certificate.
    pub fn client(&self, timeout: Duration) -> Result<Client, LaunchError> {
        let file = ClusterFile::load(&self.path)?;
        Ok(Client::from_cluster_file(&file, None, timeout)?)
    }

    pub fn is_running(&self, id: NodeId) -> bool {
        self.children.contains_key(&id)
    }

    /// Process ids of the running nodes.
    pub fn pids(&self) -> Vec<u32> {
        self.children.values().map(Child::id).collect()
    }

    /// From its next start on, node `id` dials each peer in `via` at the
    /// address given there instead of the cluster file's (for tests that
    /// route peer links through a proxy); an empty map undoes it.
    pub fn set_peer_via(
        &mut self,
        id: NodeId,
        via: BTreeMap<NodeId, SocketAddr>,
    ) -> Result<(), LaunchError> {
        if self.file.node(id).is_none() {
            return Err(LaunchError::UnknownNode(id));
        }
        for &peer in via.keys() {
            if peer == id || self.file.node(peer).is_none() {
                return Err(LaunchError::NotAPeer { id, peer });
            }
        }
        self.peer_via.insert(id, via);
        Ok(())
    }

    /// Starts (or restarts after [`LocalCluster::kill`]) node `id`.
    pub fn start_node(&mut self, id: NodeId) -> Result<(), LaunchError> {
        if self.file.node(id).is_none() {
            return Err(LaunchError::UnknownNode(id));
        }
        if self.is_running(id) {
            return Err(LaunchError::AlreadyRunning(id));
        }
        let log_path = self.log_path(id);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(self.started.contains(&id))
            .truncate(!self.started.contains(&id))
            .open(&log_path)
            .map_err(io_error("creating", &log_path))?;
        let log_err = log.try_clone().map_err(io_error("opening", &log_path))?;
        let env = self.env.get(&id).cloned().unwrap_or_default();
        let mut command = Command::new(&self.config.exe);
        command
            .envs(env)
            .arg("serve")
            .arg("--cluster")
            .arg(&self.path)
            .arg("--id")
            .arg(id.to_string())
            .arg("--data")
            .arg(self.data_dir(id));
        for (peer, addr) in self.peer_via.get(&id).into_iter().flatten() {
            command.arg("--peer-via").arg(format!("{peer}={addr}"));
        }
        let child = command
            .env("RUST_LOG", &self.config.rust_log)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|source| LaunchError::Spawn { id, source })?;
        let pid = child.id();
        self.children.insert(id, child);
        self.started.insert(id);
        if let Some(node) = self.file.nodes.iter_mut().find(|n| n.id == id) {
            node.pid = Some(pid);
        }
        self.write_file()
    }

    /// Sets `key=value` in node `id`'s environment from its next start on
    /// (tests: e.g. [`crate::node::UNSYNCED_STORE_ENV`]).
    pub fn set_node_env(&mut self, id: NodeId, key: &str, value: &str) {
        self.env
            .entry(id)
            .or_default()
            .insert(key.to_string(), value.to_string());
    }

    /// SIGKILL: no shutdown path runs, unsynced state is lost.
    pub fn kill(&mut self, id: NodeId) -> Result<ExitStatus, LaunchError> {
        let mut child = self
            .children
            .remove(&id)
            .ok_or(LaunchError::NotRunning(id))?;
        child
            .kill()
            .and_then(|()| child.wait())
            .map_err(|source| LaunchError::Kill { id, source })
    }

    /// SIGKILL, then started again on the same data directory.
    pub fn restart(&mut self, id: NodeId) -> Result<(), LaunchError> {
        self.kill(id)?;
        self.start_node(id)
    }

    /// Fails with [`LaunchError::Exited`] if a node has exited on its own.
    pub fn check_running(&mut self) -> Result<(), LaunchError> {
        match self.exited().map_err(LaunchError::Wait)? {
            Some((id, status)) => Err(LaunchError::Exited {
                id,
                status,
                log_tail: self.log_tail(id),
            }),
            None => Ok(()),
        }
    }

    /// Waits until some node exits on its own; it is no longer running then.
    pub async fn any_exit(&mut self) -> io::Result<(NodeId, ExitStatus)> {
        loop {
            if let Some(exit) = self.exited()? {
                return Ok(exit);
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    /// Runs `probe` every `retry_every` until it gives `Some`, for at most
    /// `timeout` (a probe that hangs included). Fails at once when a node
    /// exits: a node that died at start would otherwise look like a slow
    /// election. An `Err` from the probe is final.
    pub async fn wait_ready<T, Fut>(
        &mut self,
        timeout: Duration,
        retry_every: Duration,
        mut probe: impl FnMut() -> Fut,
    ) -> Result<T, LaunchError>
    where
        Fut: Future<Output = Result<Option<T>, ClientError>>,
    {
        let attempts = async {
            loop {
                self.check_running()?;
                if let Some(ready) = probe().await? {
                    return Ok(ready);
                }
                // Polls processes that are starting up; there is no event to wait on.
                tokio::time::sleep(retry_every).await;
            }
        };
        tokio::time::timeout(timeout, attempts)
            .await
            .map_err(|_| LaunchError::NotReady(timeout))?
    }

    /// SIGTERM to every node, then SIGKILL to those still running after
    /// `grace`; returns the ones that had to be killed.
    pub async fn stop(&mut self, grace: Duration) -> Vec<NodeId> {
        for child in self.children.values() {
            if let Ok(pid) = i32::try_from(child.id()) {
                // Already gone is fine: the wait below reaps it.
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
        }
        let deadline = tokio::time::Instant::now() + grace;
        let mut killed = Vec::new();
        for (id, mut child) in std::mem::take(&mut self.children) {
            loop {
                match child.try_wait() {
                    Ok(None) if tokio::time::Instant::now() < deadline => {
                        tokio::time::sleep(POLL_EVERY).await;
                    }
                    Ok(None) => {
                        killed.push(id);
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    Ok(Some(_)) | Err(_) => break,
                }
            }
        }
        killed
    }

    /// A node that has exited on its own (reaped, no longer running), if any.
    pub fn exited(&mut self) -> io::Result<Option<(NodeId, ExitStatus)>> {
        let mut exit = None;
        for (&id, child) in &mut self.children {
            if let Some(status) = child.try_wait()? {
                exit = Some((id, status));
                break;
            }
        }
        if let Some((id, _)) = exit {
            self.children.remove(&id);
        }
        Ok(exit)
    }

    fn log_tail(&self, id: NodeId) -> String {
        let log = self.log(id);
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }

    /// Written whole and renamed into place: a CLI reading it concurrently
    /// never sees half a file.
    fn write_file(&self) -> Result<(), LaunchError> {
        let tmp = self.path.with_extension("toml.tmp");
        std::fs::write(&tmp, self.file.to_toml()).map_err(io_error("writing", &tmp))?;
        std::fs::rename(&tmp, &self.path).map_err(io_error("writing", &self.path))
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for (_, mut child) in std::mem::take(&mut self.children) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Per node a UDP port (QUIC) and a TCP port (admin), picked by binding
/// port 0; all held until every one is picked, so no two are the same.
fn free_ports(n: usize) -> io::Result<Vec<(SocketAddr, SocketAddr)>> {
    let mut held = Vec::new();
    for _ in 0..n {
        let udp = UdpSocket::bind("127.0.0.1:0")?;
        let tcp = TcpListener::bind("127.0.0.1:0")?;
        held.push((udp.local_addr()?, tcp.local_addr()?, udp, tcp));
    }
    Ok(held.into_iter().map(|(u, t, _, _)| (u, t)).collect())
}
