//! One client request, answered: the conversion from the wire's [`Request`]
//! to the loop's [`Command`] and from the loop's answer back to a
//! [`Response`]. It knows nothing of frames or streams ([`super::clients`]
//! pipelines these answers) and holds no state of its own. Handing a request
//! to the loop and waiting for its answer are two steps, so that the stream
//! can do the first in read order and overlap only the second.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use paxlog_storage::{Ballot, Index};
use tokio::sync::{mpsc, oneshot};

use super::request::{Command, ReadResult};
use super::snapshots::SnapshotDir;
use crate::core::{OpError, ProposalCommand};
use crate::proto::{NodeStatus, Request, Response};

/// Entries per read request, whatever the client asks.
const READ_ENTRIES_MAX: usize = 4096;

/// Client appends this node answered, by `outcome`.
const APPEND_ANSWERS_METRIC: &str = "paxlog_append_answers_total";

/// Who sent a request, as its certificate says.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Caller {
    /// Named as an admin by the node's configuration (or the embedding
    /// application itself): may change members and trim.
    pub(crate) admin: bool,
}

impl Caller {
    /// Why this caller may not make `request`, if it may not: destructive
    /// operations are for admins.
    fn refuse(self, request: &Request) -> Option<OpError> {
        let what = match request {
            Request::Trim { .. } => "trim",
            Request::Reconfigure { .. } => "a membership change",
            Request::SnapshotWrite { .. } | Request::SnapshotSeal { .. } => "a snapshot upload",
            Request::PublishSnapshot { .. } => "publishing a snapshot",
            Request::Hold { .. } | Request::Release { .. } => "a retention hold",
            _ => return None,
        };
        (!self.admin).then(|| {
            OpError::NotPermitted(format!(
                "{what} requires an admin client certificate (one the node's `admins` list names); nothing changed"
            ))
        })
    }
}

/// The answer to one request, once the loop has given it.
pub(crate) type Answer = Pin<Box<dyn Future<Output = Response> + Send>>;

/// Hands `request` to the loop and returns the future of its answer. The
/// stream awaits this for each request in the order it read them, so the loop
/// receives one stream's proposals in submission order and assigns their
/// indexes in that order; only the waits for answers overlap.
pub(super) async fn dispatch(
    request: Request,
    caller: Caller,
    loop_tx: &mpsc::Sender<Command>,
    snapshots: &Arc<SnapshotDir>,
) -> Answer {
    let req = request.req();
    if let Some(error) = caller.refuse(&request) {
        return Box::pin(std::future::ready(Response::Error { req, error }));
    }
    match request {
        Request::Append {
            client_id,
            seq,
            floor,
            payload,
            expected_ballot,
            ..
        } => {
            let key = (client_id, seq, floor);
            let command = ProposalCommand::Append(payload);
            let asked = propose(loop_tx, key, command, expected_ballot).await;
            Box::pin(async move {
                let result = answer(asked).await;
                count_append(&result);
                appended(req, result)
            })
        }
        Request::Register { supersedes, .. } => {
            let command = ProposalCommand::Register { supersedes };
            propose_command(req, loop_tx, command).await
        }
        Request::Trim { upto, .. } => {
            let command = ProposalCommand::Trim(upto);
            propose_command(req, loop_tx, command).await
        }
        Request::Reconfigure {
            expect_epoch,
            change,
            ..
        } => {
            let command = ProposalCommand::Reconfigure {
                expect_epoch,
                change,
            };
            propose_command(req, loop_tx, command).await
        }
        Request::Read {
            from,
            to,
            entries_max,
            ..
        } => {
            let entries_max = (entries_max as usize).clamp(1, READ_ENTRIES_MAX);
            let asked = enqueue(loop_tx, |reply| Command::Read {
                from,
                to,
                entries_max,
                reply,
            })
            .await;
            Box::pin(async move {
                match answer(asked).await {
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
            })
        }
        Request::Status { .. } => {
            let asked = enqueue(loop_tx, |reply| Command::Status { reply }).await;
            let dir = snapshots.clone();
            Box::pin(async move {
                match answer(asked).await {
                    Some(mut status) => {
                        status.snapshots_held =
                            blocking(move || Ok(dir.list())).await.unwrap_or_default();
                        Response::Status { req, status }
                    }
                    None => Response::Error {
                        req,
                        error: OpError::ShuttingDown,
                    },
                }
            })
        }
        Request::Tail { .. } => {
            let asked = enqueue(loop_tx, |reply| Command::Status { reply }).await;
            Box::pin(tail(req, asked, loop_tx.clone()))
        }
        Request::PublishSnapshot {
            index,
            size_bytes,
            crc32c,
            holder,
            ..
        } => {
            let command = ProposalCommand::Snapshot {
                index,
                size_bytes,
                crc32c,
                holder,
            };
            propose_command(req, loop_tx, command).await
        }
        Request::Hold {
            name,
            index,
            lease_ms,
            ..
        } => {
            let command = ProposalCommand::Hold {
                name,
                index,
                lease_ms,
            };
            propose_command(req, loop_tx, command).await
        }
        Request::Release { name, .. } => {
            let command = ProposalCommand::Release {
                name,
                renewed_at: None,
            };
            propose_command(req, loop_tx, command).await
        }
        Request::SnapshotWrite {
            index,
            offset,
            data,
            ..
        } => {
            let dir = snapshots.clone();
            Box::pin(async move {
                match blocking(move || dir.write_chunk(index, offset, &data)).await {
                    Ok(next_offset) => Response::SnapshotWritten { req, next_offset },
                    Err(error) => Response::Error { req, error },
                }
            })
        }
        Request::SnapshotSeal {
            index,
            size_bytes,
            crc32c,
            ..
        } => {
            let dir = snapshots.clone();
            Box::pin(async move {
                match blocking(move || dir.seal(index, size_bytes, crc32c)).await {
                    Ok(()) => Response::Appended { req, index },
                    Err(error) => Response::Error { req, error },
                }
            })
        }
        Request::SnapshotRead {
            index,
            crc32c,
            offset,
            len,
            ..
        } => {
            let dir = snapshots.clone();
            Box::pin(async move {
                match blocking(move || dir.read_chunk(index, crc32c, offset, len as usize)).await {
                    Ok((data, size_bytes)) => Response::SnapshotData {
                        req,
                        size_bytes,
                        data,
                    },
                    Err(error) => Response::Error { req, error },
                }
            })
        }
        Request::Subscribe { .. } => Box::pin(std::future::ready(Response::Error {
            req,
            error: OpError::BadRequest("subscribe must be the first request on its stream".into()),
        })),
    }
}

/// Linearizable, without a log write: the leader's read index (see
/// `core::read_index`) is at or above every index acknowledged before this
/// request, and chosen. The ballot is the one this node had promised when
/// asked (a follower's is its leader's).
async fn tail(req: u64, status: Pending<NodeStatus>, loop_tx: mpsc::Sender<Command>) -> Response {
    // A follower serves it too, through its leader's read index.
    let ballot = match answer(status).await {
        Some(status) => status.ballot,
        None => {
            return Response::Error {
                req,
                error: OpError::ShuttingDown,
            }
        }
    };
    let asked = enqueue(&loop_tx, |reply| Command::ReadIndex { reply }).await;
    match answer(asked).await {
        Some(Ok(index)) => Response::Tail { req, index, ballot },
        Some(Err(error)) => Response::Error { req, error },
        None => Response::Error {
            req,
            error: OpError::ShuttingDown,
        },
    }
}

/// Snapshot file work, off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, OpError> + Send + 'static,
) -> Result<T, OpError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(OpError::SnapshotUnavailable(format!("snapshot task: {e}"))))
}

/// A command sent to the loop, as the receiver of its answer; `None` when the
/// loop had already stopped.
type Pending<T> = Option<oneshot::Receiver<T>>;

async fn enqueue<T>(
    loop_tx: &mpsc::Sender<Command>,
    make: impl FnOnce(oneshot::Sender<T>) -> Command,
) -> Pending<T> {
    let (tx, rx) = oneshot::channel();
    loop_tx.send(make(tx)).await.ok()?;
    Some(rx)
}

/// `None` when the loop stopped before answering.
async fn answer<T>(pending: Pending<T>) -> Option<T> {
    pending?.await.ok()
}

/// A proposal outside any session (trim, registration, change, snapshot,
/// hold), answered `Appended` with the index it was chosen at.
async fn propose_command(
    req: u64,
    loop_tx: &mpsc::Sender<Command>,
    command: ProposalCommand,
) -> Answer {
    let asked = propose(loop_tx, (0, 0, 0), command, None).await;
    Box::pin(async move { appended(req, answer(asked).await) })
}

/// `(client_id, seq, floor)` is the append's session key (zeros otherwise).
async fn propose(
    loop_tx: &mpsc::Sender<Command>,
    (client_id, seq, floor): (u64, u64, u64),
    command: ProposalCommand,
    expected_ballot: Option<Ballot>,
) -> Pending<Result<Index, OpError>> {
    enqueue(loop_tx, |reply| Command::Propose {
        client_id,
        seq,
        floor,
        command,
        expected_ballot,
        reply,
    })
    .await
}

/// Counts each client append this node answered, by outcome: `ok`, or the
/// kind of error ([`OpError::kind`]); a stopped loop counts as `indeterminate`.
fn count_append(result: &Option<Result<Index, OpError>>) {
    let outcome = match result {
        Some(Ok(_)) => "ok",
        Some(Err(error)) => error.kind(),
        None => OpError::Indeterminate.kind(),
    };
    metrics::counter!(APPEND_ANSWERS_METRIC, "outcome" => outcome).increment(1);
}

fn appended(req: u64, result: Option<Result<Index, OpError>>) -> Response {
    match result {
        Some(Ok(index)) => Response::Appended { req, index },
        Some(Err(error)) => Response::Error { req, error },
        // A stopped loop may have had the request in its hands.
        None => Response::Error {
            req,
            error: OpError::Indeterminate,
        },
    }
}
