//! An in-memory [`Store`] for the deterministic simulation.
//!
//! It models the one thing a simulation needs from a disk: what survives a
//! crash. [`MemStore::stage`] applies a batch so reads see it (like the page
//! cache), [`MemStore::sync`] makes everything staged durable (like fsync), and
//! [`MemStore::crash`] throws away whatever was staged but not synced (like a
//! power loss) and restarts the store. Everything is ordered (`BTreeMap`), so
//! runs are deterministic.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::{
    Accepted, Health, Identity, Index, Metadata, ReadLimit, Result, Store, StoreError, WriteBatch,
};

/// Staged-but-unsynced batches a store holds at most; a driver that stages
/// more without syncing has a bug, and gets an error instead of unbounded memory.
pub const STAGED_BATCHES_MAX: usize = 4096;

/// A cloneable handle: every clone sees the same state.
#[derive(Clone, Debug)]
pub struct MemStore {
    identity: Identity,
    /// Invariant: nonzero.
    incarnation: u64,
    inner: Arc<Mutex<Inner>>,
}

#[derive(Clone, Debug, Default)]
struct Image {
    meta: Metadata,
    accepted: BTreeMap<Index, Accepted>,
    /// Persisted like RocksStore's `meta/suspect`: survives crashes until repaired.
    suspect: Option<String>,
    trim_state: Option<bytes::Bytes>,
}

impl Image {
    fn apply(&mut self, batch: &WriteBatch) {
        if let Some(promised) = batch.promise {
            self.meta.promised = promised;
        }
        for (index, accepted) in &batch.accepts {
            self.accepted.insert(*index, accepted.clone());
        }
        if let Some(chosen) = batch.chosen_index {
            self.meta.chosen_index = chosen;
        }
        if let Some(state) = &batch.trim_state {
            self.trim_state = Some(state.clone());
        }
        // Trim last, as RocksStore does: an accept at a trimmed index is deleted.
        if let Some(trim) = batch.trim_index {
            if trim > self.meta.trim_index {
                self.meta.trim_index = trim;
                self.accepted = match trim.checked_add(1) {
                    Some(first) => self.accepted.split_off(&first),
                    None => BTreeMap::new(),
                };
            }
        }
    }

    /// The rebuilt state of a repair replaces everything above the chosen index.
    fn clear_above_chosen(&mut self, batch: &WriteBatch) {
        let chosen = batch.chosen_index.unwrap_or(self.meta.chosen_index);
        if let Some(first_cleared) = chosen.checked_add(1) {
            self.accepted.split_off(&first_cleared);
        }
    }

    fn last_index(&self) -> Index {
        let last = self.accepted.keys().next_back().copied().unwrap_or(0);
        last.max(self.meta.trim_index)
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// What a crash leaves.
    durable: Image,
    /// What reads see: `durable` plus every staged batch.
    /// Invariant: equals `durable` with `staged` applied in order.
    visible: Image,
    staged: Vec<WriteBatch>,
    /// Invariant: once set, no write or sync succeeds until `crash()`.
    failed: bool,
    fail_next: bool,
}

impl MemStore {
    /// A fresh, empty store owned by `identity`, with an incarnation derived
    /// from the identity alone (no OS randomness, so simulations replay).
    ///
    /// Two stores made by `new` for one identity therefore share their
    /// incarnation: to simulate a wiped directory, make the new store with
    /// [`MemStore::with_incarnation`] and a different value.
    pub fn new(identity: Identity) -> MemStore {
        let incarnation = derived_incarnation(&identity);
        MemStore::with_incarnation(identity, incarnation)
    }

    /// A fresh, empty store owned by `identity` with the given incarnation.
    ///
    /// # Panics
    ///
    /// If `incarnation` is 0, which no directory ever has (a test bug, not
    /// something to paper over by picking another value).
    pub fn with_incarnation(identity: Identity, incarnation: u64) -> MemStore {
        assert_ne!(incarnation, 0, "an incarnation id is never 0");
        MemStore {
            identity,
            incarnation,
            inner: Arc::new(Mutex::new(Inner::default())),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves no half-applied state (every
        // mutation is a whole apply), so a poisoned lock is still consistent.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Applies `batch` so reads see it, without making it durable.
    pub fn stage(&self, batch: &WriteBatch) -> Result<()> {
        let mut inner = self.lock();
        Self::check_writable(&mut inner)?;
        if inner.staged.len() >= STAGED_BATCHES_MAX {
            inner.failed = true;
            return Err(StoreError::Io(format!(
                "more than {STAGED_BATCHES_MAX} batches staged without a sync"
            )));
        }
        inner.visible.apply(batch);
        inner.staged.push(batch.clone());
        Ok(())
    }

    /// Makes every staged batch durable.
    pub fn sync(&self) -> Result<()> {
        let mut inner = self.lock();
        Self::check_writable(&mut inner)?;
        let staged = std::mem::take(&mut inner.staged);
        for batch in &staged {
            inner.durable.apply(batch);
        }
        Ok(())
    }

    /// Simulates a power loss and restart: staged-but-unsynced batches vanish,
    /// a failed store becomes writable again (it is a new process), and an
    /// unrepaired suspect mark stays.
    pub fn crash(&self) {
        self.crash_keeping(|_| false);
    }

    /// [`MemStore::crash`], except that the staged batches for which `keep`
    /// (given each one's position) says so survive, applied in order. A real
    /// WAL keeps some of its unsynced tail: usually a prefix, and a run after
    /// a hole when the kernel wrote a later page back before an earlier one
    /// (RocksDB skips a zeroed block silently).
    pub fn crash_keeping(&self, mut keep: impl FnMut(usize) -> bool) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        for (position, batch) in std::mem::take(&mut inner.staged).iter().enumerate() {
            if keep(position) {
                inner.durable.apply(batch);
            }
        }
        inner.visible = inner.durable.clone();
        inner.failed = false;
        inner.fail_next = false;
    }

    /// Crashes, then reopens as `identity` would: a different owner is
    /// [`StoreError::WrongIdentity`], and the store is left untouched. The
    /// incarnation is kept: it is the same directory.
    pub fn reopen(&self, identity: &Identity) -> Result<MemStore> {
        if *identity != self.identity {
            return Err(StoreError::WrongIdentity {
                expected_cluster: identity.cluster_id.clone(),
                expected_node: identity.node_id,
                found_cluster: self.identity.cluster_id.clone(),
                found_node: self.identity.node_id,
            });
        }
        self.crash();
        Ok(self.clone())
    }

    /// Testing: the next `write`, `stage` or `sync` fails with an I/O error
    /// before changing anything, and the store is failed from then on.
    pub fn fail_next_write(&self) {
        self.lock().fail_next = true;
    }

    /// Testing: marks the voting state suspect, durably, as a corrupt record
    /// found on open would. Cleared only by [`Store::repair`].
    pub fn mark_suspect(&self, reason: impl Into<String>) {
        let reason = reason.into();
        let mut inner = self.lock();
        inner.durable.suspect = Some(reason.clone());
        inner.visible.suspect = Some(reason);
    }

    /// Testing: the entry at `index` is gone, durably, as a lost or
    /// corrupted record would be (no store should ever do this).
    pub fn lose_entry(&self, index: Index) {
        let mut inner = self.lock();
        inner.durable.accepted.remove(&index);
        inner.visible.accepted.remove(&index);
    }

    /// Number of staged-but-unsynced batches.
    pub fn staged_batches(&self) -> usize {
        self.lock().staged.len()
    }

    fn check_writable(inner: &mut Inner) -> Result<()> {
        if inner.failed {
            return Err(StoreError::Failed);
        }
        if inner.fail_next {
            inner.fail_next = false;
            inner.failed = true;
            return Err(StoreError::Io("injected write failure".to_string()));
        }
        Ok(())
    }

    /// Stage + sync under one lock, so no other batch slips between.
    fn commit(&self, batch: &WriteBatch, repair: bool) -> Result<()> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        Self::check_writable(inner)?;
        let staged = std::mem::take(&mut inner.staged);
        for staged_batch in &staged {
            inner.durable.apply(staged_batch);
        }
        for image in [&mut inner.visible, &mut inner.durable] {
            if repair {
                image.clear_above_chosen(batch);
                image.suspect = None;
            }
            image.apply(batch);
        }
        Ok(())
    }

    fn trimmed(meta: &Metadata, index: Index) -> Result<()> {
        if meta.trim_index > 0 && index <= meta.trim_index {
            return Err(StoreError::Trimmed {
                index,
                first: meta.trim_index + 1,
            });
        }
        Ok(())
    }
}

/// FNV-1a over the identity, stable across Rust releases (unlike std's
/// `DefaultHasher`), so a seed replays the same run on any toolchain.
fn derived_incarnation(identity: &Identity) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let len = identity.cluster_id.len() as u64;
    // The length first, so no (cluster, node) pair hashes the bytes of another.
    for bytes in [
        &len.to_le_bytes()[..],
        identity.cluster_id.as_bytes(),
        &identity.node_id.to_le_bytes()[..],
    ] {
        for &b in bytes {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash | 1
}

impl Store for MemStore {
    fn identity(&self) -> &Identity {
        &self.identity
    }

    fn incarnation(&self) -> u64 {
        self.incarnation
    }

    fn health(&self) -> Health {
        match &self.lock().visible.suspect {
            None => Health::Ok,
            Some(reason) => Health::Suspect {
                reason: reason.clone(),
            },
        }
    }

    fn metadata(&self) -> Metadata {
        self.lock().visible.meta
    }

    fn last_index(&self) -> Index {
        self.lock().visible.last_index()
    }

    fn write(&self, batch: &WriteBatch) -> Result<()> {
        self.commit(batch, false)
    }

    fn write_unsynced(&self, batch: &WriteBatch) -> Result<()> {
        self.stage(batch)
    }

    fn repair(&self, batch: &WriteBatch) -> Result<()> {
        self.commit(batch, true)
    }

    fn get(&self, index: Index) -> Result<Option<Accepted>> {
        let inner = self.lock();
        Self::trimmed(&inner.visible.meta, index)?;
        Ok(inner.visible.accepted.get(&index).cloned())
    }

    fn range(&self, from: Index, to: Index, limit: ReadLimit) -> Result<Vec<(Index, Accepted)>> {
        let inner = self.lock();
        Self::trimmed(&inner.visible.meta, from)?;
        let mut out = Vec::new();
        if from > to {
            return Ok(out);
        }
        let mut bytes = 0usize;
        for (index, accepted) in inner.visible.accepted.range(from..=to) {
            if !out.is_empty()
                && (out.len() >= limit.entries_max
                    || bytes.saturating_add(accepted.value.len()) > limit.bytes_max)
            {
                break;
            }
            bytes = bytes.saturating_add(accepted.value.len());
            out.push((*index, accepted.clone()));
        }
        Ok(out)
    }

    fn trim_state(&self) -> Result<Option<bytes::Bytes>> {
        Ok(self.lock().visible.trim_state.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(cluster: &str, node_id: u64) -> Identity {
        Identity {
            cluster_id: cluster.to_string(),
            node_id,
        }
    }

    #[test]
    fn derived_incarnation_is_deterministic_nonzero_and_per_identity() {
        let a = MemStore::new(id("c", 1)).incarnation();
        assert_ne!(a, 0);
        assert_eq!(MemStore::new(id("c", 1)).incarnation(), a);
        assert_ne!(MemStore::new(id("c", 2)).incarnation(), a);
        assert_ne!(MemStore::new(id("d", 1)).incarnation(), a);
    }

    #[test]
    fn with_incarnation_is_kept_across_reopen() {
        let store = MemStore::with_incarnation(id("c", 1), 42);
        assert_eq!(store.incarnation(), 42);
        let store = store.reopen(&id("c", 1)).expect("reopen as owner");
        assert_eq!(store.incarnation(), 42);
    }

    #[test]
    #[should_panic(expected = "never 0")]
    fn with_incarnation_refuses_zero() {
        MemStore::with_incarnation(id("c", 1), 0);
    }
}
