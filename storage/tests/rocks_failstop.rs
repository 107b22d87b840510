//! A real I/O error, not an injected one: with RLIMIT_FSIZE just above the
//! WAL's size, RocksDB's WAL append fails with EFBIG. The store must fail the
//! write, refuse every later one, and a reopen must show nothing of the batch.
//!
//! RLIMIT_FSIZE is per process, so this binary holds exactly one test.

mod common;

use std::path::{Path, PathBuf};

use common::{accepts, identity, wal_files};
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use nix::sys::signal::{SigSet, Signal};
use paxlog_storage::{Ballot, Health, RocksStore, Store, StoreError, WriteBatch};

fn newest_wal(dir: &Path) -> PathBuf {
    wal_files(dir).pop().expect("a WAL file")
}

#[test]
fn wal_write_error_fails_the_store_for_good() {
    // Blocked (not ignored: that needs unsafe), SIGXFSZ stays pending and the
    // write just returns EFBIG. Threads RocksDB starts later inherit the mask.
    let mut xfsz = SigSet::empty();
    xfsz.add(Signal::SIGXFSZ);
    xfsz.thread_block().expect("block SIGXFSZ");

    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("data");
    let store = RocksStore::open(&dir, identity(1)).expect("open");
    let b1 = Ballot::new(1, 1);
    let mut first = accepts(b1, 1..=4);
    first.promise = Some(b1);
    first.chosen_index = Some(4);
    store.write(&first).expect("write before the limit");

    let wal = newest_wal(&dir);
    let wal_bytes = std::fs::metadata(&wal).expect("stat WAL").len();
    let (soft, hard) = getrlimit(Resource::RLIMIT_FSIZE).expect("getrlimit");
    let limit = wal_bytes + 100;
    setrlimit(Resource::RLIMIT_FSIZE, limit, hard).expect("lower RLIMIT_FSIZE");

    let b2 = Ballot::new(2, 1);
    let mut second = accepts(b2, 5..=40);
    second.promise = Some(b2);
    second.chosen_index = Some(40);
    let result = store.write(&second);
    let wal_after = std::fs::metadata(&wal).expect("stat WAL").len();
    let failed_at_limit = matches!(result, Err(StoreError::Io(_)));
    let later = store.write(&WriteBatch::default());
    drop(store);
    setrlimit(Resource::RLIMIT_FSIZE, soft, hard).expect("restore RLIMIT_FSIZE");

    // The fault really happened, where we put it.
    assert!(failed_at_limit, "write past RLIMIT_FSIZE gave {result:?}");
    assert!(
        wal_after <= limit,
        "WAL grew to {wal_after} past the {limit}-byte limit"
    );
    assert!(
        matches!(later, Err(StoreError::Failed)),
        "write after the error gave {later:?}"
    );

    let store = RocksStore::open(&dir, identity(1)).expect("reopen");
    assert_eq!(store.health(), Health::Ok, "a torn tail is not corruption");
    assert_eq!(store.metadata().promised, b1);
    assert_eq!(store.metadata().chosen_index, 4);
    assert_eq!(store.last_index(), 4);
    for i in 5..=40 {
        assert_eq!(
            store.get(i).expect("get"),
            None,
            "index {i} of the failed batch"
        );
    }
    store.write(&second).expect("write after restart");
}
