//! Client connections: each authenticated connection may open bidirectional
//! streams; on each stream requests are pipelined and answered as they
//! complete, tagged with their `req` id. A `Subscribe` turns its stream into a
//! push stream of chosen entries.

use std::sync::Arc;

use futures::stream::{FuturesUnordered, StreamExt};
use paxlog_net::{FrameReader, FrameWriter, NodeEndpoint};
use paxlog_storage::Index;
use tokio::sync::{mpsc, oneshot, watch};

use super::{Command, ReadResult};
use crate::core::OpError;
use crate::core::ProposalCommand;
use crate::proto::{Request, Response};

/// Requests one stream may have in flight; beyond it the stream stops reading
/// (QUIC flow control then pushes back on the client).
const STREAM_IN_FLIGHT_MAX: usize = 1024;
/// Entries per pushed frame of a subscription.
const SUBSCRIBE_BATCH_ENTRIES: usize = 256;
/// Entries per read request, whatever the client asks.
const READ_ENTRIES_MAX: usize = 4096;

pub(super) fn spawn_acceptor(
    endpoint: Arc<NodeEndpoint>,
    loop_tx: mpsc::Sender<Command>,
    chosen: watch::Receiver<Index>,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
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
            tokio::spawn(async move {
                let name = conn.name.clone();
                tracing::debug!(client = %name, "client connected");
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
                    tokio::spawn(async move {
                        let reader = FrameReader::<Request>::new(recv, frame_bytes_max());
                        let writer = FrameWriter::<Response>::new(send, frame_bytes_max());
                        if let Err(error) = serve_stream(reader, writer, loop_tx, chosen).await {
                            tracing::debug!(%error, "client stream ended");
                        }
                    });
                }
            });
        }
    })
}

fn frame_bytes_max() -> usize {
    paxlog_net::FRAME_BYTES_MAX_DEFAULT
}

type BoxedResponse = std::pin::Pin<Box<dyn std::future::Future<Output = Response> + Send>>;

async fn serve_stream(
    mut reader: FrameReader<Request>,
    mut writer: FrameWriter<Response>,
    loop_tx: mpsc::Sender<Command>,
    chosen: watch::Receiver<Index>,
) -> Result<(), StreamError> {
    let mut in_flight: FuturesUnordered<BoxedResponse> = FuturesUnordered::new();
    let mut reading = true;
    loop {
        tokio::select! {
            request = reader.read(), if reading && in_flight.len() < STREAM_IN_FLIGHT_MAX => {
                match request? {
                    Some(Request::Subscribe { req, from }) => {
                        // Finish what is in flight, then this stream only pushes.
                        while let Some(response) = in_flight.next().await {
                            writer.write(&response).await?;
                        }
                        return subscribe(req, from, writer, loop_tx, chosen).await;
                    }
                    Some(request) => in_flight.push(Box::pin(handle(request, loop_tx.clone()))),
                    None => reading = false,
                }
            }
            Some(response) = in_flight.next(), if !in_flight.is_empty() => {
                writer.write(&response).await?;
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

async fn ask<T>(
    loop_tx: &mpsc::Sender<Command>,
    make: impl FnOnce(oneshot::Sender<T>) -> Command,
) -> Option<T> {
    let (tx, rx) = oneshot::channel();
    loop_tx.send(make(tx)).await.ok()?;
    rx.await.ok()
}

async fn propose(
    loop_tx: &mpsc::Sender<Command>,
    req: u64,
    client_id: u64,
    seq: u64,
    command: ProposalCommand,
    expected_ballot: Option<paxlog_storage::Ballot>,
) -> Response {
    let asked = ask(loop_tx, |reply| Command::Propose {
        client_id,
        seq,
        command,
        expected_ballot,
        reply,
    });
    match asked.await {
        Some(Ok(index)) => Response::Appended { req, index },
        Some(Err(error)) => Response::Error { req, error },
        // A dropped reply channel means the loop stopped with the request in its hands.
        None => Response::Error {
            req,
            error: OpError::Indeterminate,
        },
    }
}

async fn handle(request: Request, loop_tx: mpsc::Sender<Command>) -> Response {
    let req = request.req();
    match request {
        Request::Append {
            client_id,
            seq,
            payload,
            expected_ballot,
            ..
        } => {
            let command = ProposalCommand::Append(payload);
            propose(&loop_tx, req, client_id, seq, command, expected_ballot).await
        }
        Request::Trim {
            client_id,
            seq,
            upto,
            ..
        } => {
            propose(
                &loop_tx,
                req,
                client_id,
                seq,
                ProposalCommand::Trim(upto),
                None,
            )
            .await
        }
        Request::Read {
            from,
            to,
            entries_max,
            ..
        } => {
            let entries_max = (entries_max as usize).clamp(1, READ_ENTRIES_MAX);
            match ask(&loop_tx, |reply| Command::Read {
                from,
                to,
                entries_max,
                reply,
            })
            .await
            {
                Some(Ok(ReadResult {
                    entries,
                    next,
                    chosen_index,
                })) => Response::Entries {
                    req,
                    entries,
                    next,
                    chosen_index,
                },
                Some(Err(error)) => Response::Error { req, error },
                None => Response::Error {
                    req,
                    error: OpError::ShuttingDown,
                },
            }
        }
        Request::Status { .. } => match ask(&loop_tx, |reply| Command::Status { reply }).await {
            Some(status) => Response::Status { req, status },
            None => Response::Error {
                req,
                error: OpError::ShuttingDown,
            },
        },
        Request::Tail { .. } => {
            // Linearizable: a Noop chosen at b under the leader's ballot proves
            // the leadership at b, so every append acknowledged before this
            // request has an index < b. The tail is b (itself chosen).
            let ballot = match ask(&loop_tx, |reply| Command::Status { reply }).await {
                Some(status) if status.role == crate::core::Role::Leader => status.ballot,
                Some(status) => {
                    return Response::Error {
                        req,
                        error: OpError::NotLeader {
                            leader_hint: status.leader,
                        },
                    }
                }
                None => {
                    return Response::Error {
                        req,
                        error: OpError::ShuttingDown,
                    }
                }
            };
            let barrier = ProposalCommand::Barrier;
            match propose(&loop_tx, req, 0, 0, barrier, Some(ballot)).await {
                Response::Appended { index, .. } => Response::Tail { req, index, ballot },
                other => other,
            }
        }
        Request::Subscribe { .. } => Response::Error {
            req,
            error: OpError::BadRequest("subscribe must be the first request on its stream".into()),
        },
    }
}

/// Pushes chosen user entries from `from` on, in order, without gaps in what
/// it covers: every frame says where the next one starts.
async fn subscribe(
    req: u64,
    from: Index,
    mut writer: FrameWriter<Response>,
    loop_tx: mpsc::Sender<Command>,
    mut chosen: watch::Receiver<Index>,
) -> Result<(), StreamError> {
    let mut next = from.max(1);
    loop {
        let chosen_now = *chosen.borrow_and_update();
        if next <= chosen_now {
            let result = ask(&loop_tx, |reply| Command::Read {
                from: next,
                to: chosen_now,
                entries_max: SUBSCRIBE_BATCH_ENTRIES,
                reply,
            })
            .await;
            match result {
                Some(Ok(ReadResult {
                    entries,
                    next: after,
                    chosen_index,
                })) => {
                    assert!(
                        after > next || entries.is_empty(),
                        "a subscription never goes back"
                    );
                    if after <= next {
                        // Nothing readable yet at `next` (not durable locally); wait for more.
                        if chosen.changed().await.is_err() {
                            break;
                        }
                        continue;
                    }
                    next = after;
                    writer
                        .write(&Response::Entries {
                            req,
                            entries,
                            next,
                            chosen_index,
                        })
                        .await?;
                }
                Some(Err(error)) => {
                    writer.write(&Response::Error { req, error }).await?;
                    break;
                }
                None => break,
            }
        } else if chosen.changed().await.is_err() {
            break;
        }
    }
    writer.finish().await?;
    Ok(())
}
