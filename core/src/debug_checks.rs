//! How often the debug checks walk the replica's whole state
//! (`invariants.rs`): rarely enough that a walk costs a constant per check.

use std::cell::Cell;

/// One debug check in this many walks the whole state, at most.
pub(crate) const FULL_CHECK_EVERY: u64 = 16;
/// Mirrored entries one check may account for: a walk over `n` of them
/// waits `n / MIRRORED_PER_CHECK` checks, so its cost per check is constant.
pub(crate) const MIRRORED_PER_CHECK: u64 = 4;

/// Paces the walks of `Replica::debug_assert_invariants`.
#[derive(Debug, Default)]
pub(crate) struct DebugChecks {
    since_walk: Cell<u64>,
    /// Checks and mirrored entries walked so far, for tests of the pacing.
    pub(crate) checks: Cell<u64>,
    pub(crate) walked_entries: Cell<u64>,
}

impl DebugChecks {
    /// Counts one check over a mirror of `mirrored` entries; whether it walks.
    pub(crate) fn count(&self, mirrored: u64) -> bool {
        let since_walk = self.since_walk.get();
        let walk = since_walk >= FULL_CHECK_EVERY.max(mirrored / MIRRORED_PER_CHECK);
        self.since_walk.set(if walk { 0 } else { since_walk + 1 });
        self.checks.set(self.checks.get() + 1);
        if walk {
            self.walked_entries
                .set(self.walked_entries.get() + mirrored);
        }
        walk
    }
}
