//! Three openraft nodes in one process over real QUIC with mutual TLS,
//! RocksDB stores, and the benchmark's client.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::try_join_all;
use openraft::ServerState;
use paxlog_net::{framed_bi, ClientEndpoint, ClientTls};
use tempfile::TempDir;

use super::{make_certs, WAIT};
use crate::raft::cluster::{ClientSide, RaftAppender, CLIENT_NAME};
use crate::raft::node::{NodeArgs, RunningNode};
use crate::raft::types::NodeId;
use crate::raft::wire::ClientResponse;
use crate::system::free_addrs;

const PAYLOAD_BYTES_MAX: usize = 1024;

struct TestCluster {
    _dir: TempDir,
    addrs: BTreeMap<NodeId, SocketAddr>,
    nodes: BTreeMap<NodeId, RunningNode>,
    client: Arc<ClientSide>,
}

impl TestCluster {
    async fn start(batch_payloads_max: u64) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let certs = make_certs(dir.path());
        let addrs = free_addrs(3).expect("free ports");
        let members: Vec<(NodeId, _)> = (1..=3).zip(addrs).collect();
        let mut nodes = BTreeMap::new();
        for &(id, _) in &members {
            let args = NodeArgs {
                id,
                members: members.clone(),
                data: dir.path().join(format!("raft-{id}")),
                certs: certs.clone(),
                payload_bytes_max: PAYLOAD_BYTES_MAX,
                initialize: id == 1,
                batch_payloads_max,
            };
            let node = RunningNode::start(&args).await.expect("start node");
            nodes.insert(id, node);
        }
        let addrs: BTreeMap<NodeId, SocketAddr> = members.into_iter().collect();
        let client = ClientSide::new(&certs, addrs.clone(), PAYLOAD_BYTES_MAX).expect("client");
        let cluster = Self {
            _dir: dir,
            addrs,
            nodes,
            client: Arc::new(client),
        };
        let mut probe = RaftAppender::new(cluster.client.clone());
        tokio::time::timeout(WAIT, async {
            while probe
                .append_bytes(Bytes::from_static(b"ready"))
                .await
                .is_err()
            {}
        })
        .await
        .expect("the cluster commits a first append");
        cluster
    }

    /// Runs `clients` concurrent appenders of `each` appends; returns the
    /// payloads committed (all of them, or the test fails).
    async fn append_concurrently(&self, clients: usize, each: usize) -> u64 {
        let tasks = (0..clients).map(|c| {
            let mut appender = RaftAppender::new(self.client.clone());
            tokio::spawn(async move {
                for i in 0..each {
                    appender
                        .append_bytes(Bytes::from(format!("client {c} append {i}")))
                        .await?;
                }
                anyhow::Ok(())
            })
        });
        let results = tokio::time::timeout(WAIT, try_join_all(tasks))
            .await
            .expect("appends finish")
            .expect("append tasks");
        for r in results {
            r.expect("every append commits");
        }
        (clients * each) as u64
    }

    async fn leader(&self) -> NodeId {
        let (_, any) = self.nodes.iter().next().expect("a node");
        let metrics = any
            .raft
            .wait(Some(WAIT))
            .metrics(|m| m.current_leader.is_some(), "a leader is known")
            .await
            .expect("leader");
        metrics.current_leader.expect("checked above")
    }

    /// Waits until every running node applied `payloads` client payloads.
    async fn wait_applied_everywhere(&self, payloads: u64) {
        for (id, node) in &self.nodes {
            let index = self.leader_last_applied().await;
            node.raft
                .wait(Some(WAIT))
                .applied_index_at_least(Some(index), "caught up with the leader")
                .await
                .unwrap_or_else(|e| panic!("node {id}: {e}"));
            assert_eq!(
                node.applied.payloads.load(Ordering::Relaxed),
                payloads,
                "node {id} applied a different number of payloads"
            );
        }
    }

    async fn leader_last_applied(&self) -> u64 {
        let leader = self.leader().await;
        let metrics = self.nodes[&leader].raft.metrics().borrow().clone();
        metrics.last_applied.map(|l| l.index).unwrap_or_default()
    }

    async fn stop(self) {
        for (_, node) in self.nodes {
            node.stop().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_node_applies_every_concurrent_append() {
    let cluster = TestCluster::start(1024).await;
    let payloads = 1 + cluster.append_concurrently(16, 20).await;
    cluster.wait_applied_everywhere(payloads).await;
    // The linearizable read path the benchmark's tail workload uses.
    let mut reader = RaftAppender::new(cluster.client.clone());
    crate::system::Appender::tail(&mut reader)
        .await
        .expect("a linearizable tail");
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unbatched_mode_commits_one_entry_per_payload() {
    let cluster = TestCluster::start(1).await;
    let payloads = 1 + cluster.append_concurrently(4, 10).await;
    cluster.wait_applied_everywhere(payloads).await;
    // Entries: the initial membership, the leader's blank one, one per payload.
    assert_eq!(cluster.leader_last_applied().await, payloads + 1);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_sent_to_a_follower_is_redirected() {
    let cluster = TestCluster::start(1024).await;
    let leader = cluster.leader().await;
    let follower = (1..=3).find(|&id| id != leader).expect("a follower");
    cluster.client.set_leader_guess(follower);
    let mut appender = RaftAppender::new(cluster.client.clone());
    appender
        .append_bytes(Bytes::from_static(b"via a follower"))
        .await
        .expect("redirected to the leader");
    assert_eq!(cluster.client.leader_guess(), leader);
    cluster.wait_applied_everywhere(2).await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn appends_continue_after_the_leader_stops() {
    let mut cluster = TestCluster::start(1024).await;
    let mut payloads = 1 + cluster.append_concurrently(4, 5).await;
    let old_leader = cluster.leader().await;
    let stopped = cluster.nodes.remove(&old_leader).expect("leader node");
    stopped.stop().await;
    // The fault happened: the survivors elect someone else.
    let (_, survivor) = cluster.nodes.iter().next().expect("a survivor");
    let metrics = survivor
        .raft
        .wait(Some(WAIT))
        .metrics(
            |m| m.current_leader.is_some_and(|l| l != old_leader),
            "a new leader",
        )
        .await
        .expect("new leader elected");
    let new_leader = metrics.current_leader.expect("checked above");
    assert_ne!(new_leader, old_leader);
    let new_state = cluster.nodes[&new_leader].raft.metrics().borrow().state;
    assert_eq!(new_state, ServerState::Leader);
    payloads += cluster.append_concurrently(4, 5).await;
    cluster.wait_applied_everywhere(payloads).await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_oversized_payload_is_refused_and_nothing_else_changes() {
    let cluster = TestCluster::start(1024).await;
    let mut appender = RaftAppender::new(cluster.client.clone());
    let err = appender
        .append_bytes(Bytes::from(vec![7u8; PAYLOAD_BYTES_MAX + 1]))
        .await
        .expect_err("too large");
    assert!(format!("{err:#}").contains("exceeds"), "{err:#}");
    appender
        .append_bytes(Bytes::from_static(b"still fine"))
        .await
        .expect("the stream still works");
    cluster.wait_applied_everywhere(2).await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_garbage_request_gets_an_error_and_the_node_keeps_serving() {
    let cluster = TestCluster::start(1024).await;
    let leader = cluster.leader().await;
    let certs = cluster._dir.path().join("certs");
    let endpoint = ClientEndpoint::new(ClientTls::load(&certs, CLIENT_NAME).expect("client cert"))
        .expect("client endpoint");
    let conn = endpoint
        .connect(cluster.addrs[&leader], leader)
        .await
        .expect("connect to the leader");
    // Variant 7 of ClientRequest does not exist.
    let (mut writer, mut reader) = framed_bi::<u8, ClientResponse>(&conn, 1 << 20)
        .await
        .expect("stream");
    writer.write(&7).await.expect("send garbage");
    let response = tokio::time::timeout(WAIT, reader.read())
        .await
        .expect("answered")
        .expect("a well-formed answer")
        .expect("an answer before the end");
    assert!(
        matches!(&response, ClientResponse::Err(e) if e.contains("bad request frame")),
        "{response:?}"
    );
    let end = tokio::time::timeout(WAIT, reader.read())
        .await
        .expect("ended");
    assert!(matches!(end, Ok(None)), "the stream ends after a bad frame");
    let mut appender = RaftAppender::new(cluster.client.clone());
    appender
        .append_bytes(Bytes::from_static(b"after garbage"))
        .await
        .expect("the node still serves");
    cluster.wait_applied_everywhere(2).await;
    cluster.stop().await;
}
