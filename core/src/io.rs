//! The core's output queues: staged writes become ticketed `Persist`
//! batches; messages that reflect a promise or an accept wait, as data, for
//! the ticket of the write that made them true, synced.
//!
//! A batch is written unsynced only when nothing asks for its durability:
//! it holds accepts of a leader that does not count them (`Accept { sync:
//! false }`), no promise, no trim and no chosen index (a power cut may keep
//! it and lose the unsynced batches before it). A message that must be
//! durable behind an unsynced batch makes the next batch a synced one, which
//! syncs both.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use paxlog_storage::{Accepted, Ballot, Index, NodeId, WriteBatch};

use super::{Message, Outbound, Persist, Reply, Ticket};

#[derive(Debug, Default)]
pub(crate) struct Io {
    staged_promise: Option<Ballot>,
    /// Indexes only: the values are read from the acceptor's mirror when
    /// the batch is built, so a proposed value is held once.
    /// Invariant: every staged index is in the acceptor's mirror.
    staged_accepts: BTreeSet<Index>,
    staged_bytes: usize,
    staged_chosen: Option<Index>,
    staged_trim: Option<(Index, bytes::Bytes)>,
    /// Something staged, or a message gated behind a written batch, needs
    /// the next batch synced.
    staged_sync: bool,
    /// Unsynced batches since the last synced one (handed out or written).
    /// Invariant: below `UNSYNCED_BATCHES_MAX`.
    unsynced_batches: usize,
    writes: VecDeque<Persist>,
    /// Batches handed out and not yet persisted, oldest first, with whether
    /// each syncs.
    /// Invariant: tickets are consecutive, from `persisted_ticket + 1` to
    /// `next_ticket - 1`.
    inflight: VecDeque<(u64, WriteBatch, bool)>,
    /// The ticket the next flushed batch gets.
    pub(crate) next_ticket: u64,
    /// Every ticket `<=` it is written; never decreases (tickets persist in order).
    persisted_ticket: u64,
    /// Every ticket `<=` it is durable: a sync covers the writes before it.
    /// Invariant: `synced_ticket <= persisted_ticket`.
    synced_ticket: u64,
    ready: VecDeque<Outbound>,
    /// Messages waiting for a ticket, and whether it must be synced.
    gated: VecDeque<(u64, bool, Outbound)>,
    replies: VecDeque<Reply>,
}

/// Unsynced batches in a row at most: a power cut then costs an unsynced
/// acceptor at most this many batches to fetch again, and a lone sync per
/// this many batches is cheap.
pub(crate) const UNSYNCED_BATCHES_MAX: usize = 64;

impl Io {
    pub(crate) fn new() -> Self {
        Io {
            next_ticket: 1,
            ..Io::default()
        }
    }

    pub(crate) fn stage_promise(&mut self, ballot: Ballot) {
        assert!(self.staged_promise.is_none_or(|p| p <= ballot));
        self.staged_promise = Some(ballot);
        self.staged_sync = true;
    }

    /// Stages the accept at `index`, whose value (of `value_bytes`) the
    /// caller has just put in the mirror; `sync` unless no leader counts it.
    pub(crate) fn stage_accept(&mut self, index: Index, value_bytes: usize, sync: bool) {
        self.staged_bytes += value_bytes;
        self.staged_accepts.insert(index);
        self.staged_sync |= sync;
    }

    pub(crate) fn stage_chosen(&mut self, chosen_index: Index) {
        assert!(self.staged_chosen.is_none_or(|c| c <= chosen_index));
        self.staged_chosen = Some(chosen_index);
    }

    /// Stages a trim with the session table at it (`state`, encoded).
    pub(crate) fn stage_trim(&mut self, trim_index: Index, state: bytes::Bytes) {
        assert!(
            self.staged_trim
                .as_ref()
                .is_none_or(|(t, _)| *t < trim_index),
            "trims are staged in increasing order"
        );
        self.staged_trim = Some((trim_index, state));
        self.staged_sync = true;
        // Entries at or below the trim point must not be rewritten by this batch.
        self.staged_accepts.retain(|&i| i > trim_index);
    }

    pub(crate) fn staged_len(&self) -> (usize, usize) {
        (self.staged_accepts.len(), self.staged_bytes)
    }

    fn staged_is_empty(&self) -> bool {
        self.staged_promise.is_none()
            && self.staged_accepts.is_empty()
            && self.staged_chosen.is_none()
            && self.staged_trim.is_none()
    }

    /// Whether something that gates a reply is staged: a chosen index alone
    /// is knowledge a restart can relearn, so it never holds a message back.
    fn staged_gates(&self) -> bool {
        self.staged_promise.is_some()
            || !self.staged_accepts.is_empty()
            || self.staged_trim.is_some()
    }

    /// Turns the staged changes into one ticketed batch (group commit). A
    /// staged chosen index alone waits for the next batch or `flush_all`:
    /// syncing it on its own would cost one more fsync per commit.
    /// `entries` is the acceptor's mirror, where staged values are read.
    pub(crate) fn flush(&mut self, entries: &BTreeMap<Index, Accepted>) {
        if self.staged_gates() || self.staged_sync {
            self.flush_all(entries);
        }
    }

    /// Flushes everything, and syncs the batch if it must carry a staged
    /// chosen index: the periodic flush that bounds how late one is durable.
    pub(crate) fn flush_chosen(&mut self, entries: &BTreeMap<Index, Accepted>) {
        self.staged_sync |= self.staged_chosen.is_some();
        self.flush_all(entries);
    }

    /// Like `flush`, including a lone chosen index. A batch with nothing
    /// staged is flushed only to sync the ones before it.
    pub(crate) fn flush_all(&mut self, entries: &BTreeMap<Index, Accepted>) {
        if self.staged_is_empty() && !self.staged_sync {
            return;
        }
        let accepts: Vec<(Index, Accepted)> = std::mem::take(&mut self.staged_accepts)
            .into_iter()
            .map(|i| {
                let accepted = entries.get(&i).cloned();
                (i, accepted.unwrap_or_else(|| panic!("{}", unmirrored(i))))
            })
            .collect();
        let (trim_index, trim_state) = self.staged_trim.take().unzip();
        // A lone chosen index is synced, as it always was: the periodic
        // flush of one is what bounds how late it becomes durable.
        let lone_chosen = accepts.is_empty() && self.staged_chosen.is_some();
        let sync = std::mem::take(&mut self.staged_sync)
            || lone_chosen
            || self.unsynced_batches + 1 >= UNSYNCED_BATCHES_MAX;
        // An unsynced batch may survive a power cut without the unsynced
        // ones before it (a WAL block lost to a hole is skipped silently), so
        // it must not say that their accepts are chosen: the chosen index
        // waits, staged, for a synced batch.
        let chosen_index = if sync {
            self.staged_chosen.take()
        } else {
            None
        };
        let batch = WriteBatch {
            promise: self.staged_promise.take(),
            accepts,
            chosen_index,
            trim_index,
            trim_state,
        };
        assert!(
            sync || (batch.promise.is_none() && batch.trim_index.is_none()),
            "Invariant: an unsynced batch holds accepts only"
        );
        self.staged_bytes = 0;
        self.unsynced_batches = if sync { 0 } else { self.unsynced_batches + 1 };
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.inflight.push_back((ticket, batch.clone(), sync));
        self.writes.push_back(Persist {
            ticket: Ticket(ticket),
            batch,
            sync,
        });
    }

    /// The ticket whose persistence makes everything staged so far durable.
    pub(crate) fn gate(&self) -> u64 {
        if !self.staged_gates() {
            self.next_ticket - 1
        } else {
            self.next_ticket
        }
    }

    pub(crate) fn send(&mut self, to: NodeId, message: Message) {
        self.ready.push_back(Outbound {
            to,
            message,
            epoch: 0,
            incarnation: 0,
        });
    }

    /// Queues `message` behind the synced write of everything staged so far.
    pub(crate) fn send_durable(&mut self, to: NodeId, message: Message, ungated: bool) {
        self.send_gated(to, message, ungated, true);
    }

    /// Queues `message` behind the write of everything staged so far, synced
    /// if `sync`: a message that claims no durability only keeps its order.
    pub(crate) fn send_gated(&mut self, to: NodeId, message: Message, ungated: bool, sync: bool) {
        let gate = self.gate();
        let done = if sync {
            self.synced_ticket
        } else {
            self.persisted_ticket
        };
        if ungated || (gate <= done && self.gated.is_empty()) {
            return self.send(to, message);
        }
        if sync && gate > self.synced_ticket {
            let synced_later = self
                .inflight
                .iter()
                .any(|&(t, _, synced)| synced && t >= gate);
            if !synced_later {
                // Written or handed out unsynced, or staged: the next batch syncs it.
                self.staged_sync = true;
            }
        }
        let out = Outbound {
            to,
            message,
            epoch: 0,
            incarnation: 0,
        };
        self.gated.push_back((gate, sync, out));
    }

    pub(crate) fn reply(&mut self, reply: Reply) {
        self.replies.push_back(reply);
    }

    /// Marks `ticket` written (and durable if it synced); returns its batch
    /// and whether it synced.
    pub(crate) fn persisted(&mut self, ticket: Ticket) -> (WriteBatch, bool) {
        let (t, batch, sync) = self
            .inflight
            .pop_front()
            .unwrap_or_else(|| panic!("on_persisted({}) with no write in flight", ticket.0));
        assert_eq!(t, ticket.0, "tickets must be persisted in order");
        self.persisted_ticket = t;
        if sync {
            self.synced_ticket = t;
        }
        // In order: a message never overtakes one queued before it.
        while let Some(&(g, needs_sync, _)) = self.gated.front() {
            let done = if needs_sync {
                self.synced_ticket
            } else {
                self.persisted_ticket
            };
            if g > done {
                break;
            }
            if let Some((_, _, out)) = self.gated.pop_front() {
                self.ready.push_back(out);
            }
        }
        (batch, sync)
    }

    pub(crate) fn poll_write(&mut self, entries: &BTreeMap<Index, Accepted>) -> Option<Persist> {
        self.flush(entries);
        self.writes.pop_front()
    }

    pub(crate) fn poll_message(&mut self) -> Option<Outbound> {
        self.ready.pop_front()
    }

    pub(crate) fn poll_reply(&mut self) -> Option<Reply> {
        self.replies.pop_front()
    }
}

impl Io {
    /// The checks of this part; `entries` is the acceptor's mirror.
    pub(crate) fn assert_invariants(&self, entries: &BTreeMap<Index, Accepted>, full: bool) {
        let walk = if full { usize::MAX } else { 1 };
        let consecutive = self
            .inflight
            .iter()
            .take(walk)
            .zip(self.persisted_ticket + 1..)
            .all(|(&(t, _, _), want)| t == want)
            && self.persisted_ticket + self.inflight.len() as u64 + 1 == self.next_ticket;
        assert!(
            consecutive,
            "Invariant: in-flight tickets are consecutive from persisted_ticket + 1 \
             (persisted {}, {} in flight, next {})",
            self.persisted_ticket,
            self.inflight.len(),
            self.next_ticket
        );
        assert!(
            self.synced_ticket <= self.persisted_ticket,
            "Invariant: synced_ticket <= persisted_ticket ({} > {})",
            self.synced_ticket,
            self.persisted_ticket
        );
        assert!(
            self.unsynced_batches < UNSYNCED_BATCHES_MAX,
            "Invariant: unsynced batches in a row below {UNSYNCED_BATCHES_MAX}"
        );
        if let Some(&i) = self
            .staged_accepts
            .iter()
            .take(if full { usize::MAX } else { 1 })
            .find(|i| !entries.contains_key(i))
        {
            panic!("{}", unmirrored(i));
        }
    }
}

fn unmirrored(index: Index) -> String {
    format!("Invariant: every staged accept is in the acceptor's mirror (index {index})")
}
