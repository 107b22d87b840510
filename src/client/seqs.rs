//! One client's session with the cluster: its id (the index its
//! registration was chosen at), the next seq, the seqs not yet settled (whose
//! lowest is the floor each append carries), and whether it broke.
//!
//! Seqs are contiguous from 1 and the cluster makes an append effective only
//! right after the previous seq (`core::sessions`), so a seq that failed for
//! good would hold back every later one: the session is then *broken*. Once
//! its appends in flight have settled, the next append opens a new session
//! that supersedes it (closing it for new seqs), so nothing of the old one
//! can land after the new one's appends.
//!
//! After a leader change every append in flight is resent, each on its own
//! schedule, and the leader takes a seq only right after the one before it
//! (`OutOfOrder` otherwise). So the session also remembers when each
//! unsettled seq was last queued: a seq refused as out of order waits for
//! the seq before it to be queued again and goes right after it, on the same
//! stream, instead of polling — a window of polling retries kept a new
//! leader busy refusing them for tens of seconds. And no attempt, first or
//! not, goes while the seq before it is *held* (its latest attempt failed
//! and it has not been queued again): it would be refused for certain, and
//! the fresh appends of a pipeline kept arriving ahead of the resends they
//! follow, each refused once, for as long as the pipeline ran.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tokio::sync::Notify;

/// The session's window is full: wait for an append to settle.
#[derive(Debug)]
pub(super) struct Full;

/// There is no usable session: open one (superseding the broken one).
#[derive(Debug)]
pub(super) struct NoSession {
    pub supersedes: Option<u64>,
}

#[derive(Debug)]
pub(super) enum Blocked {
    Full(Full),
    NoSession(NoSession),
}

/// A seq handed out, to settle when its append is answered.
#[derive(Clone, Copy, Debug)]
pub(super) struct Taken {
    pub client_id: u64,
    pub seq: u64,
}

#[derive(Debug)]
pub(super) struct Seqs {
    id: Option<u64>,
    next: u64,
    /// Each unsettled seq, with the tick at which its latest attempt was
    /// queued (`None`: none yet).
    /// Invariant: every key is below `next`.
    unsettled: BTreeMap<u64, Option<u64>>,
    /// Seqs whose latest attempt failed and that have not been queued since.
    /// Invariant: every one is in `unsettled`.
    held: BTreeSet<u64>,
    broken: bool,
    /// Ticks once per queued attempt; orders the ticks in `unsettled`.
    clock: u64,
    /// Invariant: every key is in `unsettled`. Wakes seq `k`'s retry once
    /// seq `k - 1` is queued again or settles.
    turns: BTreeMap<u64, Arc<Notify>>,
}

/// What a seq refused as out of order does next.
#[derive(Debug)]
pub(super) enum Turn {
    /// The seq before it was queued again since this one was: go now.
    Now,
    /// The seq before it has settled (or there is none): the leader has
    /// not caught up with it yet; retry after a short pause.
    Pause,
    /// The seq before it has not been queued since: wait until it is.
    Wait(Arc<Notify>),
}

impl Default for Seqs {
    fn default() -> Self {
        Seqs {
            id: None,
            next: 1,
            unsettled: BTreeMap::new(),
            held: BTreeSet::new(),
            broken: false,
            clock: 0,
            turns: BTreeMap::new(),
        }
    }
}

impl Seqs {
    /// A session resumed from elsewhere (another process that persisted it).
    pub(super) fn resumed(id: u64, next: u64) -> Seqs {
        Seqs {
            id: Some(id),
            next: next.max(1),
            ..Seqs::default()
        }
    }

    pub(super) fn id(&self) -> Option<u64> {
        self.id
    }

    /// `(client_id, seq, floor)` for the next append.
    pub(super) fn take(&mut self, window: u64) -> Result<(u64, u64, u64), Blocked> {
        let id = match self.id {
            Some(id) if !self.broken => id,
            Some(id) if !self.unsettled.is_empty() => {
                // Broken: let what is in flight settle before superseding it.
                let _ = id;
                return Err(Blocked::Full(Full));
            }
            old => {
                return Err(Blocked::NoSession(NoSession {
                    supersedes: old.filter(|_| self.broken),
                }))
            }
        };
        let floor = self
            .unsettled
            .first_key_value()
            .map_or(self.next, |(&seq, _)| seq);
        if self.next - floor >= window.max(1) {
            return Err(Blocked::Full(Full));
        }
        let seq = self.next;
        self.next += 1;
        self.unsettled.insert(seq, None);
        Ok((id, seq, floor))
    }

    pub(super) fn open(&mut self, id: u64) {
        *self = Seqs::resumed(id, 1);
    }

    /// The append of `taken` was answered: acknowledged (`ok`) or failed.
    pub(super) fn settle(&mut self, taken: Taken, ok: bool) {
        if self.id != Some(taken.client_id) {
            return;
        }
        self.unsettled.remove(&taken.seq);
        self.held.remove(&taken.seq);
        self.turns.remove(&taken.seq);
        self.wake(taken.seq + 1);
        if !ok {
            self.broken = true;
        }
    }

    /// An attempt of `taken` was just put on a session's queue; its stamp.
    pub(super) fn queued(&mut self, taken: Taken) -> u64 {
        if self.id != Some(taken.client_id) {
            return 0;
        }
        let Some(at) = self.unsettled.get_mut(&taken.seq) else {
            return 0;
        };
        self.clock += 1;
        *at = Some(self.clock);
        self.held.remove(&taken.seq);
        self.wake(taken.seq + 1);
        self.clock
    }

    /// `taken`'s attempt queued at `stamp` failed (refused, or its
    /// session broke); it is held until queued again, unless it already was.
    pub(super) fn failed(&mut self, taken: Taken, stamp: u64) {
        if self.id != Some(taken.client_id) {
            return;
        }
        if self.unsettled.get(&taken.seq) == Some(&Some(stamp)) {
            self.held.insert(taken.seq);
        }
    }

    /// Before an attempt of `taken` is queued: the wake to wait for if the
    /// seq before it is held, since the attempt would be refused as out of
    /// order. The wake comes when that seq is queued again or settles.
    pub(super) fn behind_held(&mut self, taken: Taken) -> Option<Arc<Notify>> {
        if self.id != Some(taken.client_id) {
            return None;
        }
        let before = taken.seq.checked_sub(1)?;
        self.held
            .contains(&before)
            .then(|| self.turns.entry(taken.seq).or_default().clone())
    }

    /// `taken`'s attempt queued at `stamp` was refused as out of order.
    pub(super) fn turn(&mut self, taken: Taken, stamp: u64) -> Turn {
        if self.id != Some(taken.client_id) || !self.unsettled.contains_key(&taken.seq) {
            return Turn::Pause;
        }
        let Some(before) = taken.seq.checked_sub(1) else {
            return Turn::Pause;
        };
        match self.unsettled.get(&before) {
            Some(Some(at)) if *at > stamp => Turn::Now,
            Some(Some(_)) => Turn::Wait(self.turns.entry(taken.seq).or_default().clone()),
            // Settled, or never queued yet.
            Some(None) | None => Turn::Pause,
        }
    }

    fn wake(&mut self, seq: u64) {
        if let Some(turn) = self.turns.remove(&seq) {
            // Stores a permit if the waiter has not begun to wait yet.
            turn.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_is_the_lowest_unsettled_seq_and_the_window_bounds_it() {
        let mut s = Seqs::default();
        assert!(matches!(
            s.take(2),
            Err(Blocked::NoSession(NoSession { supersedes: None }))
        ));
        s.open(5);
        assert_eq!(s.take(2).ok(), Some((5, 1, 1)));
        assert_eq!(s.take(2).ok(), Some((5, 2, 1)));
        assert!(matches!(s.take(2), Err(Blocked::Full(_))));
        s.settle(
            Taken {
                client_id: 5,
                seq: 1,
            },
            true,
        );
        assert_eq!(s.take(2).ok(), Some((5, 3, 2)));
    }

    #[test]
    fn a_seq_refused_out_of_order_goes_right_after_the_one_before_it() {
        let mut s = Seqs::default();
        s.open(5);
        let one = Taken {
            client_id: 5,
            seq: s.take(8).expect("seq").1,
        };
        let two = Taken {
            client_id: 5,
            seq: s.take(8).expect("seq").1,
        };
        let one_sent = s.queued(one);
        let two_sent = s.queued(two);
        // One was queued before two and two was still refused: one was
        // refused too, so two waits for one's next attempt.
        let Turn::Wait(turn) = s.turn(two, two_sent) else {
            panic!("two must wait for one's next attempt");
        };
        assert!(s.queued(one) > one_sent);
        // The wake is stored even though no one waits yet.
        futures::executor::block_on(turn.notified());
        assert!(matches!(s.turn(two, two_sent), Turn::Now));
        assert!(
            matches!(s.turn(one, one_sent), Turn::Pause),
            "nothing comes before seq 1"
        );
        let two_again = s.queued(two);
        s.settle(one, true);
        assert!(
            matches!(s.turn(two, two_again), Turn::Pause),
            "one settled: the leader has yet to catch up"
        );
    }

    #[test]
    fn no_attempt_goes_while_the_seq_before_it_is_held() {
        let mut s = Seqs::default();
        s.open(5);
        let mut take = || Taken {
            client_id: 5,
            seq: s.take(8).expect("seq").1,
        };
        let (one, two) = (take(), take());
        let one_sent = s.queued(one);
        assert!(s.behind_held(two).is_none(), "one is in flight, not held");
        s.failed(one, one_sent);
        let wake = s.behind_held(two).expect("one failed: two waits");
        assert!(s.behind_held(one).is_none(), "nothing comes before seq 1");
        s.queued(one);
        futures::executor::block_on(wake.notified());
        assert!(s.behind_held(two).is_none(), "one was queued again");

        let stale = s.queued(one);
        s.queued(one);
        s.failed(one, stale);
        assert!(
            s.behind_held(two).is_none(),
            "an older attempt's failure does not hold a newer one"
        );
        let latest = s.queued(one);
        s.failed(one, latest);
        let wake = s.behind_held(two).expect("held again");
        s.settle(one, true);
        futures::executor::block_on(wake.notified());
        assert!(s.behind_held(two).is_none(), "one settled");
    }

    #[test]
    fn a_failed_seq_breaks_the_session_once_the_rest_settled() {
        let mut s = Seqs::default();
        s.open(5);
        let (_, one, _) = s.take(8).expect("seq");
        let (_, two, _) = s.take(8).expect("seq");
        s.settle(
            Taken {
                client_id: 5,
                seq: one,
            },
            false,
        );
        assert!(matches!(s.take(8), Err(Blocked::Full(_))), "two in flight");
        s.settle(
            Taken {
                client_id: 5,
                seq: two,
            },
            true,
        );
        assert!(matches!(
            s.take(8),
            Err(Blocked::NoSession(NoSession {
                supersedes: Some(5)
            }))
        ));
        s.open(9);
        s.settle(
            Taken {
                client_id: 5,
                seq: 3,
            },
            false,
        );
        assert_eq!(
            s.take(8).ok(),
            Some((9, 1, 1)),
            "the old session's news change nothing"
        );
    }
}
