//! The session with the embedding process's own node: the same request
//! queue as a QUIC session ([`super::session`]), drained by a task that
//! hands each request to the node's loop through its [`LocalPort`] — no
//! frames, no TLS, no serialization, one task hop fewer on each side.
//! Requests reach the loop in queue order; answers come back as they
//! complete, as on a stream.

use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::mpsc;

use super::{ClientError, Pending};
use crate::node::LocalPort;
use crate::proto::Response;

/// Requests the local session keeps in flight, as a node's stream does
/// (`STREAM_IN_FLIGHT_MAX`); beyond it the queue fills and callers wait.
const LOCAL_IN_FLIGHT_MAX: usize = 1024;
/// Requests queued before the task takes them, as a QUIC session's queue.
const LOCAL_QUEUE_CAPACITY: usize = 4096;

type Delivery = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Starts the session's task; it ends once every sender is dropped and what
/// it took has been answered.
pub(super) fn start_local_session(port: LocalPort) -> mpsc::Sender<Pending> {
    let (tx, mut rx) = mpsc::channel::<Pending>(LOCAL_QUEUE_CAPACITY);
    tokio::spawn(async move {
        let mut in_flight: FuturesUnordered<Delivery> = FuturesUnordered::new();
        let mut open = true;
        loop {
            tokio::select! {
                pending = rx.recv(), if open && in_flight.len() < LOCAL_IN_FLIGHT_MAX => {
                    let Some((request, reply)) = pending else {
                        open = false;
                        continue;
                    };
                    // Handed over here, before the next one is taken, so the
                    // loop receives them in queue order.
                    let answer = port.dispatch(request).await;
                    in_flight.push(Box::pin(async move {
                        let response: Response = answer.await;
                        let _ = reply.send(Ok::<_, ClientError>(response));
                    }));
                }
                Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
                else => break,
            }
        }
    });
    tx
}
