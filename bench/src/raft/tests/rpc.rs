//! The RPC router over a real peer link: timeouts, and responses only from
//! the node a call went to.

use std::collections::BTreeMap;
use std::time::Duration;

use openraft::raft::{VoteRequest, VoteResponse};
use paxlog_net::{NetConfig, NodeEndpoint, NodeTls};

use super::{make_certs, WAIT};
use crate::raft::network::{CallError, Rpc};
use crate::raft::types::Vote;
use crate::raft::wire::{PeerMsg, RpcFailure, RpcRequest, RpcResponse};
use crate::system::free_addrs;

fn vote_request() -> RpcRequest {
    RpcRequest::Vote(VoteRequest::new(Vote::new(1, 1), None))
}

/// Node 1's router; node 2 is configured but never started.
fn lone_router(dir: &std::path::Path) -> (NodeEndpoint, Rpc) {
    let certs = make_certs(dir);
    let addrs = free_addrs(2).expect("free ports");
    let endpoint = NodeEndpoint::bind(
        addrs[0],
        NodeTls::load(&certs, 1).expect("node cert"),
        NetConfig::default(),
    )
    .expect("bind");
    let peers = BTreeMap::from([(1, addrs[0]), (2, addrs[1])]);
    let (sender, _inbound) = endpoint.peers::<PeerMsg>(peers).expect("peers");
    (endpoint, Rpc::new(1, sender))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_nobody_answers_times_out_and_leaves_nothing_pending() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_endpoint, rpc) = lone_router(dir.path());
    let err = rpc
        .call(2, vote_request(), Duration::from_millis(200))
        .await
        .expect_err("node 2 is down");
    assert!(matches!(err, CallError::Timeout(_)), "{err}");
    assert_eq!(rpc.pending_len(), 0);
    // A response to no call, or to a call to another node, completes nothing.
    assert!(!rpc.complete(2, 999, Err(RpcFailure::Fatal("late".into()))));
    assert!(!rpc.complete(3, 1, Err(RpcFailure::Fatal("stranger".into()))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_called_node_can_answer() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_endpoint, rpc) = lone_router(dir.path());
    let caller = rpc.clone();
    let call = tokio::spawn(async move { caller.call(2, vote_request(), WAIT).await });
    tokio::time::timeout(WAIT, async {
        while rpc.pending_len() == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the call is registered");
    // Ids start at 1.
    let answer = || {
        Ok(RpcResponse::Vote(VoteResponse::new(
            Vote::new(1, 2),
            None,
            true,
        )))
    };
    assert!(
        !rpc.complete(3, 1, answer()),
        "node 3 answered node 2's call"
    );
    assert!(rpc.complete(2, 1, answer()));
    let response = call.await.expect("call task").expect("answered");
    assert!(matches!(response, RpcResponse::Vote(v) if v.vote_granted));
    assert_eq!(rpc.pending_len(), 0);
}
