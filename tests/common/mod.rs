//! A real cluster for integration tests: `paxlog serve` processes on loopback,
//! each with its own RocksDB directory, mutual TLS from generated certificates.
//! Processes are killed and directories removed when the cluster is dropped.

#![allow(dead_code)]

pub mod disk;
pub mod history;
pub mod nemesis;
pub mod observe;
pub mod observers;
pub mod proxy;
pub mod thrifty;
pub mod workload;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use paxlog::client::Client;
use paxlog::cluster::ClusterFile;
use paxlog::launch::{LaunchConfig, LocalCluster};
use paxlog::proto::NodeStatus;

pub const CLIENT: &str = "tester";
/// Upper bound for any wait on a cluster condition; a test that needs longer is broken.
pub const WAIT_MAX: Duration = Duration::from_secs(60);

/// Dropping it fails the test if a node panicked or exited on its own
/// while the test ran (unless the test is already failing).
pub struct TestCluster {
    /// Declared before `dir`: its children are killed before the directory goes.
    local: LocalCluster,
    pub dir: tempfile::TempDir,
    pub file: ClusterFile,
    pub cluster_path: PathBuf,
    /// Set by tests that break nodes on purpose (the unsynced power-loss
    /// run): a node's panic or exit then does not fail the test.
    pub tolerate_node_failures: bool,
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        if std::thread::panicking() || self.tolerate_node_failures {
            return;
        }
        let panicked = self.panicked_nodes();
        assert!(
            panicked.is_empty(),
            "nodes {panicked:?} panicked during the test; node {} logged:\n{}",
            panicked[0],
            self.log(panicked[0])
        );
        if let Err(e) = self.local.check_running() {
            panic!("a node exited on its own during the test: {e}");
        }
    }
}

impl TestCluster {
    /// Certificates and a cluster file for `n` nodes; starts none of them.
    pub fn new(n: u64) -> TestCluster {
        // PAXLOG_KEEP_TEST_DIRS=1 keeps node logs and data for a post-mortem.
        let keep = std::env::var_os("PAXLOG_KEEP_TEST_DIRS").is_some();
        let dir = tempfile::Builder::new()
            .prefix("paxlog-test-")
            .disable_cleanup(keep)
            .tempdir()
            .expect("tempdir");
        if keep {
            println!("test cluster kept in {}", dir.path().display());
        }
        let local = LocalCluster::create(LaunchConfig {
            dir: dir.path().to_path_buf(),
            exe: exe(),
            nodes: n,
            cluster_id: "test".into(),
            client: CLIENT.into(),
            admin: true,
            rust_log: "info".into(),
        })
        .expect("create the local cluster");
        TestCluster {
            file: local.file().clone(),
            cluster_path: local.cluster_path().to_path_buf(),
            local,
            dir,
            tolerate_node_failures: false,
        }
    }

    /// Starts `n` nodes and waits for a leader.
    pub fn start(n: u64) -> TestCluster {
        let mut cluster = TestCluster::new(n);
        for id in 1..=n {
            cluster.start_node(id);
        }
        cluster.wait_for_leader();
        cluster
    }

    /// Nodes whose log shows a panic (a panic in a task does not end the
    /// process, so the exit status alone cannot tell).
    pub fn panicked_nodes(&self) -> Vec<u64> {
        self.ids()
            .into_iter()
            .filter(|&id| self.log(id).contains("panicked at"))
            .collect()
    }

    pub fn ids(&self) -> Vec<u64> {
        self.local.ids()
    }

    /// A new node for a membership change (certificate, ports, cluster file
    /// entry); not started, not a member.
    pub fn add_node(&mut self, id: u64) -> paxlog::cluster::NodeEntry {
        let entry = self.local.add_node(id).expect("add a node");
        self.file = self.local.file().clone();
        entry
    }

    pub fn data_dir(&self, id: u64) -> PathBuf {
        self.local.data_dir(id)
    }

    /// A node that exited on its own since the last look (reaped), if any.
    pub fn exited(&mut self) -> Option<(u64, std::process::ExitStatus)> {
        self.local.exited().expect("wait for node processes")
    }

    pub fn pid(&self, id: u64) -> u32 {
        self.local
            .file()
            .node(id)
            .and_then(|n| n.pid)
            .expect("a running node's pid")
    }

    /// Sets `key=value` in node `id`'s environment from its next start on.
    pub fn set_node_env(&mut self, id: u64, key: &str, value: &str) {
        self.local.set_node_env(id, key, value);
    }

    /// Node `id` dials the peers in `via` there instead of at their cluster
    /// file address, from its next start on (the proxied tests' hook).
    pub fn set_peer_via(&mut self, id: u64, via: BTreeMap<u64, SocketAddr>) {
        self.local
            .set_peer_via(id, via)
            .expect("peer overrides name peers");
    }

    /// Where each node listens, as the cluster file says.
    pub fn addrs(&self) -> BTreeMap<u64, SocketAddr> {
        self.file.addrs()
    }

    pub fn start_node(&mut self, id: u64) {
        self.local.start_node(id).expect("start paxlog serve");
    }

    /// SIGKILL: no shutdown path runs, unsynced state is lost. Fails the
    /// test unless the process died of this very signal (not of an earlier
    /// crash); returns how it ended.
    pub fn kill_node(&mut self, id: u64) -> std::process::ExitStatus {
        use std::os::unix::process::ExitStatusExt;
        let status = self.local.kill(id).expect("SIGKILL and reap");
        assert_eq!(
            status.signal(),
            Some(9),
            "node {id} did not die of the SIGKILL ({status}); its log:\n{}",
            self.log(id)
        );
        status
    }

    /// SIGSTOP: the node freezes mid-step, with its sockets and timers
    /// left as they are. Returns once the kernel shows it stopped.
    pub fn pause_node(&self, id: u64) {
        let pid = self.pid(id);
        signal(pid, nix::sys::signal::Signal::SIGSTOP);
        workload::wait_until(&format!("node {id} to be stopped"), WAIT_MAX, || {
            proc_state(pid) == 'T'
        });
    }

    /// SIGCONT after [`TestCluster::pause_node`].
    pub fn resume_node(&self, id: u64) {
        let pid = self.pid(id);
        signal(pid, nix::sys::signal::Signal::SIGCONT);
        assert_ne!(proc_state(pid), 'T', "node {id} runs again");
    }

    pub fn is_running(&self, id: u64) -> bool {
        self.local.is_running(id)
    }

    /// Node `id`'s `/metrics` (Prometheus text), from its admin port.
    pub fn metrics(&self, id: u64) -> String {
        let admin = self.file.node(id).and_then(|n| n.admin).expect("admin");
        let (code, body) = http_get(admin, "/metrics");
        assert_eq!(code, 200, "/metrics of node {id}: {body}");
        body
    }

    pub fn log(&self, id: u64) -> String {
        self.local.log(id)
    }

    pub fn client(&self) -> Client {
        self.client_with_timeout(Duration::from_secs(10))
    }

    pub fn client_with_timeout(&self, timeout: Duration) -> Client {
        let _runtime = runtime().enter();
        self.local.client(timeout).expect("client")
    }

    /// A client that talks to node `id` only, to read what *that* node holds.
    pub fn client_for_node(&self, id: u64, timeout: Duration) -> Client {
        let tls = paxlog_net::ClientTls::load(&self.dir.path().join("certs"), CLIENT).expect("tls");
        let nodes = [(id, addr_of(&self.file, id))].into_iter().collect();
        let _runtime = runtime().enter();
        Client::new(tls, paxlog::client::ClientOptions { nodes, timeout }).expect("client")
    }

    /// Runs the `paxlog` CLI against this cluster; returns (exit ok, stdout, stderr).
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        let mut cmd = Command::new(exe());
        cmd.args(args).arg("--cluster").arg(&self.cluster_path);
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn paxlog");
        if let Some(input) = stdin {
            use std::io::Write;
            let mut pipe = child.stdin.take().expect("stdin");
            pipe.write_all(input.as_bytes()).expect("write stdin");
        }
        let out = child.wait_with_output().expect("paxlog output");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub fn statuses(&self) -> Vec<(u64, Option<NodeStatus>)> {
        let client = self.client_with_timeout(Duration::from_secs(2));
        block_on(client.status_all())
            .into_iter()
            .map(|(id, _, s)| (id, s.ok()))
            .collect()
    }

    /// Waits until the cluster has settled on a leader and returns its id:
    /// a majority answers, every node that answers names it, and it says it
    /// leads. A node that merely says it leads may be deposed already: a
    /// fresh cluster's first leader is sometimes replaced within its first
    /// second, and a test that then cut off or killed "the leader" hit a
    /// follower (seen in `quorum_loss`: the real leader counted as new).
    pub fn wait_for_leader(&self) -> u64 {
        let majority = self.ids().len() / 2 + 1;
        self.wait_for("a leader every answering node follows", |statuses| {
            let answering: Vec<&NodeStatus> =
                statuses.iter().filter_map(|(_, s)| s.as_ref()).collect();
            let leader = answering.first()?.leader?;
            // The leader must answer too: the followers of a killed leader
            // name it until their election timers fire.
            let leads = answering
                .iter()
                .any(|s| s.id == leader && s.role == paxlog::core::Role::Leader);
            let settled = leads
                && answering.len() >= majority
                && answering.iter().all(|s| s.leader == Some(leader));
            settled.then_some(leader)
        })
    }

    /// Appends `values` through one pipelining client, `window` in flight,
    /// fails the test on any error or if they are not all answered within
    /// [`WAIT_MAX`] (the client itself retries for as long as it takes),
    /// waits until every running node has them chosen, and returns the
    /// highest index.
    pub fn append_chosen(&self, values: Vec<bytes::Bytes>, window: usize) -> u64 {
        let n = values.len();
        let client = self.client();
        let appends = client.append_all(values, window);
        let answered = block_on(async { tokio::time::timeout(WAIT_MAX, appends).await })
            .unwrap_or_else(|_| panic!("{n} appends were not all answered within {WAIT_MAX:?}"));
        let last = answered
            .into_iter()
            .map(|r| r.expect("append"))
            .max()
            .expect("at least one value");
        self.wait_for_chosen(last);
        last
    }

    /// Waits until every running node's chosen index is at least `index`.
    pub fn wait_for_chosen(&self, index: u64) {
        self.wait_for(
            &format!("every running node to choose {index}"),
            |statuses| {
                let running: Vec<_> = statuses
                    .iter()
                    .filter(|(id, _)| self.local.is_running(*id))
                    .collect();
                running
                    .iter()
                    .all(|(_, s)| s.as_ref().is_some_and(|s| s.chosen_index >= index))
                    .then_some(())
            },
        );
    }

    /// Polls cluster status until `check` returns Some, at most [`WAIT_MAX`].
    pub fn wait_for<T>(
        &self,
        what: &str,
        mut check: impl FnMut(&[(u64, Option<NodeStatus>)]) -> Option<T>,
    ) -> T {
        let started = Instant::now();
        loop {
            let statuses = self.statuses();
            if let Some(found) = check(&statuses) {
                return found;
            }
            if started.elapsed() > WAIT_MAX {
                panic!("waited {WAIT_MAX:?} for {what}; last status: {statuses:#?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The `paxlog` binary the tests run: `PAXLOG_TEST_EXE` if set, else the one
/// cargo built. Worktrees that share a target directory overwrite each
/// other's `paxlog`, so a run that must test its own build can copy it aside
/// first and point this variable at the copy.
pub fn exe() -> PathBuf {
    std::env::var_os("PAXLOG_TEST_EXE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_paxlog")))
}

pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    runtime().block_on(f)
}

pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
    })
}

pub fn addr_of(file: &ClusterFile, id: u64) -> SocketAddr {
    file.node(id).expect("node").addr
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn signal(pid: u32, signal: nix::sys::signal::Signal) {
    let pid = nix::unistd::Pid::from_raw(pid as i32);
    nix::sys::signal::kill(pid, signal).unwrap_or_else(|e| panic!("{signal} to {pid}: {e}"));
}

/// The process's state letter in /proc (`T`: stopped by a signal).
pub fn proc_state(pid: u32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc stat");
    // The state follows the command name, which is in parentheses.
    stat.rsplit(')')
        .next()
        .and_then(|rest| rest.trim_start().chars().next())
        .expect("a state in /proc stat")
}

/// The appends a node refused as out of order (`sample` it from `/metrics`).
pub const OUT_OF_ORDER_SERIES: &str = "paxlog_append_answers_total{outcome=\"out_of_order\"}";

/// The value of the series named exactly `series` (name and labels as
/// rendered) in a `/metrics` body, if present.
pub fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().expect("a number"))
    })
}

/// A plain HTTP/1.0 GET; returns the status code and body.
pub fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to admin port");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    let code = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

/// Every query (`expr`) of the Grafana dashboard in `ops/`.
pub fn dashboard_exprs() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/ops/grafana-dashboard.json");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("the dashboard")).expect("JSON");
    let mut exprs = Vec::new();
    for panel in json["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            exprs.push(target["expr"].as_str().expect("expr").to_string());
        }
    }
    exprs
}
