//! Tests of the openraft peer: the storage (openraft's own suite plus
//! durability checks), the RPC router, and 3-node clusters in one process
//! over real QUIC.

mod cluster;
mod rpc;
mod store;

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::cluster::CLIENT_NAME;

/// Bound of every wait in these tests.
const WAIT: Duration = Duration::from_secs(30);

/// Certificates for nodes 1..=3 and the benchmark client under `dir`.
fn make_certs(dir: &Path) -> PathBuf {
    let certs = dir.join("certs");
    paxlog_net::generate_certs(&certs, &[1, 2, 3], &[CLIENT_NAME.to_string()])
        .expect("generate certificates");
    certs
}
