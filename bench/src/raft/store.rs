//! openraft's log store on RocksDB, durable before it says so.
//!
//! `append` writes the entries with a synced RocksDB write (WAL fdatasync)
//! and only then calls openraft's `LogFlushed` callback; the vote is saved
//! with a synced write too. Why not a group-commit thread: openraft 0.9's
//! core awaits each append's callback before it takes its next message, so
//! there is never a second append to group with, and the thread hop only
//! added latency (measured: about half the throughput at 1 and 64 clients).
//! Grouping happens above openraft instead (`batcher.rs`). A failed write is
//! fail-stop: this store refuses every later write.
//!
//! Column family `log`: key = index (u64 big-endian), value = postcard entry.
//! Column family `meta`: the vote, the last purged log id, the snapshot.

// openraft's storage traits return its (large) StorageError by value; the
// helpers here return what those traits need.
#![allow(clippy::result_large_err)]

use std::fmt;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogState, OptionalSend, RaftLogReader, StorageIOError};
use rocksdb::{
    ColumnFamily, ColumnFamilyDescriptor, Direction, IteratorMode, Options, WriteBatch,
    WriteOptions, DB,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::types::{Entry, LogId, StorageError, TypeConfig, Vote};

pub const CF_LOG: &str = "log";
pub const CF_META: &str = "meta";
const KEY_VOTE: &[u8] = b"vote";
const KEY_PURGED: &[u8] = b"purged";

/// Opens (or creates) the node's RocksDB with the store's column families.
pub fn open_db(path: &Path) -> Result<Arc<DB>, rocksdb::Error> {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    // Unsynced writes (truncate, purge) must reach the WAL file at once so
    // that the next synced write covers them (RocksDB's default; stated here).
    opts.set_manual_wal_flush(false);
    let cfs = [CF_LOG, CF_META].map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
    Ok(Arc::new(DB::open_cf_descriptors(&opts, path, cfs)?))
}

pub(crate) fn cf<'a>(db: &'a DB, name: &str) -> Result<&'a ColumnFamily, StorageError> {
    db.cf_handle(name).ok_or_else(|| {
        StorageIOError::read(&io::Error::other(format!("column family {name} missing"))).into()
    })
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StorageError> {
    postcard::to_allocvec(value).map_err(|e| StorageIOError::write(&e).into())
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StorageError> {
    postcard::from_bytes(bytes).map_err(|e| StorageIOError::read(&e).into())
}

/// Reads `key` of the meta column family.
pub(crate) fn get_meta<T: DeserializeOwned>(
    db: &DB,
    key: &[u8],
) -> Result<Option<T>, StorageError> {
    let bytes = db
        .get_cf(cf(db, CF_META)?, key)
        .map_err(|e| StorageIOError::read(&e))?;
    bytes.map(|b| decode(&b)).transpose()
}

/// Writes `key` of the meta column family with a synced write.
pub(crate) async fn put_meta_synced(
    db: &Arc<DB>,
    key: &'static [u8],
    value: Vec<u8>,
) -> Result<(), StorageError> {
    let db = db.clone();
    // An fsync blocks for milliseconds: keep it off the runtime's threads.
    tokio::task::spawn_blocking(move || {
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        db.put_cf_opt(cf(&db, CF_META)?, key, value, &opts)
            .map_err(|e| StorageError::from(StorageIOError::write(&e)))
    })
    .await
    .map_err(|e| StorageIOError::write(&e))?
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn key_index(key: &[u8]) -> Result<u64, StorageError> {
    let bytes: [u8; 8] = key.try_into().map_err(|_| {
        StorageIOError::read_logs(&io::Error::other(format!(
            "log key of {} bytes, expected 8",
            key.len()
        )))
    })?;
    Ok(u64::from_be_bytes(bytes))
}

/// `[start, end)` of a range of indexes; `end` None = to the last entry.
fn index_span<RB: RangeBounds<u64>>(range: &RB) -> (u64, Option<u64>) {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.checked_add(1),
        Bound::Excluded(&e) => Some(e),
        Bound::Unbounded => None,
    };
    (start, end)
}

fn read_entries(db: &DB, start: u64, end: Option<u64>) -> Result<Vec<Entry>, StorageError> {
    let mut entries = Vec::new();
    if end.is_some_and(|e| e <= start) {
        return Ok(entries);
    }
    let from = index_key(start);
    for item in db.iterator_cf(
        cf(db, CF_LOG)?,
        IteratorMode::From(&from, Direction::Forward),
    ) {
        let (key, value) = item.map_err(|e| StorageIOError::read_logs(&e))?;
        let index = key_index(&key)?;
        if end.is_some_and(|e| index >= e) {
            break;
        }
        let entry: Entry = decode(&value)?;
        if entry.log_id.index != index {
            return Err(StorageIOError::read_log_at_index(
                index,
                &io::Error::other(format!("entry under key {index} says {}", entry.log_id)),
            )
            .into());
        }
        entries.push(entry);
    }
    Ok(entries)
}

/// Reads the log for replication; shares the store's database.
#[derive(Clone)]
pub struct LogReader {
    db: Arc<DB>,
}

impl fmt::Debug for LogReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogReader").finish_non_exhaustive()
    }
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + fmt::Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let (start, end) = index_span(&range);
        read_entries(&self.db, start, end)
    }
}

/// The log store handed to openraft.
pub struct LogStore {
    db: Arc<DB>,
    /// Invariant: once set, never cleared, and nothing is written after it
    /// (after a failed fsync the page cache cannot be trusted).
    failed: bool,
}

impl fmt::Debug for LogStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogStore")
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl LogStore {
    pub fn new(db: Arc<DB>) -> Self {
        Self { db, failed: false }
    }

    /// Puts the store in the state a failed write leaves it in.
    #[cfg(test)]
    pub fn fail_for_test(&mut self) {
        self.failed = true;
    }

    /// Writes `batch`; with `sync`, returns only once it (and every earlier
    /// write) is on disk.
    fn write(&mut self, batch: WriteBatch, sync: bool) -> Result<(), StorageError> {
        if self.failed {
            return Err(StorageIOError::write_logs(&io::Error::other(
                "an earlier write failed; the log store is stopped",
            ))
            .into());
        }
        let mut opts = WriteOptions::default();
        opts.set_sync(sync);
        let db = &self.db;
        let result = if sync {
            blocking(|| db.write_opt(batch, &opts))
        } else {
            db.write_opt(batch, &opts)
        };
        result.map_err(|e| {
            self.failed = true;
            tracing::error!(error = %e, "log write failed; the log store stops");
            StorageIOError::write_logs(&e).into()
        })
    }
}

/// Runs a call that blocks on an fsync. On the multi-threaded runtime the
/// worker hands its other tasks away first; the openraft core task waits
/// for the result anyway.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + fmt::Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let (start, end) = index_span(&range);
        read_entries(&self.db, start, end)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> = get_meta(&self.db, KEY_PURGED)?;
        let last = match self
            .db
            .iterator_cf(cf(&self.db, CF_LOG)?, IteratorMode::End)
            .next()
        {
            Some(item) => {
                let (_, value) = item.map_err(|e| StorageIOError::read_logs(&e))?;
                let entry: Entry = decode(&value)?;
                Some(entry.log_id)
            }
            None => None,
        };
        Ok(LogState {
            last_purged_log_id,
            last_log_id: last.or(last_purged_log_id),
        })
    }

    async fn get_log_reader(&mut self) -> LogReader {
        LogReader {
            db: self.db.clone(),
        }
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        batch.put_cf(cf(&self.db, CF_META)?, KEY_VOTE, encode(vote)?);
        self.write(batch, true)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        get_meta(&self.db, KEY_VOTE)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let log = cf(&self.db, CF_LOG)?;
        let mut batch = WriteBatch::default();
        for entry in entries {
            batch.put_cf(log, index_key(entry.log_id.index), encode(&entry)?);
        }
        self.write(batch, true)?;
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(
            cf(&self.db, CF_LOG)?,
            index_key(log_id.index),
            index_key(u64::MAX),
        );
        // The range end is exclusive: delete index u64::MAX too.
        batch.delete_cf(cf(&self.db, CF_LOG)?, index_key(u64::MAX));
        // Unsynced: the next synced append covers it, and a truncate lost
        // in a crash leaves only entries this node never acknowledged.
        self.write(batch, false)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        batch.put_cf(cf(&self.db, CF_META)?, KEY_PURGED, encode(&log_id)?);
        batch.delete_range_cf(
            cf(&self.db, CF_LOG)?,
            index_key(0),
            index_key(log_id.index.saturating_add(1)),
        );
        // Unsynced: a purge lost in a crash only keeps entries the snapshot covers.
        self.write(batch, false)
    }
}
