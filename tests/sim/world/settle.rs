//! The quiet phase that ends every run, with every fault healed and clients
//! and the bulk writer silent, in two rounds. Each time every node (not only
//! a majority) must reach the cluster's chosen index within `QUIET_MS`.
//! 1. As the run left it: a trim point beyond what the chosen Trim commands
//!    and the node's applied index imply is a violation; one below it (a
//!    node that lost a Trim, see `check_trims`) is counted and reported.
//! 2. After the leader's application published a snapshot and trimmed up
//!    to it: every node must end on exactly the trim point it implies, the
//!    same everywhere.

use paxlog::core::{Index, NodeId, Role, Status};

use super::World;
use crate::invariants::Violation;

/// A node that has not caught up when the quiet phase ends.
pub const CATCH_UP: &str = "catch_up";
/// A trim point no chosen Trim command implies.
pub const TRIM: &str = "trim";

/// Bound of the quiet phase, in simulated ms. It starts 4 s after the heal,
/// so what it must still absorb is: a disk failure armed during the faults
/// that fires on a late write (restart after at most 500 ms), one election
/// if that node led (election timeout at most 600 ms, plus a PreVote and a
/// Prepare round trip of at most 4 × 20 ms), and the catch-up of what a
/// restarted node missed, a Catchup of at least 3 entries per round trip
/// (1,024 budget bytes, entries of at most 256 + 40) every at most 40 ms
/// plus a write. That is about 1.2 s plus 40 ms per 3 entries missed; 3 s
/// leaves room for a lag of about 100 entries. Measured over 10,000 seeds
/// (`settle_ms` in the report): median 100 ms, at most 310 ms (with
/// sessions and the bulk writer a session client).
pub const QUIET_MS: u64 = 3_000;
/// How often the quiet phase looks whether every node caught up.
const POLL_MS: u64 = 10;

impl World {
    /// Runs the quiet phase, checking catch-up and trim points.
    pub(super) fn settle(&mut self) {
        self.quiet = true;
        let start = self.run_end_ms();
        self.now_ms = self.now_ms.max(start);
        self.stats.settle_ms = self.settle_round();
        self.check_trims(false);
        if !self.checkers.found.is_empty() {
            return;
        }
        let leader = self.live().into_iter().find(|id| {
            self.nodes[id]
                .replica
                .as_ref()
                .is_some_and(|r| r.status().role == Role::Leader)
        });
        if let Some(leader) = leader {
            // A snapshot of everything applied, then, once it is chosen,
            // a trim up to it.
            self.publish_snapshot(leader);
            let took = self.settle_round();
            self.stats.settle_ms = self.stats.settle_ms.max(took);
            if self.nodes[&leader].replica.is_some() {
                self.propose_trim(leader);
            }
        }
        let took = self.settle_round();
        self.stats.settle_ms = self.stats.settle_ms.max(took);
        self.check_trims(true);
        self.stats.hold_expiries = self.checkers.snapshots.expiries;
    }

    /// Runs until every node caught up or `QUIET_MS` passed, then checks that
    /// every node caught up; returns the simulated ms it took.
    fn settle_round(&mut self) -> u64 {
        let start = self.now_ms;
        let mut at = start;
        while at < start + QUIET_MS && !self.caught_up() {
            at += POLL_MS;
            self.run_until(at);
            if !self.checkers.found.is_empty() {
                return at - start;
            }
        }
        self.now_ms = at;
        self.check_caught_up();
        at - start
    }

    /// Every member's status (of the configuration the history ends in: a
    /// node removed, or a spare never added, learns nothing more), `None`
    /// for a node down or failed.
    fn statuses(&self) -> Vec<(NodeId, Option<Status>)> {
        let members = self.checkers.agreement.governing().latest().clone();
        self.nodes
            .iter()
            .filter(|(&id, _)| members.is_member(id))
            .map(|(&id, n)| {
                let status = n
                    .replica
                    .as_ref()
                    .filter(|r| !r.is_failed())
                    .map(|r| r.status());
                (id, status)
            })
            .collect()
    }

    /// Every node is up, applied everything it knows chosen, at one chosen
    /// index, and the last trim was answered.
    fn caught_up(&self) -> bool {
        let statuses = self.statuses();
        let mut chosen = statuses
            .iter()
            .map(|(_, s)| s.as_ref().map(|s| s.chosen_index));
        let first = chosen.next().flatten();
        first.is_some()
            && chosen.all(|c| c == first)
            && self.quiet_waits.is_empty()
            && statuses
                .iter()
                .all(|(id, _)| Some(self.nodes[id].applied) == first)
    }

    fn check_caught_up(&mut self) {
        let statuses = self.statuses();
        let target: Index = statuses
            .iter()
            .filter_map(|(_, s)| s.as_ref().map(|s| s.chosen_index))
            .max()
            .unwrap_or(0);
        for (id, status) in statuses {
            let applied = self.nodes[&id].applied;
            let detail = match status {
                None => format!("node {id} is down {QUIET_MS} ms into the quiet phase"),
                Some(s) if s.chosen_index < target || applied < s.chosen_index => format!(
                    "node {id} has chosen index {} (applied {applied}), the cluster {target}, \
                     {QUIET_MS} ms into the quiet phase",
                    s.chosen_index
                ),
                Some(_) => continue,
            };
            self.checkers.found.push(Violation {
                invariant: CATCH_UP,
                detail,
            });
        }
    }

    /// A node's trim point is the `upto` of a Trim chosen at or below its
    /// applied index (or a peer's trim point it skipped to, itself such an
    /// `upto`), and never above the highest of them. It should be that
    /// highest, but the core loses a Trim a node applied in memory when it
    /// crashes before that trim point is durable (`rebuild_dedup` replays
    /// chosen entries without their trims), so a lower one is only counted
    /// (`trim_diverged`, with notes) unless `strict`: after a fresh Trim that
    /// every node applies, trim points must be exactly what it implies.
    fn check_trims(&mut self, strict: bool) {
        let mut points = Vec::new();
        for (id, status) in self.statuses() {
            let Some(s) = status else { continue };
            let applied = self.nodes[&id].applied;
            let implied = self
                .trims_chosen
                .range(..=applied)
                .map(|(_, &upto)| upto)
                .max()
                .unwrap_or(0);
            let known = s.trim_index == 0
                || self
                    .trims_chosen
                    .range(..=applied)
                    .any(|(_, &upto)| upto == s.trim_index);
            if s.trim_index > implied || !known || (strict && s.trim_index != implied) {
                self.checkers.found.push(Violation {
                    invariant: TRIM,
                    detail: format!(
                        "node {id} trimmed to {}, but the Trims chosen up to its applied \
                         index {applied} imply {implied}: {:?}",
                        s.trim_index, self.trims_chosen
                    ),
                });
            }
            if s.trim_index != implied && !strict {
                self.stats.trim_diverged += 1;
                self.stats.trim_notes.push(format!(
                    "node {id} trim point {} < {implied} implied by the chosen Trims \
                     {:?} (applied {applied})",
                    s.trim_index, self.trims_chosen
                ));
            }
            points.push(s.trim_index);
        }
        if points.windows(2).all(|w| w[0] == w[1]) {
            self.stats.trim_final = points.first().copied().unwrap_or(0);
        } else if strict {
            self.checkers.found.push(Violation {
                invariant: TRIM,
                detail: format!("nodes end on different trim points {points:?}"),
            });
        }
    }
}
