//! Certificate generation: files, modes, CA reuse, bad names.

mod common;

use common::*;
use paxlog_net::{generate_certs, CertPaths, NetError};

#[test]
fn keys_are_private_and_bad_names_write_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = generate_certs(dir.path(), &[1], &["Bad Name".to_string()]);
    assert!(matches!(err, Err(NetError::BadName { .. })), "got {err:?}");
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("ls").count(),
        0,
        "files written"
    );

    certs(dir.path(), &[1], &["alice"]);
    let paths = CertPaths::new(dir.path());
    let (node_pem, node_key) = paths.node(1);
    let (client_pem, client_key) = paths.client("alice");
    for f in [
        paths.ca(),
        paths.ca_key(),
        node_pem,
        node_key.clone(),
        client_pem,
        client_key.clone(),
    ] {
        assert!(f.exists(), "{} missing", f.display());
    }
    #[cfg(unix)]
    for key in [paths.ca_key(), node_key, client_key] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} has mode {mode:o}", key.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_nodes_join_under_the_same_ca() {
    init_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    certs(dir.path(), &[1], &[]);
    let ca_before = std::fs::read(CertPaths::new(dir.path()).ca()).expect("ca");
    certs(dir.path(), &[2], &[]);
    let ca_after = std::fs::read(CertPaths::new(dir.path()).ca()).expect("ca");
    assert_eq!(ca_before, ca_after, "the CA was replaced");
    let n1 = bind(dir.path(), 1, test_config());
    let n2 = bind(dir.path(), 2, test_config());
    let (a1, a2) = (n1.local_addr(), n2.local_addr());
    let (tx2, _rx2) = n2.peers::<Msg>(peer_map(&[(1, a1)])).expect("peers");
    let (_tx1, mut rx1) = n1.peers::<Msg>(peer_map(&[(2, a2)])).expect("peers");
    tx2.try_send(1, Msg::Ping(5)).expect("queue");
    assert_eq!(within("recv", rx1.recv()).await, Some((2, Msg::Ping(5))));
}
