//! A node's serving loops: openraft RPCs from peers, appends from clients.

use std::sync::Arc;

use bytes::Bytes;
use openraft::error::{InstallSnapshotError, RaftError};
use paxlog_net::{accept_framed_bi, FrameReader, FrameWriter, NodeEndpoint, PeerReceiver};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::batcher::Batcher;
use super::network::Rpc;
use super::types::{NodeId, Raft};
use super::wire::{ClientRequest, ClientResponse, PeerMsg, RpcFailure, RpcRequest, RpcResponse};

/// Peer requests being handled at once; beyond it the peer's reader waits
/// and QUIC flow control pushes back.
const PEER_REQUESTS_MAX: usize = 256;
/// Requests of one client stream in flight at once (pipelining depth).
const STREAM_IN_FLIGHT_MAX: usize = 64;

/// Routes peer messages: requests to openraft, responses to waiting calls.
pub async fn serve_peers(raft: Raft, rpc: Rpc, mut inbound: PeerReceiver<PeerMsg>) {
    let permits = Arc::new(Semaphore::new(PEER_REQUESTS_MAX));
    while let Some((from, msg)) = inbound.recv().await {
        match msg {
            PeerMsg::Response { id, result } => {
                if !rpc.complete(from, id, result) {
                    debug!(from, id, "response nobody waits for (timed out)");
                }
            }
            PeerMsg::Request { id, rpc: request } => {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    return;
                };
                let (raft, sender) = (raft.clone(), rpc.sender().clone());
                // Concurrent: a slow fsync behind an append must not hold up a vote.
                tokio::spawn(async move {
                    let result = handle_request(&raft, request).await;
                    if let Err(e) = sender.try_send(from, PeerMsg::Response { id, result }) {
                        warn!(to = from, error = %e, "response dropped");
                    }
                    drop(permit);
                });
            }
        }
    }
}

async fn handle_request(raft: &Raft, request: RpcRequest) -> Result<RpcResponse, RpcFailure> {
    let fatal = |e: RaftError<NodeId>| RpcFailure::Fatal(e.to_string());
    match request {
        RpcRequest::AppendEntries(r) => raft
            .append_entries(r)
            .await
            .map(RpcResponse::AppendEntries)
            .map_err(fatal),
        RpcRequest::Vote(r) => raft.vote(r).await.map(RpcResponse::Vote).map_err(fatal),
        RpcRequest::InstallSnapshot(r) => match raft.install_snapshot(r).await {
            Ok(resp) => Ok(RpcResponse::InstallSnapshot(resp)),
            Err(RaftError::APIError(InstallSnapshotError::SnapshotMismatch(m))) => {
                Err(RpcFailure::SnapshotMismatch(m))
            }
            Err(RaftError::Fatal(f)) => Err(RpcFailure::Fatal(f.to_string())),
        },
    }
}

/// Accepts client connections and serves every stream they open.
pub async fn serve_clients(
    endpoint: Arc<NodeEndpoint>,
    raft: Raft,
    batcher: Batcher,
    payload_bytes_max: usize,
) {
    let frame_bytes_max = endpoint.config().frame_bytes_max;
    while let Some(client) = endpoint.accept_client().await {
        let (raft, batcher) = (raft.clone(), batcher.clone());
        tokio::spawn(async move {
            // Streams per connection are bounded by QUIC (client_streams_max).
            while let Some((reader, writer)) =
                accept_framed_bi::<ClientRequest, ClientResponse>(&client.conn, frame_bytes_max)
                    .await
            {
                tokio::spawn(serve_stream(
                    raft.clone(),
                    batcher.clone(),
                    reader,
                    writer,
                    payload_bytes_max,
                ));
            }
        });
    }
}

/// One client stream: requests are read as they come (pipelined), written
/// to openraft concurrently, and answered in order.
async fn serve_stream(
    raft: Raft,
    batcher: Batcher,
    mut reader: FrameReader<ClientRequest>,
    mut writer: FrameWriter<ClientResponse>,
    payload_bytes_max: usize,
) {
    let (tx, mut rx) = mpsc::channel::<JoinHandle<ClientResponse>>(STREAM_IN_FLIGHT_MAX);
    let responder = tokio::spawn(async move {
        while let Some(pending) = rx.recv().await {
            let response = pending
                .await
                .unwrap_or_else(|e| ClientResponse::Err(format!("append task failed: {e}")));
            if let Err(e) = writer.write(&response).await {
                debug!(error = %e, "client stream closed before its answer");
                return;
            }
        }
        // Every request answered; end the stream cleanly.
        let _ = writer.finish().await;
    });
    loop {
        let (task, last) = match reader.read().await {
            Ok(Some(ClientRequest::Append(payload))) => (
                tokio::spawn(append(batcher.clone(), payload, payload_bytes_max)),
                false,
            ),
            Ok(Some(ClientRequest::Tail)) => (tokio::spawn(tail(raft.clone())), false),
            Ok(None) => break,
            Err(e) => {
                // The stream is out of step after a bad frame: answer and stop reading.
                let msg = format!("bad request frame: {e}");
                warn!("{msg}");
                (tokio::spawn(async move { ClientResponse::Err(msg) }), true)
            }
        };
        if tx.send(task).await.is_err() || last {
            break;
        }
    }
    drop(tx);
    let _ = responder.await;
}

/// openraft's linearizable read: leadership confirmed by a heartbeat round
/// to a quorum, then the state machine applied up to the read log id.
async fn tail(raft: Raft) -> ClientResponse {
    match raft.ensure_linearizable().await {
        Ok(log_id) => ClientResponse::Ok(log_id.map_or(0, |id| id.index)),
        Err(RaftError::APIError(openraft::error::CheckIsLeaderError::ForwardToLeader(f))) => {
            ClientResponse::NotLeader(f.leader_id)
        }
        Err(e) => ClientResponse::Err(format!("ensure_linearizable: {e}")),
    }
}

async fn append(batcher: Batcher, payload: Bytes, payload_bytes_max: usize) -> ClientResponse {
    if payload.len() > payload_bytes_max {
        return ClientResponse::Err(format!(
            "payload of {} bytes exceeds {payload_bytes_max}",
            payload.len()
        ));
    }
    batcher.append(payload).await
}
