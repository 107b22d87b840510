//! What RocksDB makes of a hole in its WAL: a block of unsynced records
//! lost while a later one reached the disk, as a power cut during write-back
//! can leave. Its reader takes a zeroed record header for preallocated space,
//! skips the rest of that 32 KiB block and reads on, reporting nothing
//! (`log_reader.cc`, `kZeroType` with length 0). The store then opens healthy
//! with a run of records missing and later ones present, so an unsynced batch
//! must never depend on the unsynced batches before it: it holds accepts only
//! (`core/src/io.rs`).

mod common;

use common::{accepted, identity, wal_files};
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
