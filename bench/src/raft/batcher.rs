//! Proposal batching above openraft, as a competent openraft 0.9 user does.
//!
//! openraft 0.9's core appends each `client_write` as its own log entry and
//! waits for that entry's fsync before it takes the next message, so the
//! leader does one fsync per client write, one after another. Batching
//! concurrent client payloads into one entry gives one fsync per batch,
//! which is what etcd's raft and paxlog do inside their consensus layer.
//! Batches form by themselves: while `in_flight` batches are being
//! committed, arriving payloads queue up and go together in the next one.
//! With `payloads_max` 1 every payload is its own entry (openraft unaided).

use std::sync::Arc;

use bytes::Bytes;
use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use super::types::{Payload, Raft};
use super::wire::ClientResponse;

/// Payloads waiting for a batch; a full queue makes clients wait.
const QUEUE_PAYLOADS_MAX: usize = 4096;

/// How batches are cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Payloads per entry (1 = no batching).
    pub payloads_max: usize,
    /// Payload bytes per entry; a single larger payload still goes alone.
    pub bytes_max: usize,
    /// Entries submitted to openraft and not yet committed.
    pub in_flight: usize,
}

impl BatchLimits {
    /// Largest encoded entry payload these limits allow.
    pub fn entry_bytes_max(&self, payload_bytes_max: usize) -> usize {
        // Each payload costs at most a 5-byte length prefix beyond its bytes.
        let batched = self
            .bytes_max
            .saturating_add(self.payloads_max.saturating_mul(5));
        batched.max(payload_bytes_max.saturating_add(5))
    }
}

struct Proposal {
    payload: Bytes,
    reply: oneshot::Sender<ClientResponse>,
}

/// Submits client payloads to openraft in batches. Cheap to clone.
#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::Sender<Proposal>,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher").finish_non_exhaustive()
    }
}

impl Batcher {
    /// Starts the batching task; it ends when every `Batcher` clone is dropped.
    pub fn start(raft: Raft, limits: BatchLimits) -> Self {
        assert!(limits.payloads_max >= 1 && limits.in_flight >= 1);
        let (tx, rx) = mpsc::channel(QUEUE_PAYLOADS_MAX);
        tokio::spawn(run(raft, rx, limits));
        Self { tx }
    }

    /// Resolves once `payload` is committed (or surely not).
    pub async fn append(&self, payload: Bytes) -> ClientResponse {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Proposal { payload, reply }).await.is_err() {
            return ClientResponse::Err("node shutting down".into());
        }
        rx.await
            .unwrap_or_else(|_| ClientResponse::Err("node shutting down".into()))
    }
}

async fn run(raft: Raft, mut rx: mpsc::Receiver<Proposal>, limits: BatchLimits) {
    let permits = Arc::new(Semaphore::new(limits.in_flight));
    // A payload that did not fit the previous batch opens the next one.
    let mut carried: Option<Proposal> = None;
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let first = match carried.take() {
            Some(p) => p,
            None => match rx.recv().await {
                Some(p) => p,
                None => return,
            },
        };
        let mut bytes = first.payload.len();
        let mut batch = vec![first];
        while batch.len() < limits.payloads_max {
            let Ok(next) = rx.try_recv() else { break };
            if bytes + next.payload.len() > limits.bytes_max {
                carried = Some(next);
                break;
            }
            bytes += next.payload.len();
            batch.push(next);
        }
        assert!(batch.len() <= limits.payloads_max);
        tokio::spawn(commit(raft.clone(), batch, permit));
    }
}

async fn commit(raft: Raft, batch: Vec<Proposal>, permit: OwnedSemaphorePermit) {
    let (payloads, replies): (Vec<_>, Vec<_>) =
        batch.into_iter().map(|p| (p.payload, p.reply)).unzip();
    let response = match raft.client_write(Payload(payloads)).await {
        Ok(resp) => ClientResponse::Ok(resp.log_id.index),
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
            ClientResponse::NotLeader(f.leader_id)
        }
        Err(e) => ClientResponse::Err(e.to_string()),
    };
    drop(permit);
    for reply in replies {
        // A client that went away does not need its answer.
        let _ = reply.send(response.clone());
    }
}
