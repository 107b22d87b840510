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
    /// A fresh, empty store owned by `identity`.
    pub fn new(identity: Identity) -> MemStore {
        MemStore {
            identity,
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
        let mut inner = self.lock();
        inner.staged.clear();
        inner.visible = inner.durable.clone();
        inner.failed = false;
        inner.fail_next = false;
    }

    /// Crashes, then reopens as `identity` would: a different owner is
    /// [`StoreError::WrongIdentity`], and the store is left untouched.
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

impl Store for MemStore {
    fn identity(&self) -> &Identity {
        &self.identity
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
