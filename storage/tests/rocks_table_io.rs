//! `PAXLOG_TABLE_DIRECT_IO`: the operator's choice of how RocksDB writes its
//! tables, checked in the options RocksDB itself logged at open. One test,
//! because the variable is process-wide and a test binary's tests may share
//! a process.

mod common;

use std::path::Path;

use common::{accepts, identity};
use paxlog_storage::{Ballot, RocksStore, Store};

const ENV: &str = "PAXLOG_TABLE_DIRECT_IO";

/// The value RocksDB logged for the option at its newest open.
fn logged_direct_io(dir: &Path) -> String {
    let log = std::fs::read_to_string(dir.join("LOG")).expect("RocksDB's LOG");
    log.lines()
        .rev()
        .find_map(|l| l.split_once("Options.use_direct_io_for_flush_and_compaction:"))
        .map(|(_, v)| v.trim().to_string())
        .expect("the option in LOG")
}

fn open_write_and_reopen(dir: &Path) {
    let store = RocksStore::open(dir, identity(1)).expect("open");
    store
        .write(&accepts(Ballot::new(1, 1), 1..=100))
        .expect("write");
    drop(store);
    let store = RocksStore::open(dir, identity(1)).expect("reopen");
    assert_eq!(store.last_index(), 100);
}

#[test]
fn tables_use_the_page_cache_unless_direct_io_is_turned_on() {
    let tmp = tempfile::tempdir().expect("temp dir");

    std::env::remove_var(ENV);
    let default = tmp.path().join("default");
    open_write_and_reopen(&default);
    assert_eq!(logged_direct_io(&default), "0", "the default is buffered");

    std::env::set_var(ENV, "on");
    let on = tmp.path().join("on");
    open_write_and_reopen(&on);
    // The temp dir's file system takes O_DIRECT here (ext4 and tmpfs since
    // Linux 6.6); where it does not, the store falls back to buffered.
    assert_eq!(
        logged_direct_io(&on),
        "1",
        "on: tables written with O_DIRECT"
    );

    std::env::set_var(ENV, "sometimes");
    let Err(error) = RocksStore::open(&tmp.path().join("bad"), identity(1)) else {
        panic!("a bad value must refuse the open");
    };
    assert!(error.to_string().contains("must be on or off"), "{error}");
    std::env::remove_var(ENV);
}
