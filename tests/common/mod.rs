//! A real cluster for integration tests: `paxlog serve` processes on loopback,
//! each with its own RocksDB directory, mutual TLS from generated certificates.
//! Processes are killed and directories removed when the cluster is dropped.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use paxlog::client::Client;
use paxlog::cluster::{ClusterFile, NodeEntry};
use paxlog::proto::NodeStatus;

pub const CLIENT: &str = "tester";
/// Upper bound for any wait on a cluster condition; a test that needs longer is broken.
pub const WAIT_MAX: Duration = Duration::from_secs(60);

pub struct TestCluster {
    pub dir: tempfile::TempDir,
    pub file: ClusterFile,
    pub cluster_path: PathBuf,
    children: BTreeMap<u64, Child>,
}

impl TestCluster {
    /// Certificates and a cluster file for `n` nodes; starts none of them.
    pub fn new(n: u64) -> TestCluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let ids: Vec<u64> = (1..=n).collect();
        paxlog_net::generate_certs(&dir.path().join("certs"), &ids, &[CLIENT.to_string()])
            .expect("generate certs");
        let mut held = Vec::new();
        let mut nodes = Vec::new();
        for id in &ids {
            let udp = UdpSocket::bind("127.0.0.1:0").expect("udp port");
            let tcp = TcpListener::bind("127.0.0.1:0").expect("tcp port");
            nodes.push(NodeEntry {
                id: *id,
                addr: udp.local_addr().expect("addr"),
                admin: Some(tcp.local_addr().expect("addr")),
                data: Some(PathBuf::from(format!("data/node-{id}"))),
                pid: None,
            });
            held.push((udp, tcp));
        }
        drop(held);
        let file = ClusterFile {
            cluster_id: "test".into(),
            certs: PathBuf::from("certs"),
            client: Some(CLIENT.into()),
            nodes,
        };
        let cluster_path = dir.path().join("cluster.toml");
        std::fs::write(&cluster_path, file.to_toml()).expect("write cluster file");
        TestCluster {
            dir,
            file,
            cluster_path,
            children: BTreeMap::new(),
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

    pub fn ids(&self) -> Vec<u64> {
        self.file.nodes.iter().map(|n| n.id).collect()
    }

    pub fn data_dir(&self, id: u64) -> PathBuf {
        self.dir.path().join("data").join(format!("node-{id}"))
    }

    pub fn start_node(&mut self, id: u64) {
        assert!(
            !self.children.contains_key(&id),
            "node {id} already running"
        );
        let log_path = self.dir.path().join(format!("node-{id}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_paxlog"))
            .arg("serve")
            .arg("--cluster")
            .arg(&self.cluster_path)
            .arg("--id")
            .arg(id.to_string())
            .arg("--data")
            .arg(self.data_dir(id))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn paxlog serve");
        self.children.insert(id, child);
    }

    /// SIGKILL: no shutdown path runs, unsynced state is lost.
    pub fn kill_node(&mut self, id: u64) {
        let mut child = self.children.remove(&id).expect("node running");
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
    }

    pub fn is_running(&self, id: u64) -> bool {
        self.children.contains_key(&id)
    }

    pub fn log(&self, id: u64) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("node-{id}.log"))).unwrap_or_default()
    }

    pub fn client(&self) -> Client {
        self.client_with_timeout(Duration::from_secs(10))
    }

    pub fn client_with_timeout(&self, timeout: Duration) -> Client {
        let file = ClusterFile::load(&self.cluster_path).expect("cluster file");
        let _runtime = runtime().enter();
        Client::from_cluster_file(&file, None, timeout).expect("client")
    }

    /// Runs the `paxlog` CLI against this cluster; returns (exit ok, stdout, stderr).
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_paxlog"));
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

    /// Waits until some running node reports itself leader; returns its id.
    pub fn wait_for_leader(&self) -> u64 {
        self.wait_for("a leader", |statuses| {
            statuses
                .iter()
                .filter_map(|(_, s)| s.as_ref())
                .find(|s| s.role == paxlog::core::Role::Leader)
                .map(|s| s.id)
        })
    }

    /// Waits until every running node's chosen index is at least `index`.
    pub fn wait_for_chosen(&self, index: u64) {
        self.wait_for(
            &format!("every running node to choose {index}"),
            |statuses| {
                let running: Vec<_> = statuses
                    .iter()
                    .filter(|(id, _)| self.children.contains_key(id))
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

impl Drop for TestCluster {
    fn drop(&mut self) {
        for (_, mut child) in std::mem::take(&mut self.children) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
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
