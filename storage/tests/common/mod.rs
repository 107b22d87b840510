//! Helpers shared by the storage test binaries.
#![allow(dead_code)] // each test binary uses a different subset

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
#[cfg(feature = "rocksdb")]
use paxlog_storage::record::{self, Meta};
#[cfg(feature = "rocksdb")]
use paxlog_storage::RocksStore;
use paxlog_storage::{Accepted, Ballot, Identity, Index, MemStore, Store, WriteBatch};

pub fn identity(node_id: u64) -> Identity {
    Identity {
        cluster_id: "test-cluster".to_string(),
        node_id,
    }
}

pub fn accepted(ballot: Ballot, value: &[u8]) -> Accepted {
    Accepted {
        ballot,
        value: Bytes::copy_from_slice(value),
    }
}

/// A batch accepting `value_of(i)` at every index in `indexes`, at `ballot`.
pub fn accepts(ballot: Ballot, indexes: impl IntoIterator<Item = Index>) -> WriteBatch {
    WriteBatch {
        accepts: indexes
            .into_iter()
            .map(|i| (i, accepted(ballot, &value_of(i))))
            .collect(),
        ..WriteBatch::default()
    }
}

/// The WAL files of the RocksDB directory `dir`, oldest first.
pub fn wal_files(dir: &Path) -> Vec<PathBuf> {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs
}

/// Where `needle` first occurs in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A recognizable value for index `i`, of a size that varies with `i`.
pub fn value_of(i: Index) -> Vec<u8> {
    format!("value-{i}-")
        .repeat((i % 7 + 1) as usize)
        .into_bytes()
}

/// Makes a store, reopens it as after a crash, and can make its voting state
/// suspect, for whichever implementation.
pub trait Harness {
    type S: Store;
    fn new() -> Self;
    fn open(&mut self, identity: &Identity) -> paxlog_storage::Result<Self::S>;
    /// Drops `store` as a crash would (unsynced state lost) and opens again.
    fn reopen(&mut self, store: Self::S, identity: &Identity) -> paxlog_storage::Result<Self::S>;
    fn fail_next_write(store: &Self::S);
    /// Damages the promise record (or marks suspect where there is no disk),
    /// then reopens.
    fn make_suspect(&mut self, store: Self::S, identity: &Identity) -> Self::S;
}

#[derive(Debug, Default)]
pub struct MemHarness {
    store: Option<MemStore>,
}

impl Harness for MemHarness {
    type S = MemStore;

    fn new() -> Self {
        MemHarness::default()
    }

    fn open(&mut self, identity: &Identity) -> paxlog_storage::Result<MemStore> {
        match &self.store {
            Some(store) => store.reopen(identity),
            None => {
                let store = MemStore::new(identity.clone());
                self.store = Some(store.clone());
                Ok(store)
            }
        }
    }

    fn reopen(&mut self, store: MemStore, identity: &Identity) -> paxlog_storage::Result<MemStore> {
        store.reopen(identity)
    }

    fn fail_next_write(store: &MemStore) {
        store.fail_next_write();
    }

    fn make_suspect(&mut self, store: MemStore, identity: &Identity) -> MemStore {
        store.mark_suspect("test: promise record damaged");
        store.reopen(identity).expect("reopen as owner")
    }
}

#[cfg(feature = "rocksdb")]
#[derive(Debug)]
pub struct RocksHarness {
    dir: tempfile::TempDir,
}

#[cfg(feature = "rocksdb")]
impl RocksHarness {
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

#[cfg(feature = "rocksdb")]
impl Harness for RocksHarness {
    type S = RocksStore;

    fn new() -> Self {
        RocksHarness {
            dir: tempfile::tempdir().expect("create temp dir"),
        }
    }

    fn open(&mut self, identity: &Identity) -> paxlog_storage::Result<RocksStore> {
        RocksStore::open(&self.path(), identity.clone())
    }

    fn reopen(
        &mut self,
        store: RocksStore,
        identity: &Identity,
    ) -> paxlog_storage::Result<RocksStore> {
        drop(store);
        RocksStore::open(&self.path(), identity.clone())
    }

    fn fail_next_write(store: &RocksStore) {
        store.fail_next_write();
    }

    fn make_suspect(&mut self, store: RocksStore, identity: &Identity) -> RocksStore {
        drop(store);
        flip_value_byte(&self.path(), &Meta::Promised.key());
        RocksStore::open(&self.path(), identity.clone()).expect("suspect store still opens")
    }
}

/// Flips one payload byte of the value stored under `key`, through a raw
/// RocksDB handle, as bit rot would.
#[cfg(feature = "rocksdb")]
pub fn flip_value_byte(dir: &Path, key: &[u8]) {
    let db = raw_open(dir);
    let mut raw = db
        .get_cf(raw_cf(&db, key), key)
        .expect("raw get")
        .expect("key to damage exists");
    let at = record::HEADER_BYTES.min(raw.len() - 1);
    raw[at] ^= 0x40;
    put_raw(&db, key, &raw);
}

/// Opens a store's directory through RocksDB alone, with the column
/// families of the current format.
#[cfg(feature = "rocksdb")]
pub fn raw_open(dir: &Path) -> rocksdb::DB {
    let mut opts = rocksdb::Options::default();
    opts.create_missing_column_families(true);
    rocksdb::DB::open_cf(&opts, dir, [record::ENTRIES_CF, record::META_CF]).expect("raw open")
}

/// The column family that holds `key` in a directory [`raw_open`] opened.
#[cfg(feature = "rocksdb")]
pub fn raw_cf<'a>(db: &'a rocksdb::DB, key: &[u8]) -> &'a rocksdb::ColumnFamily {
    let name = record::column_family(key);
    db.cf_handle(name)
        .unwrap_or_else(|| panic!("column family {name} open"))
}

/// Writes `raw` under `key`, synced, bypassing the store's encoding.
#[cfg(feature = "rocksdb")]
pub fn put_raw(db: &rocksdb::DB, key: &[u8], raw: &[u8]) {
    let mut opts = rocksdb::WriteOptions::default();
    opts.set_sync(true);
    db.put_cf_opt(raw_cf(db, key), key, raw, &opts)
        .expect("raw put");
}

/// Deletes `key`, synced, as if the record had never been written.
#[cfg(feature = "rocksdb")]
pub fn delete_raw(db: &rocksdb::DB, key: &[u8]) {
    let mut opts = rocksdb::WriteOptions::default();
    opts.set_sync(true);
    db.delete_cf_opt(raw_cf(db, key), key, &opts)
        .expect("raw delete");
}

/// Every file under `dir` with its contents, to prove an open changed nothing.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).expect("read file");
                out.insert(path, bytes);
            }
        }
    }
    out
}

/// The seed for a randomized test: `PAXLOG_SEED` if set, else fresh. Printed
/// so a failure replays.
pub fn seed(test: &str) -> u64 {
    let seed = match std::env::var("PAXLOG_SEED") {
        Ok(s) => s.parse().expect("PAXLOG_SEED is a u64"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    };
    println!("{test}: seed = {seed} (replay with PAXLOG_SEED={seed})");
    seed
}
