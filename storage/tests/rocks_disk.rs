//! RocksStore-only behaviour: what is on disk, and what happens when it is
//! damaged.

mod common;

use std::path::{Path, PathBuf};

use common::{
    accepts, delete_raw, find, flip_value_byte, identity, put_raw, raw_cf, raw_open, snapshot,
    value_of, wal_files,
};
use paxlog_storage::record::{self, Meta, FORMAT_VERSION};
use paxlog_storage::{Ballot, Health, ReadLimit, RocksStore, Store, StoreError, WriteBatch};

const NO_LIMIT: ReadLimit = ReadLimit {
    entries_max: usize::MAX,
    bytes_max: usize::MAX,
};

fn data_dir(tmp: &tempfile::TempDir) -> PathBuf {
    tmp.path().join("data")
}

/// A store holding indexes 1..=10 accepted at ballot 2.1, chosen up to 5.
fn populated(dir: &Path) {
    let store = RocksStore::open(dir, identity(1)).expect("open");
    let b = Ballot::new(2, 1);
    let mut batch = accepts(b, 1..=10);
    batch.promise = Some(b);
    batch.chosen_index = Some(5);
    store.write(&batch).expect("write");
}

fn suspect_reason(store: &RocksStore) -> String {
    match store.health() {
        Health::Suspect { reason } => reason,
        Health::Ok => panic!("expected a suspect store"),
    }
}

#[test]
fn creates_missing_directory_and_records_identity() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("a/b/data");
    RocksStore::open(&dir, identity(3)).expect("open");
    let store = RocksStore::open_existing(&dir).expect("open existing");
    assert_eq!(store.identity(), &identity(3));
    assert!(RocksStore::open_existing(&tmp.path().join("nothing")).is_err());
}

#[test]
fn wrong_identity_changes_nothing_on_disk() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = data_dir(&tmp);
    populated(&dir);
    let before = snapshot(&dir);
    assert!(matches!(
        RocksStore::open(&dir, identity(2)),
        Err(StoreError::WrongIdentity {
            found_node: 1,
            expected_node: 2,
            ..
        })
    ));
    assert_eq!(
        snapshot(&dir),
        before,
        "a refused open wrote to the directory"
    );
}

#[test]
fn unknown_format_is_refused_and_changes_nothing() {
    let key = Meta::Format.key();
    // The format named by the record header, and by the payload.
    let mut future_header = record::encode(&key, &FORMAT_VERSION);
    future_header[0..2].copy_from_slice(&99u16.to_be_bytes());
    let future_payload = record::encode(&key, &7u16);
    for (raw, found) in [(future_header, 99), (future_payload, 7)] {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = data_dir(&tmp);
        populated(&dir);
        {
            let db = raw_open(&dir);
            put_raw(&db, &key, &raw);
        }
        let before = snapshot(&dir);
        match RocksStore::open(&dir, identity(1)) {
            Err(StoreError::UnknownFormat {
                found: f,
                supported,
            }) => {
                assert_eq!((f, supported), (found, FORMAT_VERSION));
            }
            other => panic!("expected UnknownFormat, got {other:?}"),
        }
        assert_eq!(
            snapshot(&dir),
            before,
            "a refused open wrote to the directory"
        );
    }
}

#[test]
fn corrupt_accepted_above_chosen_makes_store_suspect() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = data_dir(&tmp);
    populated(&dir);
    flip_value_byte(&dir, &record::accepted_key(8));
    let store = RocksStore::open(&dir, identity(1)).expect("suspect store still opens");
    let reason = suspect_reason(&store);
    assert!(reason.contains("accepted/8"), "{reason}");
    match store.get(8) {
        Err(StoreError::Corrupt { key, .. }) => assert_eq!(key, "accepted/8"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(matches!(
        store.range(6, 10, NO_LIMIT),
        Err(StoreError::Corrupt { .. })
    ));
    assert_eq!(
        store
            .get(7)
            .expect("intact entry")
            .map(|a| a.value.to_vec()),
        Some(value_of(7))
    );
    assert_eq!(store.metadata().chosen_index, 5);

    // The mark persists unchanged across restarts, then repair replaces the
    // damaged state above the chosen index.
    drop(store);
    let store = RocksStore::open(&dir, identity(1)).expect("reopen");
    let again = suspect_reason(&store);
    drop(store);
    let store = RocksStore::open(&dir, identity(1)).expect("reopen");
    assert_eq!(
        suspect_reason(&store),
        again,
        "the reason must not grow on every open"
    );
    let b = Ballot::new(3, 2);
    let mut rebuilt = accepts(b, 6..=7);
    rebuilt.promise = Some(b);
    store.repair(&rebuilt).expect("repair");
    assert_eq!(store.last_index(), 7);
    drop(store);
    let store = RocksStore::open(&dir, identity(1)).expect("reopen");
    assert_eq!(store.health(), Health::Ok);
    assert_eq!(store.get(8).expect("damaged entry is gone"), None);
    assert_eq!(store.get(6).expect("get").map(|a| a.ballot), Some(b));
    assert_eq!(store.last_index(), 7);
}

#[test]
fn corrupt_chosen_entry_is_reported_on_read_only() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = data_dir(&tmp);
    populated(&dir);
    flip_value_byte(&dir, &record::accepted_key(3));
    let store = RocksStore::open(&dir, identity(1)).expect("open");
    // Chosen entries are not voting state: peers can resend them.
    assert_eq!(store.health(), Health::Ok);
    match store.get(3) {
        Err(StoreError::Corrupt { key, reason }) => {
            assert_eq!(key, "accepted/3");
            assert!(reason.contains("checksum"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn corrupt_promise_makes_store_suspect_until_repaired() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = data_dir(&tmp);
    populated(&dir);
    flip_value_byte(&dir, &Meta::Promised.key());
    let store = RocksStore::open(&dir, identity(1)).expect("suspect store still opens");
    assert!(suspect_reason(&store).contains("meta/promised"));
    drop(store);
    let store = RocksStore::open(&dir, identity(1)).expect("reopen");
    assert!(
        suspect_reason(&store).contains("meta/promised"),
        "mark must persist"
    );
    let b = Ballot::new(7, 2);
    store
        .repair(&WriteBatch {
            promise: Some(b),
            ..WriteBatch::default()
        })
        .expect("repair");
    drop(store);
    let store = RocksStore::open(&dir, identity(1)).expect("reopen");
    assert_eq!(store.health(), Health::Ok);
    assert_eq!(store.metadata().promised, b);
}

#[test]
fn corrupt_identity_refuses_to_open() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = data_dir(&tmp);
    populated(&dir);
    flip_value_byte(&dir, &Meta::Identity.key());
    match RocksStore::open(&dir, identity(1)) {
        Err(StoreError::Corrupt { key, .. }) => assert_eq!(key, "meta/identity"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

/// The incarnation record as stored, read without the store (which must be
/// closed).
fn stored_incarnation(dir: &Path) -> Option<u64> {
    let db = rocksdb::DB::open_cf_for_read_only(
        &rocksdb::Options::default(),
        dir,
        [record::ENTRIES_CF, record::META_CF],
        false,
    )
    .expect("raw read-only open");
    let key = Meta::Incarnation.key();
    db.get_cf(raw_cf(&db, &key), key)
        .expect("raw get")
        .map(|raw| record::decode::<u64>(&key, &raw).expect("incarnation record decodes"))
}

#[test]
fn new_directories_get_distinct_incarnations_that_reopen_keeps() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dirs = [tmp.path().join("one"), tmp.path().join("two")];
    let mut first = Vec::new();
    for dir in &dirs {
        let store = RocksStore::open(dir, identity(1)).expect("open");
        assert_ne!(store.incarnation(), 0);
        first.push(store.incarnation());
    }
    assert_ne!(
        first[0], first[1],
        "two new directories share an incarnation"
    );
    for (dir, &incarnation) in dirs.iter().zip(&first) {
        assert_eq!(stored_incarnation(dir), Some(incarnation));
        let store = RocksStore::open(dir, identity(1)).expect("reopen");
        assert_eq!(store.incarnation(), incarnation);
        drop(store);
        let store = RocksStore::open_existing(dir).expect("open existing");
        assert_eq!(store.incarnation(), incarnation);
    }

    // A wiped directory is a new one, whatever node it belongs to.
    std::fs::remove_dir_all(&dirs[0]).expect("wipe");
    let store = RocksStore::open(&dirs[0], identity(1)).expect("open wiped");
    assert_ne!(store.incarnation(), 0);
    assert_ne!(
        store.incarnation(),
        first[0],
        "a wiped directory kept its incarnation"
    );
    assert_eq!(store.metadata(), Default::default());
}

#[test]
fn directory_from_before_incarnations_gets_one_that_then_stays() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = data_dir(&tmp);
    populated(&dir);
    let old = stored_incarnation(&dir).expect("a new directory records one");
    {
        let db = raw_open(&dir);
        delete_raw(&db, &Meta::Incarnation.key());
    }
    assert_eq!(stored_incarnation(&dir), None);

    let store = RocksStore::open(&dir, identity(1)).expect("open older directory");
    let incarnation = store.incarnation();
    assert_ne!(incarnation, 0);
    assert_ne!(incarnation, old, "expected a freshly drawn incarnation");
    // Only the incarnation was added: the voting state is the old one.
    assert_eq!(store.health(), Health::Ok);
    assert_eq!(store.metadata().promised, Ballot::new(2, 1));
    assert_eq!(store.metadata().chosen_index, 5);
    assert_eq!(store.last_index(), 10);
    drop(store);

    assert_eq!(stored_incarnation(&dir), Some(incarnation), "not persisted");
    for _ in 0..2 {
        let store = RocksStore::open(&dir, identity(1)).expect("reopen");
        assert_eq!(store.incarnation(), incarnation);
    }
}

#[test]
fn damaged_incarnation_refuses_to_open_and_changes_nothing() {
    let key = Meta::Incarnation.key();
    // A flipped bit in the stored record (checksum); intact records holding
    // something that is not a u64 (decode) and a 0, which is never written.
    let damage: [(&str, Option<Vec<u8>>); 3] = [
        ("checksum", None),
        (
            "trailing bytes",
            Some(record::encode(&key, &"x".to_string())),
        ),
        ("incarnation 0", Some(record::encode(&key, &0u64))),
    ];
    for (want, replacement) in damage {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = data_dir(&tmp);
        populated(&dir);
        match replacement {
            None => flip_value_byte(&dir, &key),
            Some(raw) => {
                let db = raw_open(&dir);
                put_raw(&db, &key, &raw);
            }
        }
        let before = snapshot(&dir);
        match RocksStore::open(&dir, identity(1)) {
            Err(StoreError::Corrupt { key, reason }) => {
                assert_eq!(key, "meta/incarnation");
                assert!(reason.contains(want), "{want}: {reason}");
            }
            other => panic!("{want}: expected Corrupt, got {other:?}"),
        }
        assert_eq!(snapshot(&dir), before, "{want}: a refused open wrote");
    }
}

/// Writes batches 1..=4 of indexes `10k+1..=10k+10`, one synced write each.
fn write_four_batches(dir: &Path) {
    let store = RocksStore::open(dir, identity(1)).expect("open");
    for k in 0..4u64 {
        let mut batch = accepts(Ballot::new(1, 1), 10 * k + 1..=10 * k + 10);
        batch.chosen_index = Some(10 * k);
        store.write(&batch).expect("write");
    }
}

#[test]
fn torn_wal_tail_is_dropped_and_store_is_healthy() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = data_dir(&tmp);
    write_four_batches(&dir);
    let wal = wal_files(&dir).pop().expect("a WAL file");
    let bytes = std::fs::read(&wal).expect("read WAL");
    // Cut the log inside the last batch's record, as a crash mid-write would.
    let inside_last = find(&bytes, &value_of(35)).expect("last batch is in the WAL");
    assert!(find(&bytes, &value_of(25)).is_some_and(|p| p < inside_last));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&wal)
        .expect("open WAL");
    file.set_len(inside_last as u64).expect("truncate WAL");
    drop(file);

    let store = RocksStore::open(&dir, identity(1)).expect("open after torn tail");
    assert_eq!(store.health(), Health::Ok);
    assert_eq!(store.last_index(), 30);
    assert_eq!(store.metadata().chosen_index, 20);
    assert_eq!(store.get(31).expect("get"), None);
    assert_eq!(store.range(1, 40, NO_LIMIT).expect("range").len(), 30);
}

#[test]
fn wal_corrupt_in_the_middle_opens_suspect() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = data_dir(&tmp);
    write_four_batches(&dir);
    let wal = wal_files(&dir).pop().expect("a WAL file");
    let mut bytes = std::fs::read(&wal).expect("read WAL");
    // Damage the second batch; later records are intact, so this is not a
    // torn tail.
    let at = find(&bytes, &value_of(15)).expect("second batch is in the WAL");
    bytes[at] ^= 0x01;
    std::fs::write(&wal, &bytes).expect("write WAL");

    let store = RocksStore::open(&dir, identity(1)).expect("suspect store still opens");
    let reason = suspect_reason(&store);
    assert!(reason.contains("write-ahead log"), "{reason}");
    // Recovery stopped before the damage: the first batch is all that is left.
    assert_eq!(store.last_index(), 10);
    drop(store);
    let store = RocksStore::open(&dir, identity(1)).expect("reopen");
    assert!(
        suspect_reason(&store).contains("write-ahead log"),
        "mark must persist"
    );
}

/// Bytes of the regular files below `dir`.
fn size_on_disk(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("read dir")
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => size_on_disk(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// A trim gives the trimmed entries' space back: the directory shrinks
/// once the trimmed range is compacted (off the write path), here from
/// about 24 MiB of incompressible entries to a fraction of it.
#[test]
fn a_trim_gives_the_space_back() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = data_dir(&tmp);
    let store = RocksStore::open(&dir, identity(1)).expect("open");
    let b = Ballot::new(1, 1);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut noise = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    };
    const ENTRIES: u64 = 24_000;
    for first in (1..=ENTRIES).step_by(200) {
        let batch = WriteBatch {
            accepts: (first..first + 200)
                .map(|i| (i, common::accepted(b, &noise(1024))))
                .collect(),
            chosen_index: Some(first + 199),
            ..WriteBatch::default()
        };
        store.write(&batch).expect("write");
    }
    let before = size_on_disk(&dir);
    assert!(before > 20 << 20, "{before} bytes written");
    store
        .write(&WriteBatch {
            trim_index: Some(ENTRIES),
            ..WriteBatch::default()
        })
        .expect("trim");
    assert!(
        store.wait_reclaimed(ENTRIES, std::time::Duration::from_secs(60)),
        "the trimmed range was not compacted within 60 s"
    );
    let after = size_on_disk(&dir);
    println!("on disk: {before} bytes before the trim, {after} after");
    assert!(
        after * 4 < before,
        "{before} bytes before the trim, {after} after"
    );
}
