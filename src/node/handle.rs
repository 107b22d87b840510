//! One client request, answered: the conversion from the wire's [`Request`]
//! to the loop's [`Command`] and from the loop's answer back to a
//! [`Response`]. It knows nothing of frames or streams ([`super::clients`]
//! pipelines these futures) and holds no state of its own.

use paxlog_storage::Ballot;
use tokio::sync::mpsc;

use super::request::{ask, Command, ReadResult};
use crate::core::{OpError, ProposalCommand, Role};
use crate::proto::{Request, Response};

/// Entries per read request, whatever the client asks.
const READ_ENTRIES_MAX: usize = 4096;

pub(super) async fn handle(request: Request, loop_tx: mpsc::Sender<Command>) -> Response {
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
                Some(status) if status.role == Role::Leader => status.ballot,
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

async fn propose(
    loop_tx: &mpsc::Sender<Command>,
    req: u64,
    client_id: u64,
    seq: u64,
    command: ProposalCommand,
    expected_ballot: Option<Ballot>,
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
