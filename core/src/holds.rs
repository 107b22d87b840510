//! Retention holds: a named reader (a slow consumer, a backup, a replica
//! being rebuilt) keeps every index above its hold from being trimmed, for
//! as long as it renews the hold.
//!
//! `Command::Hold { name, index, lease_ms }` sets or renews hold `name`:
//! the trim point stays at or below `index` (as it stays at or below the
//! newest snapshot, see `snapshot`). Holds are paxlog's own state, folded in
//! index order like the session table and written with it at the trim
//! point, so every node bounds every Trim the same.
//!
//! A hold expires when its owner is gone: the leader that has seen a hold
//! go `lease_ms` of its own clock without a renewal proposes
//! `Command::Release { name, renewed_at: Some(i) }`, which takes effect
//! only if the hold was not renewed since index `i`. A new leader starts
//! every hold's clock afresh, so a hold lives at least `lease_ms` after its
//! last renewal, whatever the leader changes (no clock is compared across
//! nodes).
//!
//! Bounded: at most `HOLDS_MAX` holds of names at most
//! `HOLD_NAME_BYTES_MAX` bytes; leases between `HOLD_LEASE_MS_MIN` and
//! `HOLD_LEASE_MS_MAX`.

use std::collections::BTreeMap;

use paxlog_storage::Index;
use serde::{Deserialize, Serialize};

use super::Command;

pub const HOLDS_MAX: usize = 64;
pub const HOLD_NAME_BYTES_MAX: usize = 64;
pub const HOLD_LEASE_MS_MIN: u64 = 100;
pub const HOLD_LEASE_MS_MAX: u64 = 24 * 3600 * 1000;

/// The request id of the leader's own expiry proposals; nobody awaits them.
pub(crate) const EXPIRE_REQUEST: u64 = u64::MAX - 1;

/// What the leader saw of one hold.
#[derive(Debug)]
pub(crate) struct HoldClock {
    /// The renewal this clock runs since.
    pub(crate) renewed_at: Index,
    /// When this leader first saw that renewal (or took over).
    pub(crate) seen_ms: u64,
    /// When it last proposed the release, if it did.
    pub(crate) proposed_ms: Option<u64>,
}

/// One retention hold, as the log knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// The trim point stays at or below this index.
    pub index: Index,
    pub lease_ms: u64,
    /// The index of the command that set or last renewed it.
    pub renewed_at: Index,
}

/// Every hold, by name.
/// Invariant: at most `HOLDS_MAX`, names at most `HOLD_NAME_BYTES_MAX` bytes.
pub type Holds = BTreeMap<String, Hold>;

/// Why a hold cannot be set, if it cannot.
pub(crate) fn check_hold(holds: &Holds, name: &str, lease_ms: u64) -> Result<(), String> {
    if name.is_empty() || name.len() > HOLD_NAME_BYTES_MAX {
        return Err(format!(
            "a hold's name must have 1 to {HOLD_NAME_BYTES_MAX} bytes"
        ));
    }
    if !(HOLD_LEASE_MS_MIN..=HOLD_LEASE_MS_MAX).contains(&lease_ms) {
        return Err(format!(
            "a hold's lease must be {HOLD_LEASE_MS_MIN} ms to {HOLD_LEASE_MS_MAX} ms"
        ));
    }
    if !holds.contains_key(name) && holds.len() >= HOLDS_MAX {
        return Err(format!(
            "there are already {HOLDS_MAX} holds; release one first"
        ));
    }
    Ok(())
}

/// Folds one chosen command into the holds; `None` for commands that are
/// not holds, else whether it took effect.
pub(crate) fn fold_hold(holds: &mut Holds, at: Index, command: &Command) -> Option<bool> {
    match command {
        Command::Hold {
            name,
            index,
            lease_ms,
        } => {
            if check_hold(holds, name, *lease_ms).is_err() {
                return Some(false);
            }
            let hold = Hold {
                index: *index,
                lease_ms: *lease_ms,
                renewed_at: at,
            };
            holds.insert(name.clone(), hold);
            Some(true)
        }
        Command::Release { name, renewed_at } => {
            let current = holds.get(name).map(|h| h.renewed_at);
            let release = current.is_some() && renewed_at.is_none_or(|r| Some(r) == current);
            if release {
                holds.remove(name);
            }
            Some(release)
        }
        _ => None,
    }
}

/// The hold that bounds trims most, if any.
pub(crate) fn lowest_hold(holds: &Holds) -> Option<(&String, &Hold)> {
    holds.iter().min_by_key(|(_, h)| h.index)
}
