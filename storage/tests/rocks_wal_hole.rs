//! What damage to the unsynced part of RocksDB's WAL costs, as a power cut
//! during write-back can leave it: a thrifty acceptor writes accepts
//! unsynced, so that part can hold many writes.
//!
//! A hole (a block of records never written, a later one written): RocksDB's
//! reader takes a zeroed record header for preallocated space, skips the rest
//! of that 32 KiB block and reads on, reporting nothing (`log_reader.cc`,
//! `kZeroType` with length 0). The store opens healthy with a run of records
//! missing and later ones present, so an unsynced batch must never depend on
//! the unsynced batches before it: it holds accepts only (`core/src/io.rs`).
//!
//! A tear (a record half written, later ones whole): RocksDB reports
//! corruption before the tail. The store opens healthy when every write past
//! the damage was unsynced and came after its last sync
//! (`storage/src/rocks/wal_scan.rs`), and suspect otherwise.

mod common;

use common::{accepted, accepts, find, identity, value_of, wal_files};
use paxlog_storage::{Ballot, Health, Index, RocksStore, Store, WriteBatch};

/// RocksDB's WAL block.
const BLOCK_BYTES: usize = 32 * 1024;
/// Every record's size: it divides a block, so every block starts with a
/// whole record and none is split across two.
const RECORD_BYTES: usize = 256;
/// RocksDB's record type of a record that is whole in its block.
const FULL_TYPE: u8 = 1;

fn one_accept(index: Index, value_bytes: usize) -> WriteBatch {
    WriteBatch {
        accepts: vec![(index, accepted(Ballot::new(1, 1), &vec![b'x'; value_bytes]))],
        ..WriteBatch::default()
    }
}

#[test]
fn a_zeroed_wal_block_is_skipped_and_later_records_are_kept() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("data");
    let store = RocksStore::open(&dir, identity(1)).expect("open");
    let wal = wal_files(&dir).pop().expect("a WAL file");
    let len = || std::fs::metadata(&wal).expect("the WAL's size").len() as usize;
    // A record's bytes beyond its value, measured at the size the others have
    // (the lengths' varints are as long).
    let probe_bytes = 200;
    let before = len();
    store
        .write_unsynced(&one_accept(1, probe_bytes))
        .expect("write");
    let overhead = len() - before - probe_bytes;
    let mut filler = RECORD_BYTES - len() % RECORD_BYTES;
    if filler < overhead + probe_bytes {
        filler += RECORD_BYTES;
    }
    store
        .write_unsynced(&one_accept(2, filler - overhead))
        .expect("write");
    let aligned = len();
    assert_eq!(aligned % RECORD_BYTES, 0, "the filler aligns the records");
    assert!(
        aligned < BLOCK_BYTES,
        "the records start in the first block"
    );
    let first: Index = 3;
    let records = 4 * BLOCK_BYTES / RECORD_BYTES;
    for k in 0..records as Index {
        store
            .write_unsynced(&one_accept(first + k, RECORD_BYTES - overhead))
            .expect("write");
    }
    assert_eq!(len(), aligned + records * RECORD_BYTES);
    drop(store);

    // The hole: the second block, which starts with a whole record, as does
    // the third.
    let mut bytes = std::fs::read(&wal).expect("read WAL");
    let hole = BLOCK_BYTES..2 * BLOCK_BYTES;
    assert_eq!(bytes[hole.start + 6], FULL_TYPE, "the hole starts a record");
    assert_eq!(bytes[hole.end + 6], FULL_TYPE, "a record starts after it");
    bytes[hole.clone()].fill(0);
    std::fs::write(&wal, &bytes).expect("write WAL");

    let store = RocksStore::open(&dir, identity(1)).expect("reopen");
    assert!(
        matches!(store.health(), Health::Ok),
        "the hole was reported: {:?}",
        store.health()
    );
    let starts_at = |i: Index| aligned + (i - first) as usize * RECORD_BYTES;
    let last = first + records as Index - 1;
    let lost: Vec<Index> = (first..=last)
        .filter(|&i| hole.contains(&starts_at(i)))
        .collect();
    assert_eq!(lost.len(), BLOCK_BYTES / RECORD_BYTES);
    for i in 1..=last {
        let held = store.get(i).expect("get").is_some();
        assert_eq!(held, !lost.contains(&i), "index {i}");
    }
    println!(
        "indexes {}..={} lost without a report; {}..={} after them kept",
        lost[0],
        lost[lost.len() - 1],
        lost[lost.len() - 1] + 1,
        last
    );
}

/// Synced indexes 1..=10, then `unsynced` written one by one unsynced, with
/// `middle` between the two halves of them; then the value of index `torn`
/// damaged in the WAL. The store comes with the directory that holds it,
/// removed when dropped, failures included.
fn torn_after(
    unsynced: &[Index],
    middle: Option<WriteBatch>,
    torn: Index,
) -> (tempfile::TempDir, RocksStore) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("data");
    let store = RocksStore::open(&dir, identity(1)).expect("open");
    store
        .write(&accepts(Ballot::new(1, 1), 1..=10))
        .expect("write");
    let (first, second) = unsynced.split_at(unsynced.len() / 2);
    for &i in first {
        store
            .write_unsynced(&accepts(Ballot::new(1, 1), [i]))
            .expect("write");
    }
    if let Some(batch) = middle {
        store.write(&batch).expect("write");
    }
    for &i in second {
        store
            .write_unsynced(&accepts(Ballot::new(1, 1), [i]))
            .expect("write");
    }
    drop(store);
    let wal = wal_files(&dir).pop().expect("a WAL file");
    let mut bytes = std::fs::read(&wal).expect("read WAL");
    let at = find(&bytes, &value_of(torn)).expect("the torn value is in the WAL");
    bytes[at] ^= 0x01;
    std::fs::write(&wal, &bytes).expect("write WAL");
    let store = RocksStore::open(&dir, identity(1)).expect("open after the tear");
    (tmp, store)
}

fn held(store: &RocksStore, indexes: impl IntoIterator<Item = Index>) -> Vec<Index> {
    indexes
        .into_iter()
        .filter(|&i| store.get(i).expect("get").is_some())
        .collect()
}

#[test]
fn a_tear_followed_by_unsynced_writes_only_opens_healthy_without_them() {
    let unsynced: Vec<Index> = (11..=40).collect();
    let (_tmp, store) = torn_after(&unsynced, None, 20);
    assert!(matches!(store.health(), Health::Ok), "{:?}", store.health());
    assert_eq!(held(&store, 1..=40), (1..=19).collect::<Vec<_>>());
    // The recovery is final: a synced write after it, and a reopen, find the
    // same state plus that write, and no damage.
    store
        .write(&accepts(Ballot::new(1, 1), [41]))
        .expect("write");
    let dir = store.dir().to_path_buf();
    drop(store);
    let store = RocksStore::open(&dir, identity(1)).expect("reopen");
    assert!(matches!(store.health(), Health::Ok), "{:?}", store.health());
    assert_eq!(
        held(&store, 1..=41),
        (1..=19).chain([41]).collect::<Vec<_>>()
    );
}

#[test]
fn a_tear_before_a_synced_write_keeps_the_store_suspect() {
    let unsynced: Vec<Index> = (11..=20).collect();
    let (_tmp, store) = torn_after(&unsynced, Some(accepts(Ballot::new(1, 1), 21..=30)), 12);
    let reason = match store.health() {
        Health::Suspect { reason } => reason,
        Health::Ok => panic!("a synced write past the damage was dropped silently"),
    };
    assert!(reason.contains("was synced"), "{reason}");
}

#[test]
fn a_tear_before_a_sync_of_nothing_keeps_the_store_suspect() {
    // An empty synced write syncs the unsynced writes before it: they became
    // durable, so damage to them is not a power cut's doing.
    let unsynced: Vec<Index> = (11..=30).collect();
    let (_tmp, store) = torn_after(&unsynced, Some(WriteBatch::default()), 12);
    let reason = match store.health() {
        Health::Suspect { reason } => reason,
        Health::Ok => panic!("writes a sync covered were dropped silently"),
    };
    assert!(reason.contains("followed a sync"), "{reason}");
}
