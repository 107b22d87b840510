//! The on-disk layout of format 2 and the migration of format-1 directories.
//!
//! Format-1 directories are built here through RocksDB alone, record by
//! record as a format-1 build wrote them: every record in the default column
//! family, `meta/format` holding 1.

mod common;

use std::path::{Path, PathBuf};

use common::{accepted, identity, raw_open, snapshot, value_of};
use paxlog_storage::record::{self, Meta, ENTRIES_CF, FORMAT_MIGRATED, FORMAT_VERSION, META_CF};
use paxlog_storage::{Ballot, Health, Index, RocksStore, Store, StoreError, WriteBatch};

const INCARNATION: u64 = 77;

fn data_dir(tmp: &tempfile::TempDir) -> PathBuf {
    tmp.path().join("data")
}

/// A format-1 directory of node 1: promised 2.1, indexes 1..=10 accepted at
/// 2.1, chosen up to 5. `damage_promise` flips a payload byte of the promise.
fn format_one(dir: &Path, damage_promise: bool) {
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(true);
    let db = rocksdb::DB::open(&opts, dir).expect("raw open");
    let b = Ballot::new(2, 1);
    let put = |key: &[u8], raw: Vec<u8>| db.put(key, raw).expect("raw put");
    put(
        &Meta::Format.key(),
        record::encode(&Meta::Format.key(), &FORMAT_MIGRATED),
    );
    put(
        &Meta::Identity.key(),
        record::encode(&Meta::Identity.key(), &identity(1)),
    );
    put(
        &Meta::Incarnation.key(),
        record::encode(&Meta::Incarnation.key(), &INCARNATION),
    );
    let mut promise = record::encode(&Meta::Promised.key(), &b);
    if damage_promise {
        promise[record::HEADER_BYTES] ^= 0x40;
    }
    put(&Meta::Promised.key(), promise);
    put(
        &Meta::ChosenIndex.key(),
        record::encode(&Meta::ChosenIndex.key(), &5u64),
    );
    for i in 1..=10 {
        let key = record::accepted_key(i);
        put(&key, record::encode(&key, &accepted(b, &value_of(i))));
    }
    db.flush_wal(true).expect("sync the raw writes");
}

/// Every key of `family`, read through RocksDB alone.
fn keys(dir: &Path, family: &str) -> Vec<Vec<u8>> {
    let db = raw_open(dir);
    let cf = db.cf_handle(family).expect("column family open");
    db.iterator_cf(cf, rocksdb::IteratorMode::Start)
        .map(|item| item.expect("raw iterate").0.to_vec())
        .collect()
}

fn stored_format(dir: &Path) -> u16 {
    let db = raw_open(dir);
    let cf = db.cf_handle(META_CF).expect("meta column family open");
    let key = Meta::Format.key();
    let raw = db
        .get_cf(cf, key)
        .expect("raw get")
        .expect("meta/format in the meta column family");
    record::decode(&key, &raw).expect("format record decodes")
}

/// The state `format_one` wrote, as the store reports and reads it.
fn assert_state_kept(store: &RocksStore) {
    assert_eq!(store.incarnation(), INCARNATION);
    assert_eq!(store.metadata().promised, Ballot::new(2, 1));
    assert_eq!(store.metadata().chosen_index, 5);
    assert_eq!(store.last_index(), 10);
    for i in 1..=10 {
        let entry = store.get(i).expect("read").expect("entry kept");
        assert_eq!(entry.value.as_ref(), value_of(i).as_slice(), "index {i}");
    }
}

/// The layout format 2 promises: the entries' column family holds accepted
/// entries only, so its key space is append-only.
fn assert_layout(dir: &Path) {
    let entries = keys(dir, ENTRIES_CF);
    assert!(
        entries.iter().all(|k| record::accepted_index(k).is_some()),
        "the entries' column family holds {:?}",
        entries
            .iter()
            .filter(|k| record::accepted_index(k).is_none())
            .map(|k| record::key_name(k))
            .collect::<Vec<_>>()
    );
    let meta = keys(dir, META_CF);
    assert!(
        meta.iter().all(|k| record::column_family(k) == META_CF),
        "an entry in the meta column family"
    );
    assert!(meta.contains(&Meta::Promised.key().to_vec()));
    assert_eq!(stored_format(dir), FORMAT_VERSION);
}

#[test]
fn format_one_directory_is_migrated_with_its_state() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = data_dir(&tmp);
    format_one(&dir, false);
    assert!(
        keys(&dir, ENTRIES_CF).contains(&Meta::Promised.key().to_vec()),
        "the fixture is not format 1"
    );

    let store = RocksStore::open(&dir, identity(1)).expect("open format 1");
    assert_eq!(store.health(), Health::Ok);
    assert_state_kept(&store);
    let b = Ballot::new(3, 2);
    store
        .write(&WriteBatch {
            promise: Some(b),
            accepts: vec![(11, accepted(b, &value_of(11)))],
            chosen_index: Some(8),
            ..WriteBatch::default()
        })
        .expect("write after migration");
    drop(store);
    assert_layout(&dir);

    let store = RocksStore::open(&dir, identity(1)).expect("reopen format 2");
    assert_eq!(store.incarnation(), INCARNATION);
    assert_eq!(store.metadata().promised, b);
    assert_eq!(store.metadata().chosen_index, 8);
    assert_eq!(store.last_index(), 11);
}

#[test]
fn migration_cut_off_before_the_records_moved_is_finished() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = data_dir(&tmp);
    format_one(&dir, false);
    // As a crash right after the open created the column family would leave it.
    drop(raw_open(&dir));
    assert!(keys(&dir, META_CF).is_empty());

    let store = RocksStore::open(&dir, identity(1)).expect("open");
    assert_eq!(store.health(), Health::Ok);
    assert_state_kept(&store);
    drop(store);
    assert_layout(&dir);
}

#[test]
fn damaged_record_of_format_one_stays_found_after_migration() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = data_dir(&tmp);
    format_one(&dir, true);
    let store = RocksStore::open(&dir, identity(1)).expect("a suspect store still opens");
    match store.health() {
        Health::Suspect { reason } => assert!(reason.contains("meta/promised"), "{reason}"),
        Health::Ok => panic!("the damaged promise was lost in the migration"),
    }
    drop(store);
    let store = RocksStore::open(&dir, identity(1)).expect("reopen");
    assert!(matches!(store.health(), Health::Suspect { .. }));
}

#[test]
fn format_one_directory_of_another_node_is_refused_unchanged() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = data_dir(&tmp);
    format_one(&dir, false);
    let before = snapshot(&dir);
    assert!(matches!(
        RocksStore::open(&dir, identity(2)),
        Err(StoreError::WrongIdentity {
            found_node: 1,
            expected_node: 2,
            ..
        })
    ));
    assert_eq!(snapshot(&dir), before, "a refused open wrote");
}

#[test]
fn new_directory_keeps_entries_and_scalars_apart() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = data_dir(&tmp);
    let store = RocksStore::open(&dir, identity(1)).expect("open");
    for i in 1..=20 as Index {
        let b = Ballot::new(i, 1);
        store
            .write(&WriteBatch {
                promise: Some(b),
                accepts: vec![(i, accepted(b, &value_of(i)))],
                chosen_index: Some(i - 1),
                trim_index: (i == 15).then_some(3),
                ..WriteBatch::default()
            })
            .expect("write");
    }
    drop(store);
    assert_layout(&dir);
    assert_eq!(keys(&dir, ENTRIES_CF).len(), 17);
}
