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

use std::collections::BTreeSet;

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
    /// Invariant: every member is below `next`.
    unsettled: BTreeSet<u64>,
    broken: bool,
}

impl Default for Seqs {
    fn default() -> Self {
        Seqs {
            id: None,
            next: 1,
            unsettled: BTreeSet::new(),
            broken: false,
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
        let floor = self.unsettled.first().copied().unwrap_or(self.next);
        if self.next - floor >= window.max(1) {
            return Err(Blocked::Full(Full));
        }
        let seq = self.next;
        self.next += 1;
        self.unsettled.insert(seq);
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
        if !ok {
            self.broken = true;
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
