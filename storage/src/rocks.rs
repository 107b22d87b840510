//! The RocksDB [`Store`]: one synced RocksDB write batch per [`WriteBatch`].
//!
//! Layout and record format: see [`crate::record`]. Writes are serialized by
//! a mutex; reads go straight to RocksDB and never wait for a sync. The
//! scalar state is cached and changes only after a write returned `Ok`.

mod open;
mod reclaim;
pub mod wal_scan;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rocksdb::{Direction, ErrorKind, IteratorMode, ReadOptions, WriteOptions, DB};

use crate::record::{self, Meta, FORMAT_MIGRATED, FORMAT_VERSION, META_CF};
use crate::{
    Accepted, Health, Identity, Index, Metadata, ReadLimit, Result, Store, StoreError, WriteBatch,
};

/// A node's durable acceptor state in a RocksDB directory.
pub struct RocksStore {
    db: Arc<DB>,
    /// Compacts trimmed ranges off the write path.
    reclaimer: reclaim::Reclaimer,
    dir: PathBuf,
    identity: Identity,
    /// Invariant: nonzero, and what `meta/incarnation` holds.
    incarnation: u64,
    /// Serializes writers, so the cache follows the order batches hit disk.
    write_lock: Mutex<()>,
    cache: Mutex<Cache>,
    /// Reads at or below it are `Trimmed`. Raised *before* a trimming write
    /// and `metadata().trim_index` only after it, so a reader never mistakes
    /// an index being trimmed for a hole.
    /// Invariant: `trim_floor >= metadata().trim_index`.
    trim_floor: AtomicU64,
    /// Invariant: once set, never cleared; no write reaches RocksDB after it.
    failed: AtomicBool,
    fail_next: AtomicBool,
    /// Off only through [`RocksStore::unsynced`], for the power-loss test
    /// that must show what losing it costs.
    sync: AtomicBool,
    /// RocksDB's sequence number as of the last synced write: what an
    /// unsynced batch's `meta/unsynced` marker records (`rocks/wal_scan.rs`).
    synced_seq: AtomicU64,
}

#[derive(Debug)]
struct Cache {
    meta: Metadata,
    /// Invariant: `last_index >= meta.trim_index`.
    last_index: Index,
    health: Health,
}

impl std::fmt::Debug for RocksStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksStore")
            .field("dir", &self.dir)
            .field("identity", &self.identity)
            .field("incarnation", &self.incarnation)
            .field("failed", &self.failed.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

fn io(e: rocksdb::Error) -> StoreError {
    StoreError::Io(e.into_string())
}

fn read_error(key: &[u8], e: rocksdb::Error) -> StoreError {
    if e.kind() == ErrorKind::Corruption {
        StoreError::Corrupt {
            key: record::key_name(key),
            reason: e.into_string(),
        }
    } else {
        io(e)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section assigns whole values, so a poisoned lock still
    // guards consistent state.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl RocksStore {
    /// Opens (creating if missing) the data directory `dir` for `identity`.
    ///
    /// On first open it records the identity, the format version and a new
    /// random incarnation id (see [`Store::incarnation`]) in one synced write.
    /// A directory of another node or cluster is [`StoreError::WrongIdentity`],
    /// one of an unknown format is [`StoreError::UnknownFormat`], one whose
    /// identity or incarnation record is damaged is [`StoreError::Corrupt`]
    /// naming the key, and in all these cases nothing in the directory changes
    /// (it is examined read-only first).
    ///
    /// A directory of format 1 is migrated to the current format (one synced
    /// write; see [`record`]) before anything else is written to it.
    ///
    /// A directory initialized by a build that predates incarnation ids gets
    /// one created and persisted here: its promises are its own, so this is
    /// the same member it always was.
    ///
    /// Damage to voting state does not fail the open: the store opens with
    /// [`Health::Suspect`], recorded durably (`meta/suspect`) so a restart
    /// cannot forget it, until [`Store::repair`] clears it.
    pub fn open(dir: &Path, identity: Identity) -> Result<RocksStore> {
        let (fresh, format, stored_incarnation) = if open::exists(dir) {
            let probe = open::probe(dir)?;
            if let Some(found) = &probe.identity {
                if *found != identity {
                    return Err(StoreError::WrongIdentity {
                        expected_cluster: identity.cluster_id,
                        expected_node: identity.node_id,
                        found_cluster: found.cluster_id.clone(),
                        found_node: found.node_id,
                    });
                }
            }
            (probe.identity.is_none(), probe.format, probe.incarnation)
        } else {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Io(format!("create {}: {e}", dir.display())))?;
            (true, FORMAT_VERSION, None)
        };
        let (db, recovery) = open::open_rw(dir)?;
        if !fresh && format == FORMAT_MIGRATED {
            open::migrate(&db, dir)?;
        }
        let meta_cf = open::cf(&db, META_CF)?;
        let incarnation = match stored_incarnation {
            Some(incarnation) => incarnation,
            None => {
                let incarnation = open::new_incarnation()?;
                let mut batch = rocksdb::WriteBatch::default();
                if fresh {
                    batch.put_cf(
                        meta_cf,
                        Meta::Format.key(),
                        record::encode(&Meta::Format.key(), &FORMAT_VERSION),
                    );
                    batch.put_cf(
                        meta_cf,
                        Meta::Identity.key(),
                        record::encode(&Meta::Identity.key(), &identity),
                    );
                } else {
                    tracing::info!(dir = %dir.display(), incarnation,
                        "directory predates incarnation ids; recording a new one");
                }
                // In the same sync as the identity when fresh, so this build
                // never leaves a directory that looks like an older build's.
                batch.put_cf(
                    meta_cf,
                    Meta::Incarnation.key(),
                    record::encode(&Meta::Incarnation.key(), &incarnation),
                );
                db.write_opt(batch, &synced()).map_err(io)?;
                incarnation
            }
        };
        let loaded = open::load(&db, recovery)?;
        if let Health::Suspect { reason } = &loaded.health {
            tracing::error!(dir = %dir.display(), %reason, "voting state is suspect");
        }
        if let Some(reason) = &loaded.mark {
            let key = Meta::Suspect.key();
            db.put_cf_opt(meta_cf, key, record::encode(&key, reason), &synced())
                .map_err(io)?;
        }
        // Whatever an open recovered stays on disk: count it as synced.
        let synced_seq = db.latest_sequence_number();
        let db = Arc::new(db);
        let reclaimer = reclaim::Reclaimer::start(db.clone(), loaded.meta.trim_index)
            .map_err(|e| StoreError::Io(format!("start the reclaim thread: {e}")))?;
        Ok(RocksStore {
            db,
            reclaimer,
            dir: dir.to_path_buf(),
            identity,
            incarnation,
            write_lock: Mutex::new(()),
            trim_floor: AtomicU64::new(loaded.meta.trim_index),
            cache: Mutex::new(Cache {
                meta: loaded.meta,
                last_index: loaded.last_index,
                health: loaded.health,
            }),
            failed: AtomicBool::new(false),
            fail_next: AtomicBool::new(false),
            sync: AtomicBool::new(true),
            synced_seq: AtomicU64::new(synced_seq),
        })
    }

    /// Testing only: stop syncing writes, so a power cut loses what the
    /// kernel had not written back. Every guarantee of paxlog rests on the
    /// sync this turns off; the power-loss test uses it to prove that its
    /// cuts really discard unsynced data.
    pub fn unsynced(self) -> RocksStore {
        tracing::error!(dir = %self.dir.display(),
            "writes are NOT synced: acknowledged appends may be lost at a power cut (testing only)");
        self.sync.store(false, Ordering::SeqCst);
        self
    }

    /// Opens an existing directory as whoever it belongs to (for tools).
    pub fn open_existing(dir: &Path) -> Result<RocksStore> {
        if !open::exists(dir) {
            return Err(StoreError::Io(format!(
                "{} holds no paxlog data",
                dir.display()
            )));
        }
        match open::probe(dir)?.identity {
            Some(identity) => RocksStore::open(dir, identity),
            None => Err(StoreError::Io(format!(
                "{} was never initialized",
                dir.display()
            ))),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Waits until the space of the entries up to `trim_index` has been
    /// given back (a compaction covered the trimmed range), at most
    /// `timeout`; whether it has.
    pub fn wait_reclaimed(&self, trim_index: Index, timeout: Duration) -> bool {
        self.reclaimer.wait(trim_index, timeout)
    }

    /// Testing: the next write fails before reaching RocksDB, and the store is
    /// failed from then on (as after a real I/O error).
    pub fn fail_next_write(&self) {
        self.fail_next.store(true, Ordering::SeqCst);
    }

    fn commit(&self, batch: &WriteBatch, repair: bool, sync: bool) -> Result<()> {
        let _writer = lock(&self.write_lock);
        if self.failed.load(Ordering::SeqCst) {
            return Err(StoreError::Failed);
        }
        if self.fail_next.swap(false, Ordering::SeqCst) {
            self.failed.store(true, Ordering::SeqCst);
            return Err(StoreError::Io("injected write failure".to_string()));
        }
        let current = lock(&self.cache).meta;
        let current_trim = current.trim_index;
        let meta_cf = open::cf(&self.db, META_CF)?;
        let sync = sync && self.sync.load(Ordering::SeqCst);
        let mut wb = rocksdb::WriteBatch::default();
        if !sync && !batch.is_empty() {
            // First, so that `wal_scan` finds it without decoding the rest.
            let key = Meta::Unsynced.key();
            let synced = self.synced_seq.load(Ordering::SeqCst);
            wb.put_cf(meta_cf, key, record::encode(&key, &synced));
        }
        if repair {
            // The rebuilt state replaces everything above the chosen index,
            // damaged records included; the puts below come after and win.
            let chosen = batch.chosen_index.unwrap_or(current.chosen_index);
            wb.delete_range(
                record::accepted_key_after(chosen),
                record::accepted_end_key().to_vec(),
            );
        }
        if let Some(promised) = &batch.promise {
            let key = Meta::Promised.key();
            wb.put_cf(meta_cf, key, record::encode(&key, promised));
        }
        for (index, accepted) in &batch.accepts {
            let key = record::accepted_key(*index);
            wb.put(key, record::encode(&key, accepted));
        }
        if let Some(chosen) = &batch.chosen_index {
            let key = Meta::ChosenIndex.key();
            wb.put_cf(meta_cf, key, record::encode(&key, chosen));
        }
        // Trim after the accepts: an accept at a trimmed index is deleted.
        let trim = batch.trim_index.filter(|t| *t > current_trim);
        if let Some(trim) = trim {
            wb.delete_range(
                record::accepted_key(0).to_vec(),
                record::accepted_key_after(trim),
            );
            let key = Meta::TrimIndex.key();
            wb.put_cf(meta_cf, key, record::encode(&key, &trim));
            self.trim_floor.fetch_max(trim, Ordering::SeqCst);
        }
        if let Some(state) = &batch.trim_state {
            let key = Meta::TrimState.key();
            wb.put_cf(meta_cf, key, record::encode(&key, &state.to_vec()));
        }
        if repair {
            wb.delete_cf(meta_cf, Meta::Suspect.key());
        }
        let mut opts = synced();
        opts.set_sync(sync);
        // An empty synced write still syncs the writes before it.
        let written = if wb.is_empty() {
            if sync {
                self.db.flush_wal(true)
            } else {
                Ok(())
            }
        } else {
            self.db.write_opt(wb, &opts)
        };
        if let Err(e) = written {
            self.failed.store(true, Ordering::SeqCst);
            tracing::error!(dir = %self.dir.display(), error = %e, "write failed; store is failed");
            return Err(io(e));
        }
        if sync {
            self.synced_seq
                .store(self.db.latest_sequence_number(), Ordering::SeqCst);
        }
        let mut cache = lock(&self.cache);
        if let Some(promised) = batch.promise {
            cache.meta.promised = promised;
        }
        if let Some(chosen) = batch.chosen_index {
            cache.meta.chosen_index = chosen;
        }
        let accepted_max = batch.accepts.iter().map(|(i, _)| *i).max().unwrap_or(0);
        cache.last_index = cache.last_index.max(accepted_max);
        if let Some(trim) = trim {
            cache.meta.trim_index = trim;
            cache.last_index = cache.last_index.max(trim);
            self.reclaimer.trimmed(trim);
        }
        if repair {
            cache.health = Health::Ok;
            // Entries above the chosen index went; find the new last one.
            // The write is durable already, so a failed lookup must not turn
            // it into an error: fall back to an upper bound.
            let bound = cache.meta.chosen_index.max(accepted_max);
            let last = match open::last_accepted(&self.db) {
                Ok(last) => last.unwrap_or(0),
                Err(_) => bound,
            };
            cache.last_index = last.max(cache.meta.trim_index);
        }
        assert!(cache.last_index >= cache.meta.trim_index);
        assert!(self.trim_floor.load(Ordering::SeqCst) >= cache.meta.trim_index);
        Ok(())
    }

    fn check_trimmed(&self, index: Index) -> Result<()> {
        let trim = self.trim_floor.load(Ordering::SeqCst);
        if trim > 0 && index <= trim {
            return Err(StoreError::Trimmed {
                index,
                first: trim + 1,
            });
        }
        Ok(())
    }
}

fn synced() -> WriteOptions {
    let mut opts = WriteOptions::default();
    opts.set_sync(true);
    opts
}

impl Store for RocksStore {
    fn identity(&self) -> &Identity {
        &self.identity
    }

    fn incarnation(&self) -> u64 {
        self.incarnation
    }

    fn health(&self) -> Health {
        lock(&self.cache).health.clone()
    }

    fn metadata(&self) -> Metadata {
        lock(&self.cache).meta
    }

    fn last_index(&self) -> Index {
        lock(&self.cache).last_index
    }

    fn write(&self, batch: &WriteBatch) -> Result<()> {
        self.commit(batch, false, true)
    }

    fn write_unsynced(&self, batch: &WriteBatch) -> Result<()> {
        self.commit(batch, false, false)
    }

    fn repair(&self, batch: &WriteBatch) -> Result<()> {
        self.commit(batch, true, true)
    }

    fn get(&self, index: Index) -> Result<Option<Accepted>> {
        self.check_trimmed(index)?;
        let key = record::accepted_key(index);
        let raw = self.db.get_pinned(key).map_err(|e| read_error(&key, e))?;
        // Checked again: a trim may have deleted the entry while we read.
        self.check_trimmed(index)?;
        raw.map(|raw| record::decode(&key, &raw)).transpose()
    }

    fn range(&self, from: Index, to: Index, limit: ReadLimit) -> Result<Vec<(Index, Accepted)>> {
        self.check_trimmed(from)?;
        let mut out = Vec::new();
        if from > to {
            return Ok(out);
        }
        let mut read = ReadOptions::default();
        read.set_verify_checksums(true);
        read.set_iterate_upper_bound(record::accepted_key_after(to));
        let start = record::accepted_key(from);
        let mut bytes = 0usize;
        for item in self
            .db
            .iterator_opt(IteratorMode::From(&start, Direction::Forward), read)
        {
            let (key, raw) = item.map_err(|e| read_error(&start, e))?;
            let Some(index) = record::accepted_index(&key) else {
                return Err(StoreError::Corrupt {
                    key: record::key_name(&key),
                    reason: "unexpected key among accepted entries".to_string(),
                });
            };
            let accepted: Accepted = record::decode(&key, &raw)?;
            let value_bytes = accepted.value.len();
            if !out.is_empty()
                && (out.len() >= limit.entries_max
                    || bytes.saturating_add(value_bytes) > limit.bytes_max)
            {
                break;
            }
            bytes = bytes.saturating_add(value_bytes);
            out.push((index, accepted));
        }
        // Checked again: entries trimmed during the scan must not read as holes.
        self.check_trimmed(from)?;
        Ok(out)
    }

    fn trim_state(&self) -> Result<Option<bytes::Bytes>> {
        let state: Option<Vec<u8>> = open::read_meta(&self.db, Meta::TrimState)?;
        Ok(state.map(bytes::Bytes::from))
    }
}
