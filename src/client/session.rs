//! One pipelined request stream per node: requests carry a `req` id, the
//! in-flight map pairs each response with its caller, and a reader task
//! fails every caller still waiting when the stream ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use paxlog_net::{FrameReader, FrameWriter};
use paxlog_storage::NodeId;
use tokio::sync::{mpsc, oneshot};

use super::{frame_max, Client, ClientError, Pending};
use crate::proto::{Request, Response};

/// Bound on reaching one node, so a dead node costs little of the caller's timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
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
        fail_waiting(&waiting_reader, &format!("node {id}: {reason}"));
    });
    tokio::spawn(async move {
        while let Some((request, reply)) = rx.recv().await {
            if let Ok(mut w) = waiting.lock() {
                w.insert(request.req(), reply);
            }
            if let Err(e) = writer.write(&request).await {
                fail_waiting(&waiting, &format!("node {id}: {e}"));
                break;
            }
        }
        reader_task.abort();
        conn.close(0u32.into(), b"client done");
    });
    Ok(tx)
}

fn fail_waiting(waiting: &Waiting, why: &str) {
    let stranded: Vec<_> = waiting
        .lock()
        .map(|mut w| w.drain().collect())
        .unwrap_or_default();
    for (_, waiter) in stranded {
        let _ = waiter.send(Err(ClientError::Unreachable(why.to_string())));
    }
}

impl Client {
    pub(super) async fn connect(&self, id: NodeId) -> Result<quinn::Connection, ClientError> {
        let addr = *self
            .inner
            .nodes
            .get(&id)
            .ok_or_else(|| ClientError::Unreachable(format!("unknown node {id}")))?;
        self.inner
            .endpoint
            .connect(addr, id)
            .await
            .map_err(|e| ClientError::Unreachable(format!("node {id} at {addr}: {e}")))
    }

    /// The request channel of the session with node `id`, connecting if needed.
    /// Failing here means nothing was sent.
    pub(super) async fn session(&self, id: NodeId) -> Result<mpsc::Sender<Pending>, ClientError> {
        let mut sessions = self.inner.sessions.lock().await;
        match sessions.get(&id) {
            Some(tx) if !tx.is_closed() => Ok(tx.clone()),
            _ => {
                let connecting = async {
                    let conn = self.connect(id).await?;
                    start_session(conn, id).await
                };
                let tx = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
                    .await
                    .map_err(|_| {
                        ClientError::Unreachable(format!(
                            "node {id}: no connection within {CONNECT_TIMEOUT:?}"
                        ))
                    })??;
                sessions.insert(id, tx.clone());
                Ok(tx)
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
        self.inner.sessions.lock().await.remove(&id);
    }
}
