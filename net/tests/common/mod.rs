//! Shared helpers of the paxlog-net integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use paxlog_net::{generate_certs, NetConfig, NodeEndpoint, NodeId, NodeTls};
use serde::{Deserialize, Serialize};

/// Bound of every awaited condition in these tests.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    Ping(u64),
    Blob(Vec<u8>),
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "paxlog_net=info".into()),
        )
        .with_test_writer()
        .try_init();
}

pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(TEST_TIMEOUT, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// Short timers so that disconnects and reconnects happen quickly in tests.
pub fn test_config() -> NetConfig {
    NetConfig {
        idle_timeout_ms: 2_000,
        keep_alive_ms: 300,
        reconnect_backoff_min_ms: 20,
        reconnect_backoff_max_ms: 200,
        ..NetConfig::default()
    }
}

pub fn certs(dir: &Path, nodes: &[NodeId], clients: &[&str]) {
    let clients: Vec<String> = clients.iter().map(|c| c.to_string()).collect();
    generate_certs(dir, nodes, &clients).expect("generate certs");
}

pub fn bind(dir: &Path, id: NodeId, cfg: NetConfig) -> NodeEndpoint {
    let tls = NodeTls::load(dir, id).expect("load node tls");
    NodeEndpoint::bind(SocketAddr::from(([127, 0, 0, 1], 0)), tls, cfg).expect("bind")
}

pub fn peer_map(entries: &[(NodeId, SocketAddr)]) -> BTreeMap<NodeId, SocketAddr> {
    entries.iter().copied().collect()
}

/// A loopback address nobody listens on (bound, read, released).
pub fn dead_addr() -> SocketAddr {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind probe socket");
    s.local_addr().expect("probe addr")
}
