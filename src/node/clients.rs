//! Client connections: each authenticated connection may open bidirectional
//! streams; on each stream requests reach the loop in the order they were
//! read, and are answered as they complete, tagged with their `req` id. A `Subscribe` turns its stream into a
//! push stream of chosen entries ([`super::subscribe`]). What a request means
//! is [`super::handle`]'s business; this file only moves frames and bounds
//! what one stream has in flight.

use std::sync::Arc;
use std::time::Instant;

use futures::future::{join, ready, Join, Ready};
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use paxlog_net::{FrameReader, FrameWriter, NodeEndpoint};
use paxlog_storage::Index;
use tokio::sync::{mpsc, watch};

use super::handle::{dispatch, Answer, Caller};
use super::request::Command;
use super::snapshots::SnapshotDir;
use super::subscribe::subscribe;
use crate::proto::{Request, Response};

/// Client connections this node holds open (an embedded `Log`'s calls to
/// its own node are not connections: they go in process).
const CONNECTIONS_METRIC: &str = "paxlog_client_connections";

/// Counts one client connection in [`CONNECTIONS_METRIC`] while it lives.
struct Counted;

impl Counted {
    fn new() -> Counted {
        metrics::gauge!(CONNECTIONS_METRIC).increment(1.0);
        Counted
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        metrics::gauge!(CONNECTIONS_METRIC).decrement(1.0);
    }
}

/// A request's stay in this node, from its frame read to its answer queued
/// for the stream's next write: against `paxlog_commit_latency_seconds` (the
/// loop's part) it shows what the stream and the hops to and from the loop add.
const REQUEST_METRIC: &str = "paxlog_client_request_seconds";

/// An answer and when its request was read.
type Timed = Join<Answer, Ready<Instant>>;

/// Requests one stream may have in flight; beyond it the stream stops reading
/// (QUIC flow control then pushes back on the client).
const STREAM_IN_FLIGHT_MAX: usize = 1024;

pub(super) fn spawn_acceptor(
    endpoint: Arc<NodeEndpoint>,
    loop_tx: mpsc::Sender<Command>,
    chosen: watch::Receiver<Index>,
    mut shutdown: watch::Receiver<bool>,
    frame_bytes_max: usize,
    admins: Arc<Vec<String>>,
    snapshots: Arc<SnapshotDir>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // Exported at 0 from the start, so a scrape tells "none" from "not counted".
        metrics::gauge!(CONNECTIONS_METRIC).increment(0.0);
        loop {
            let conn = tokio::select! {
                _ = shutdown.changed() => return,
                conn = endpoint.accept_client() => match conn {
                    Some(conn) => conn,
                    None => return,
                },
            };
            let loop_tx = loop_tx.clone();
            let chosen = chosen.clone();
            let admins = admins.clone();
            let snapshots = snapshots.clone();
            tokio::spawn(async move {
                let _counted = Counted::new();
                let name = conn.name.clone();
                let caller = Caller {
                    admin: admins.contains(&name),
                };
                tracing::debug!(client = %name, admin = caller.admin, "client connected");
                loop {
                    let (send, recv) = match conn.conn.accept_bi().await {
                        Ok(streams) => streams,
                        Err(error) => {
                            tracing::debug!(client = %name, %error, "client connection closed");
                            return;
                        }
                    };
                    let loop_tx = loop_tx.clone();
                    let chosen = chosen.clone();
                    let snapshots = snapshots.clone();
                    tokio::spawn(async move {
                        let reader = FrameReader::<Request>::new(recv, frame_bytes_max);
                        let writer = FrameWriter::<Response>::new(send, frame_bytes_max);
                        let serve = Serve {
                            caller,
                            loop_tx,
                            chosen,
                            snapshots,
                        };
                        if let Err(error) = serve_stream(reader, writer, serve).await {
                            tracing::debug!(%error, "client stream ended");
                        }
                    });
                }
            });
        }
    })
}

/// What one client stream's requests reach.
struct Serve {
    caller: Caller,
    loop_tx: mpsc::Sender<Command>,
    chosen: watch::Receiver<Index>,
    snapshots: Arc<SnapshotDir>,
}

async fn serve_stream(
    mut reader: FrameReader<Request>,
    mut writer: FrameWriter<Response>,
    serve: Serve,
) -> Result<(), StreamError> {
    let Serve {
        caller,
        loop_tx,
        chosen,
        snapshots,
    } = serve;
    let mut in_flight: FuturesUnordered<Timed> = FuturesUnordered::new();
    let timer = metrics::histogram!(REQUEST_METRIC);
    let mut reading = true;
    loop {
        tokio::select! {
            request = reader.read(), if reading && in_flight.len() < STREAM_IN_FLIGHT_MAX => {
                match request? {
                    Some(Request::Subscribe { req, from }) => {
                        // Finish what is in flight, then this stream only pushes.
                        while let Some((response, _)) = in_flight.next().await {
                            writer.write(&response).await?;
                        }
                        return Ok(subscribe(req, from, writer, loop_tx, chosen).await?);
                    }
                    Some(request) => {
                        let read_at = Instant::now();
                        // Handed to the loop here, before the next request is
                        // read: the in-flight set polls in no fixed order, and a
                        // request sent from there could overtake an earlier one.
                        let answer = dispatch(request, caller, &loop_tx, &snapshots).await;
                        in_flight.push(join(answer, ready(read_at)));
                    }
                    None => reading = false,
                }
            }
            Some(first) = in_flight.next(), if !in_flight.is_empty() => {
                // Answers of one commit complete together: they go out in one write.
                let mut next = Some(first);
                while let Some((response, read_at)) = next.take() {
                    writer.queue(&response)?;
                    timer.record(read_at.elapsed().as_secs_f64());
                    if !writer.batch_full() {
                        next = in_flight.next().now_or_never().flatten();
                    }
                }
                writer.write_queued().await?;
            }
            else => break,
        }
    }
    writer.finish().await?;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub(super) enum StreamError {
    #[error(transparent)]
    Frame(#[from] paxlog_net::FrameError),
}
