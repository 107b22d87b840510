//! One pipelined request stream per node: requests carry a `req` id, the
//! in-flight map pairs each response with its caller, and a reader task
//! fails every caller still waiting when the stream ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use paxlog_net::{FrameReader, FrameWriter};
use paxlog_storage::NodeId;
use tokio::sync::{mpsc, oneshot};

use super::{frame_max, Client, ClientError, Pending, Slot};
use crate::proto::{Request, Response};

/// Bound on reaching one node, so a dead node costs little of the caller's timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a failed connect to a node is answered from memory.
const CONNECT_RETRY_MIN: Duration = Duration::from_millis(200);
/// Requests one session keeps in flight before callers wait.
const SESSION_QUEUE_CAPACITY: usize = 4096;

/// Where a queued request's answer comes.
pub(super) type Answer = oneshot::Receiver<Result<Response, ClientError>>;

/// Requests sent on a session and not yet answered, by `req` id.
type Waiting = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Response, ClientError>>>>>;

/// Starts one connection's pipelined request stream: the writer task sends
/// what is queued on the returned channel, the reader task answers callers.
async fn start_session(
    conn: quinn::Connection,
    id: NodeId,
) -> Result<mpsc::Sender<Pending>, ClientError> {
    let (send, recv) = conn.open_bi().await.map_err(|e| {
        ClientError::Unreachable(format!(
            "node {id}: {e} (is this client's certificate accepted?)"
        ))
    })?;
    let mut writer = FrameWriter::<Request>::new(send, frame_max());
    let mut reader = FrameReader::<Response>::new(recv, frame_max());
    let (tx, mut rx) = mpsc::channel::<Pending>(SESSION_QUEUE_CAPACITY);
    let waiting: Waiting = Arc::new(Mutex::new(HashMap::new()));
    let waiting_reader = waiting.clone();
    let conn_reader = conn.clone();
    let reader_task = tokio::spawn(async move {
        let reason = loop {
            match reader.read().await {
                Ok(Some(response)) => {
                    let waiter = waiting_reader
                        .lock()
                        .ok()
                        .and_then(|mut w| w.remove(&response.req()));
                    if let Some(waiter) = waiter {
                        let _ = waiter.send(Ok(response));
                    }
                }
                Ok(None) => break "stream closed by the node".to_string(),
                Err(e) => break e.to_string(),
            }
        };
        fail_waiting(&waiting_reader, || lost(&conn_reader, id, &reason));
    });
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            // Requests queued while the last write ran go out in one write.
            let mut next = Some(first);
            let mut refused = None;
            while let Some((request, reply)) = next.take() {
                if let Ok(mut w) = waiting.lock() {
                    w.insert(request.req(), reply);
                }
                if let Err(e) = writer.queue(&request) {
                    refused = Some(e);
                    break;
                }
                if !writer.batch_full() {
                    next = rx.try_recv().ok();
                }
            }
            let written = writer.write_queued().await;
            if let Some(e) = refused.or(written.err()) {
                let reason = e.to_string();
                fail_waiting(&waiting, || lost(&conn, id, &reason));
                break;
            }
        }
        reader_task.abort();
        conn.close(0u32.into(), b"client done");
    });
    Ok(tx)
}

/// A remembered connect failure, told again without wrapping its message
/// in a second "no node of the cluster is reachable".
fn again(e: &ClientError) -> ClientError {
    match e {
        ClientError::Tls(why) => ClientError::Tls(why.clone()),
        ClientError::Unreachable(why) => ClientError::Unreachable(why.clone()),
        other => ClientError::Unreachable(other.to_string()),
    }
}

fn fail_waiting(waiting: &Waiting, error: impl Fn() -> ClientError) {
    let stranded: Vec<_> = waiting
        .lock()
        .map(|mut w| w.drain().collect())
        .unwrap_or_default();
    for (_, waiter) in stranded {
        let _ = waiter.send(Err(error()));
    }
}

/// Why a session's connection ended. A node that refuses this client's
/// certificate closes with a TLS alert once the client has already sent
/// its first requests (TLS 1.3 judges the client last): that answer is
/// final (the node will never take this certificate) and surely appended
/// nothing (the node never read a stream), unlike a connection lost later.
fn lost(conn: &quinn::Connection, id: NodeId, reason: &str) -> ClientError {
    let refused = match conn.close_reason() {
        Some(quinn::ConnectionError::ConnectionClosed(close)) => {
            is_tls_alert(close.error_code).then(|| close.to_string())
        }
        Some(quinn::ConnectionError::TransportError(error)) => {
            is_tls_alert(error.code).then(|| error.to_string())
        }
        _ => None,
    };
    match refused {
        Some(alert) => ClientError::Tls(format!(
            "node {id} refused the handshake ({alert}): is this client's certificate \
             signed by the cluster's CA?"
        )),
        None => ClientError::Unreachable(format!("node {id}: {reason}")),
    }
}

/// QUIC carries a TLS alert as transport error code 0x100 + alert (RFC 9001).
fn is_tls_alert(code: quinn::TransportErrorCode) -> bool {
    (0x100..=0x1ff).contains(&u64::from(code))
}

impl Client {
    pub(super) async fn connect(&self, id: NodeId) -> Result<quinn::Connection, ClientError> {
        let addr = self
            .node_addr(id)
            .ok_or_else(|| ClientError::Unreachable(format!("unknown node {id}")))?;
        self.inner
            .endpoint
            .connect(addr, id)
            .await
            .map_err(|e| ClientError::Unreachable(format!("node {id} at {addr}: {e}")))
    }

    /// The request channel of the session with node `id`, connecting if needed.
    /// Failing here means nothing was sent.
    ///
    /// One slot per node, so reaching a dead node never holds up requests
    /// to the others; callers for the same node share one connect attempt,
    /// and a failed one is remembered for [`CONNECT_RETRY_MIN`] so a burst of
    /// retries (a whole window after a leader died) costs one timeout, not
    /// one each in turn.
    pub(super) async fn session(&self, id: NodeId) -> Result<mpsc::Sender<Pending>, ClientError> {
        let slot = self
            .slot(id)
            .ok_or_else(|| ClientError::Unreachable(format!("unknown node {id}")))?;
        let mut slot = slot.lock().await;
        if let Some(tx) = slot.tx.as_ref().filter(|tx| !tx.is_closed()) {
            return Ok(tx.clone());
        }
        if let Some((at, why)) = &slot.failed {
            if at.elapsed() < CONNECT_RETRY_MIN {
                return Err(again(why));
            }
        }
        if let Some(port) = self.inner.local.as_ref().filter(|p| p.node_id() == id) {
            let tx = super::local::start_local_session(port.clone());
            *slot = Slot {
                tx: Some(tx.clone()),
                failed: None,
            };
            return Ok(tx);
        }
        let connecting = async {
            let conn = self.connect(id).await?;
            start_session(conn, id).await
        };
        let connected = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .unwrap_or_else(|_| {
                Err(ClientError::Unreachable(format!(
                    "node {id}: no connection within {CONNECT_TIMEOUT:?}"
                )))
            });
        match connected {
            Ok(tx) => {
                *slot = Slot {
                    tx: Some(tx.clone()),
                    failed: None,
                };
                Ok(tx)
            }
            Err(e) => {
                slot.tx = None;
                slot.failed = Some((Instant::now(), again(&e)));
                Err(e)
            }
        }
    }

    /// Puts `request` on an established session's queue, which its writer
    /// task sends in queue order; the answer comes on the returned receiver.
    pub(super) async fn queue(
        &self,
        id: NodeId,
        tx: mpsc::Sender<Pending>,
        request: Request,
    ) -> Result<Answer, ClientError> {
        let (reply_tx, reply_rx) = oneshot::channel();
        tx.send((request, reply_tx))
            .await
            .map_err(|_| ClientError::Unreachable(format!("connection to node {id} closed")))?;
        Ok(reply_rx)
    }

    /// Failing here means the request may have reached the node.
    pub(super) async fn answer(
        id: NodeId,
        queued: Result<Answer, ClientError>,
    ) -> Result<Response, ClientError> {
        queued?
            .await
            .map_err(|_| ClientError::Unreachable(format!("connection to node {id} lost")))?
    }

    pub(super) async fn request(
        &self,
        id: NodeId,
        request: Request,
    ) -> Result<Response, ClientError> {
        let tx = self.session(id).await?;
        Self::answer(id, self.queue(id, tx, request).await).await
    }

    pub(super) async fn drop_session(&self, id: NodeId) {
        if let Some(slot) = self.slot(id) {
            slot.lock().await.tx = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remembered_failure_reads_as_the_first_one() {
        let first = ClientError::Unreachable("node 1: no connection within 1s".into());
        assert_eq!(again(&first).to_string(), first.to_string());
        let refused = ClientError::Tls("node 2 refused the handshake".into());
        assert_eq!(again(&refused).to_string(), refused.to_string());
    }
}
