//! The retry policy of leader-only requests, in one place: exponential
//! backoff with jitter, and what each answer of a node ([`OpError`]) or each
//! failure seen only by the client means — try another node, back off and
//! retry with the same `(client_id, seq)`, or fail.

use std::time::{Duration, Instant};

use paxlog_storage::{Index, NodeId};
use rand::Rng;

use super::seqs::{Blocked, NoSession, Taken, Turn};
use super::session::Answer;
use super::{unexpected, window, Client, ClientError};
use crate::core::OpError;
use crate::proto::{Request, Response};

const BACKOFF_MIN: Duration = Duration::from_millis(20);
const BACKOFF_MAX: Duration = Duration::from_millis(500);
const OUT_OF_ORDER_PAUSE: Duration = Duration::from_millis(2);
/// How long a seq refused as out of order waits for the seq before it to be
/// queued again before it retries anyway (a wake it missed costs no more).
const TURN_WAIT_MAX: Duration = Duration::from_millis(100);

/// Exponential backoff with jitter, from [`BACKOFF_MIN`] to [`BACKOFF_MAX`].
#[derive(Debug)]
pub(super) struct Backoff(Duration);

impl Backoff {
    pub(super) fn new() -> Backoff {
        Backoff(BACKOFF_MIN)
    }

    pub(super) async fn sleep(&mut self) {
        let jitter = rand::thread_rng().gen_range(0..=self.0.as_millis() as u64 / 2);
        tokio::time::sleep(self.0 + Duration::from_millis(jitter)).await;
        self.0 = (self.0 * 2).min(BACKOFF_MAX);
    }
}

/// What to do after a node refused a leader-only request.
#[derive(Debug)]
enum Step {
    /// Ask this node next, at once.
    Redirect(NodeId),
    /// Back off and retry; `forget_leader` drops the cached leader first.
    Retry {
        forget_leader: bool,
    },
    /// Retry once the seq before ours is on its way again, right behind it
    /// (a backoff would cascade down a pipeline).
    RetryInTurn,
    Fail(ClientError),
}

/// What the attempts so far have shown; decides the error at the deadline.
#[derive(Debug, Default)]
struct Attempts {
    /// Why an earlier attempt may have appended: once set, a failure is
    /// indeterminate, never "surely not appended".
    maybe_applied: Option<String>,
    last_error: Option<ClientError>,
    /// Kept apart: what a reachable node said explains more than this.
    unreachable: Option<ClientError>,
}

impl Attempts {
    fn maybe_applied(&mut self, why: impl FnOnce() -> String) {
        self.maybe_applied.get_or_insert_with(why);
    }

    fn give_up(self, timeout: Duration) -> ClientError {
        match (self.maybe_applied, self.last_error.or(self.unreachable)) {
            (Some(why), _) => ClientError::Indeterminate(why),
            (None, Some(e)) => e,
            (None, None) => ClientError::Timeout(timeout),
        }
    }

    /// The one rule for a node's refusal: which answers are retried, which fail.
    fn on_refusal(&mut self, error: OpError, target: NodeId) -> Step {
        match error {
            OpError::NotLeader {
                leader_hint: Some(hint),
            } if hint != target => Step::Redirect(hint),
            OpError::NotLeader { .. } | OpError::NoQuorum => {
                self.last_error = Some(ClientError::Op(OpError::NoQuorum));
                Step::Retry {
                    forget_leader: true,
                }
            }
            OpError::Busy => {
                self.last_error = Some(ClientError::Op(OpError::Busy));
                Step::Retry {
                    forget_leader: false,
                }
            }
            // The seq before it is not effective yet (still in flight, or
            // being resubmitted): ours comes after it.
            OpError::OutOfOrder { .. } => {
                self.last_error = Some(ClientError::Op(error));
                Step::RetryInTurn
            }
            OpError::Indeterminate | OpError::ShuttingDown | OpError::Failed(_) => {
                self.maybe_applied(|| error.to_string());
                Step::Retry {
                    forget_leader: true,
                }
            }
            // Final answers for this attempt; an earlier attempt may still have appended.
            error @ (OpError::Fenced { .. }
            | OpError::SessionExpired { .. }
            | OpError::BelowFloor { .. }) => Step::Fail(match self.maybe_applied.take() {
                Some(why) => ClientError::Indeterminate(format!("{why}; then: {error}")),
                None => ClientError::Op(error),
            }),
            error @ (OpError::TooLarge { .. }
            | OpError::Trimmed { .. }
            | OpError::BadRequest(_)
            | OpError::ChangeRefused(_)
            | OpError::NotPermitted(_)
            | OpError::TrimAboveSnapshot { .. }
            | OpError::SnapshotAboveChosen { .. }
            | OpError::SnapshotUnavailable(_)
            | OpError::TrimPastHold { .. }
            | OpError::TrimAboveChosen { .. }) => Step::Fail(match self.maybe_applied.take() {
                Some(why) => ClientError::Indeterminate(format!("{why}; then: {error}")),
                None => ClientError::Op(error),
            }),
        }
    }
}

/// A leader-only request whose first attempt has been queued on a session,
/// or found no session to queue on.
#[derive(Debug)]
pub(super) struct Started {
    deadline: Instant,
    rotation: usize,
    /// The session's seq this request carries, if any.
    taken: Option<Taken>,
    first: Result<Queued, ClientError>,
}

/// An attempt on a node's session: the node, the attempt's stamp in the
/// session's seqs (0 for a request without a seq), and where its answer comes.
type Queued = (NodeId, u64, Result<Answer, ClientError>);

impl Client {
    /// Sends a leader-only request, following redirects and retrying until
    /// the client's timeout. `make` builds the request for a fresh `req` id;
    /// whatever else it carries (`client_id`, `seq`) stays the same.
    pub(super) async fn to_leader(
        &self,
        make: impl Fn(u64) -> Request,
    ) -> Result<Response, ClientError> {
        let started = self.start(&make, None).await;
        self.follow(started, make).await
    }

    /// [`Client::to_leader`] for a proposal: the index it was chosen at.
    pub(super) async fn to_leader_index(
        &self,
        make: impl Fn(u64) -> Request,
    ) -> Result<Index, ClientError> {
        let started = self.start(&make, None).await;
        self.follow_to_index(started, make).await
    }

    /// Queues the first attempt. Callers that start requests one after
    /// another put them on the stream in that order, which is what lets a
    /// pipelining caller keep its seq order; only [`Client::follow`] overlaps.
    async fn start(&self, make: &impl Fn(u64) -> Request, taken: Option<Taken>) -> Started {
        let deadline = Instant::now() + self.inner.timeout;
        let mut rotation = 0usize;
        let first = tokio::time::timeout(
            self.inner.timeout,
            self.queue_attempt(make, &mut rotation, taken),
        )
        .await
        .unwrap_or_else(|_| {
            Err(ClientError::Unreachable(format!(
                "no node reached within {:?}",
                self.inner.timeout
            )))
        });
        Started {
            deadline,
            rotation,
            taken,
            first,
        }
    }

    /// The outer error means nothing was sent; the inner one that the
    /// request may have reached the node.
    async fn queue_attempt(
        &self,
        make: &impl Fn(u64) -> Request,
        rotation: &mut usize,
        taken: Option<Taken>,
    ) -> Result<Queued, ClientError> {
        let target = self.cached_leader().unwrap_or_else(|| {
            *rotation += 1;
            let ids: Vec<NodeId> = self.node_ids();
            ids[(*rotation - 1) % ids.len()]
        });
        let tx = self.session(target).await?;
        if let Some(wake) = taken.and_then(|taken| self.seqs(|s| s.behind_held(taken))) {
            // Bounded: a wake missed costs one refusal, no more.
            let _ = tokio::time::timeout(TURN_WAIT_MAX, wake.notified()).await;
        }
        let req = self.next_req();
        let answer = self.queue(target, tx, make(req)).await;
        let stamp = taken.map_or(0, |taken| self.seqs(|s| s.queued(taken)));
        Ok((target, stamp, answer))
    }

    /// Waits for the answer to a started request, retrying as the answers
    /// and failures say until the deadline.
    async fn follow(
        &self,
        started: Started,
        make: impl Fn(u64) -> Request,
    ) -> Result<Response, ClientError> {
        let Started {
            deadline,
            mut rotation,
            taken,
            first,
        } = started;
        let mut next = Some(first);
        let mut backoff = Backoff::new();
        let mut attempts = Attempts::default();
        loop {
            let queued = match next.take() {
                Some(queued) => queued,
                None => {
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    if remaining.is_zero() {
                        return Err(attempts.give_up(self.inner.timeout));
                    }
                    // Bounded too: reaching a node can wait (a connect in
                    // progress); cut short, nothing was sent.
                    let attempt = self.queue_attempt(&make, &mut rotation, taken);
                    match tokio::time::timeout(remaining, attempt).await {
                        Ok(queued) => queued,
                        Err(_) => continue,
                    }
                }
            };
            let (target, stamp, answer) = match queued {
                Ok(queued) => queued,
                Err(e) => {
                    // Nothing was sent: this attempt surely did not append.
                    self.set_leader(None);
                    attempts.unreachable = Some(e);
                    backoff.sleep().await;
                    continue;
                }
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            let attempt = tokio::time::timeout(remaining, Self::answer(target, answer)).await;
            let error = match attempt {
                Err(_) => {
                    attempts.maybe_applied(|| "no answer before the timeout".into());
                    continue;
                }
                Ok(Ok(Response::Error { error, .. })) => {
                    self.held_back(taken, stamp);
                    error
                }
                Ok(Ok(response)) => {
                    self.set_leader(Some(target));
                    return Ok(response);
                }
                // Refused at the handshake: no node will take this client.
                Ok(Err(e @ ClientError::Tls(_))) => {
                    return Err(match attempts.maybe_applied.take() {
                        Some(why) => ClientError::Indeterminate(format!("{why}; then: {e}")),
                        None => e,
                    })
                }
                Ok(Err(e)) => {
                    self.held_back(taken, stamp);
                    tracing::debug!(node = target, error = %e, "session failed");
                    // The request may have reached the node before the connection failed.
                    self.drop_session(target).await;
                    self.set_leader(None);
                    attempts.maybe_applied(|| e.to_string());
                    attempts.last_error = Some(e);
                    backoff.sleep().await;
                    continue;
                }
            };
            tracing::debug!(node = target, %error, "append attempt refused; retrying or failing");
            if matches!(error, OpError::NotLeader { .. }) {
                // The members may have moved to nodes added since this
                // client was built; the node that answered can say where.
                self.maybe_discover(target).await;
            }
            match attempts.on_refusal(error, target) {
                Step::Redirect(hint) => self.set_leader(Some(hint)),
                Step::Retry { forget_leader } => {
                    if forget_leader {
                        self.set_leader(None);
                    }
                    backoff.sleep().await;
                }
                Step::RetryInTurn => self.wait_turn(taken, stamp).await,
                Step::Fail(error) => return Err(error),
            }
        }
    }

    /// Takes the session's next seq and queues the first attempt of the
    /// append that `build(client_id, seq, floor)` makes, holding the session
    /// until it is queued, so seq order is the order requests reach the
    /// stream. Opens a session first if there is none (or the last one
    /// broke), and waits while the session's window is full.
    pub(super) async fn start_fresh<F: Fn(u64) -> Request>(
        &self,
        build: impl FnOnce(u64, u64, u64) -> F,
    ) -> Result<(Started, F, Taken), ClientError> {
        loop {
            let order = self.inner.order.lock().await;
            // Created before looking, so a settle in between still wakes us.
            let settled = self.inner.settled.notified();
            let (client_id, seq, floor) = match self.seqs(|s| s.take(window())) {
                Ok(taken) => taken,
                Err(Blocked::Full(_)) => {
                    drop(order);
                    settled.await;
                    continue;
                }
                Err(Blocked::NoSession(NoSession { supersedes })) => {
                    let id = self.register(supersedes).await?;
                    self.seqs(|s| s.open(id));
                    continue;
                }
            };
            let make = build(client_id, seq, floor);
            let taken = Taken { client_id, seq };
            let started = self.start(&make, Some(taken)).await;
            return Ok((started, make, taken));
        }
    }

    /// The attempt of `taken` queued at `stamp` failed: the seqs after it
    /// wait until it is queued again.
    fn held_back(&self, taken: Option<Taken>, stamp: u64) {
        if let Some(taken) = taken {
            self.seqs(|s| s.failed(taken, stamp));
        }
    }

    /// After an attempt queued at `stamp` was refused as out of order: waits
    /// until the seq before `taken` has been queued again, so the retry
    /// follows it on the stream.
    async fn wait_turn(&self, taken: Option<Taken>, stamp: u64) {
        let turn = taken.map_or(Turn::Pause, |taken| self.seqs(|s| s.turn(taken, stamp)));
        match turn {
            Turn::Now => {}
            Turn::Pause => tokio::time::sleep(OUT_OF_ORDER_PAUSE).await,
            Turn::Wait(turn) => {
                let _ = tokio::time::timeout(TURN_WAIT_MAX, turn.notified()).await;
            }
        }
    }

    async fn register(&self, supersedes: Option<u64>) -> Result<u64, ClientError> {
        self.to_leader_index(|req| Request::Register { req, supersedes })
            .await
    }

    /// Follows an append to its index, then settles its seq in the session:
    /// acknowledged, or — on any failure — the session is broken, since a
    /// seq that never becomes effective would hold back every later one.
    pub(super) async fn follow_append(
        &self,
        started: Started,
        make: impl Fn(u64) -> Request,
        taken: Taken,
    ) -> Result<Index, ClientError> {
        let result = self.follow_to_index(started, make).await;
        self.seqs(|s| s.settle(taken, result.is_ok()));
        self.inner.settled.notify_waiters();
        result
    }

    pub(super) async fn follow_to_index(
        &self,
        started: Started,
        make: impl Fn(u64) -> Request,
    ) -> Result<Index, ClientError> {
        match self.follow(started, make).await? {
            Response::Appended { index, .. } => Ok(index),
            other => Err(unexpected(&other)),
        }
    }
}
