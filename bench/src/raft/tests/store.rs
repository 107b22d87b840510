//! The RocksDB log store and the state machine on a temporary directory.

use std::io::Cursor;

use bytes::Bytes;
use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{
    CommittedLeaderId, EntryPayload, Membership as RaftMembership, RaftLogReader,
    RaftSnapshotBuilder, StorageIOError, StoredMembership,
};
use tempfile::TempDir;

use crate::raft::sm::StateMachine;
use crate::raft::store::{open_db, LogStore};
use crate::raft::types::{Entry, LogId, Payload, StorageError, TypeConfig, Vote};

fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn entry(term: u64, index: u64) -> Entry {
    Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Normal(Payload(vec![
            Bytes::from(format!("payload-{index}")),
            Bytes::from_static(b"second"),
        ])),
    }
}

fn open(dir: &TempDir) -> (LogStore, StateMachine) {
    let db = open_db(dir.path()).expect("open rocksdb");
    let sm = StateMachine::open(db.clone()).expect("open state machine");
    (LogStore::new(db), sm)
}

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError> {
        let dir = tempfile::tempdir().map_err(|e| StorageIOError::write(&e))?;
        let db = open_db(dir.path()).map_err(|e| StorageIOError::write(&e))?;
        let sm = StateMachine::open(db.clone())?;
        Ok((dir, LogStore::new(db), sm))
    }
}

#[test]
fn openraft_storage_suite_passes() {
    Suite::test_all(Builder).expect("openraft's storage test suite");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_truncate_purge_and_vote_survive_reopen() {
    let dir = tempfile::tempdir().expect("temp dir");
    let vote = Vote::new(3, 2);
    {
        let (mut store, _sm) = open(&dir);
        store
            .blocking_append((1..=10).map(|i| entry(1, i)))
            .await
            .expect("append");
        store.save_vote(&vote).await.expect("save vote");
        let read = store.try_get_log_entries(1..=10).await.expect("read");
        assert_eq!(read, (1..=10).map(|i| entry(1, i)).collect::<Vec<_>>());
        store.truncate(log_id(1, 8)).await.expect("truncate");
        store.purge(log_id(1, 3)).await.expect("purge");
        // A new leader's entries after the truncation point.
        store
            .blocking_append([entry(2, 8)])
            .await
            .expect("append after truncate");
    }
    let (mut store, _sm) = open(&dir);
    let state = store.get_log_state().await.expect("log state");
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 3)));
    assert_eq!(state.last_log_id, Some(log_id(2, 8)));
    assert_eq!(store.read_vote().await.expect("read vote"), Some(vote));
    let mut expected: Vec<Entry> = (4..=7).map(|i| entry(1, i)).collect();
    expected.push(entry(2, 8));
    assert_eq!(
        store.try_get_log_entries(..).await.expect("read all"),
        expected
    );
    assert_eq!(
        store.try_get_log_entries(5..7).await.expect("read part"),
        expected[1..3].to_vec()
    );
    assert!(store
        .try_get_log_entries(9..)
        .await
        .expect("read past end")
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purging_everything_keeps_the_last_log_id() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut store, _sm) = open(&dir);
    store
        .blocking_append((1..=4).map(|i| entry(1, i)))
        .await
        .expect("append");
    store.purge(log_id(1, 4)).await.expect("purge all");
    let state = store.get_log_state().await.expect("log state");
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 4)));
    assert_eq!(state.last_log_id, Some(log_id(1, 4)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_store_refuses_every_later_write() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut store, _sm) = open(&dir);
    store
        .blocking_append([entry(1, 1)])
        .await
        .expect("append before the failure");
    store.fail_for_test();
    assert!(store.blocking_append([entry(1, 2)]).await.is_err());
    assert!(store.save_vote(&Vote::new(9, 1)).await.is_err());
    assert!(store.truncate(log_id(1, 1)).await.is_err());
    // Nothing changed.
    let state = store.get_log_state().await.expect("log state");
    assert_eq!(state.last_log_id, Some(log_id(1, 1)));
    assert_eq!(store.read_vote().await.expect("read vote"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_survives_reopen_and_a_bad_one_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let membership = RaftMembership::new(vec![[1u64, 2, 3].into()], None);
    let snapshot_meta = {
        let (_store, mut sm) = open(&dir);
        let mut entries = vec![Entry {
            log_id: log_id(1, 1),
            payload: EntryPayload::Membership(membership.clone()),
        }];
        entries.extend((2..=5).map(|i| entry(1, i)));
        let replies = sm.apply(entries).await.expect("apply");
        assert_eq!(replies, vec![1, 2, 3, 4, 5]);
        assert_eq!(sm.data().applied_payloads, 8);
        let mut builder = sm.get_snapshot_builder().await;
        builder.build_snapshot().await.expect("build snapshot").meta
    };
    let (_store, mut sm) = open(&dir);
    assert_eq!(sm.data().applied_payloads, 8);
    assert_eq!(sm.data().last_applied, Some(log_id(1, 5)));
    assert_eq!(
        sm.data().membership,
        StoredMembership::new(Some(log_id(1, 1)), membership)
    );
    let current = sm
        .get_current_snapshot()
        .await
        .expect("read snapshot")
        .expect("a snapshot exists");
    assert_eq!(current.meta, snapshot_meta);

    let before = sm.data().clone();
    for bad in [vec![0xff; 16], vec![0; 1 << 20]] {
        let result = sm
            .install_snapshot(&snapshot_meta, Box::new(Cursor::new(bad)))
            .await;
        assert!(result.is_err(), "a bad snapshot was installed");
        assert_eq!(sm.data(), &before);
    }
}
