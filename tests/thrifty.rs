//! Thrifty Paxos on real processes (`core/src/thrifty.rs`): a leader asks one
//! follower of two to sync the Accepts it answers; the other writes them
//! unsynced, and its answers count toward nothing. When the follower that
//! syncs dies, the chosen index stalls until the leader asks the other to
//! sync again, and every acknowledged append is on both survivors. With
//! five nodes the leader asks two followers of four, and losing both stalls
//! it the same way.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::thrifty::sync_split;
use common::{block_on, sample, TestCluster};

/// What the leader logs when a stall makes every follower sync again.
const STALL_LINE: &str = "every follower syncs again";
const UNSYNCED: &str = "paxlog_unsynced_writes_total";
/// Appends in flight when the torn follower is killed: enough to outlast
/// the wait for its first 50 unsynced batches.
const WRITTEN: u32 = 20_000;
/// Kills of the follower that does not sync, at most, until one leaves a
/// WAL to tear.
const TEAR_TRIES: u32 = 3;

fn metric(cluster: &TestCluster, id: u64, series: &str) -> f64 {
    sample(&cluster.metrics(id), series).unwrap_or(0.0)
}

fn values(from: u32, n: u32) -> Vec<Bytes> {
    (from..from + n)
        .map(|i| Bytes::from(format!("v{i}")))
        .collect()
}

#[test]
fn killing_the_follower_that_syncs_makes_the_other_sync_and_loses_nothing() {
    kill_the_followers_that_sync(3, 1);
}

#[test]
fn in_five_nodes_two_followers_sync_and_killing_both_makes_the_other_two_sync() {
    kill_the_followers_that_sync(5, 2);
}

/// In a cluster of `nodes`, waits for `eager` followers syncing and the
/// rest not, checks the rest write unsynced, SIGKILLs the `eager` ones and
/// appends again: each append then needs the others' synced accepts, so
/// the leader must stall and ask them to sync. The survivors' raw logs
/// must hold the same 300 values.
fn kill_the_followers_that_sync(nodes: u64, eager: usize) {
    let mut cluster = TestCluster::start(nodes);
    let leader = cluster.wait_for_leader();
    cluster.append_chosen(values(0, 100), 8);
    let (eager, lazy) = sync_split(&cluster, leader, eager);
    println!("node {leader} leads; {eager:?} sync, {lazy:?} do not");

    let unsynced = |cluster: &TestCluster| -> Vec<f64> {
        lazy.iter()
            .map(|&id| metric(cluster, id, UNSYNCED))
            .collect()
    };
    let before = unsynced(&cluster);
    cluster.append_chosen(values(100, 100), 8);
    let after = unsynced(&cluster);
    assert!(
        before.iter().zip(&after).all(|(b, a)| a > b),
        "nodes {lazy:?}, not asked to sync, did not all write unsynced ({before:?} → {after:?})"
    );
    let stalls_before = cluster.log(leader).matches(STALL_LINE).count();
    assert_eq!(
        sync_split(&cluster, leader, eager.len()),
        (eager.clone(), lazy.clone()),
        "a stall changed who syncs before the kill"
    );

    for &id in &eager {
        cluster.kill_node(id);
    }
    // Each needs the synced accepts of the nodes that did not sync now.
    let last = cluster.append_chosen(values(200, 100), 8);
    let stalls = cluster.log(leader).matches(STALL_LINE).count();
    assert!(
        stalls > stalls_before,
        "the leader never saw the stall that losing nodes {eager:?} made ({stalls_before} → {stalls})"
    );
    cluster.wait_for("the survivors to be asked to sync", |statuses| {
        let (_, status) = statuses.iter().find(|(id, _)| *id == leader)?;
        let peers = &status.as_ref()?.peers;
        lazy.iter()
            .all(|&id| peers.iter().any(|p| p.id == id && p.syncs == Some(true)))
            .then_some(())
    });

    let survivors: Vec<u64> = std::iter::once(leader).chain(lazy).collect();
    assert_same_logs_holding(&cluster, &survivors, last, 300);
}

/// A power cut may tear a follower's unsynced accepts with later ones
/// intact, which RocksDB calls corruption before the WAL's tail. Made here
/// by hand: the follower that does not sync is SIGKILLed while appends flow,
/// and the checksum of the first batch of its WAL's last run of unsynced
/// batches is broken. It must come back healthy and voting (the writes past
/// the damage were unsynced: `storage/src/rocks/wal_scan.rs`), catch up,
/// and hold every acknowledged append.
#[test]
fn a_follower_whose_unsynced_wal_is_torn_comes_back_voting() {
    let mut cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader();
    cluster.append_chosen(values(0, 100), 8);
    let mut lazy = 0;
    // A kill lands after the last sync by chance: the WAL must end with two
    // unsynced batches or more, and a few tries make that all but certain.
    let mut last = 0;
    let mut torn = None;
    let mut written = 100;
    for _ in 0..TEAR_TRIES {
        lazy = sync_split(&cluster, leader, 1).1[0];
        let first = written;
        written += WRITTEN;
        let before = metric(&cluster, lazy, UNSYNCED);
        let client = cluster.client_with_timeout(Duration::from_secs(30));
        let writer =
            std::thread::spawn(move || block_on(client.append_all(values(first, WRITTEN), 64)));
        cluster.wait_for("the follower to write 50 batches unsynced", |_| {
            (metric(&cluster, lazy, UNSYNCED) >= before + 50.0).then_some(())
        });
        cluster.kill_node(lazy);
        torn = tear_the_last_unsynced_run(&cluster.data_dir(lazy));
        println!("node {leader} leads; node {lazy}, which does not sync, killed: {torn:?}");
        let answers = writer.join().expect("the writer");
        last = answers
            .iter()
            .map(|a| *a.as_ref().expect("every append is acknowledged"))
            .max()
            .expect("answers");
        if torn.is_some() {
            break;
        }
        cluster.start_node(lazy);
    }
    assert!(
        torn.is_some(),
        "none of {TEAR_TRIES} kills left two unsynced batches at the WAL's end"
    );

    cluster.start_node(lazy);
    cluster.wait_for("the torn node to vote again", |statuses| {
        let s = statuses.iter().find(|(id, _)| *id == lazy)?.1.as_ref()?;
        s.not_voting.is_none().then_some(())
    });
    assert!(
        cluster.log(lazy).contains("torn past its last sync"),
        "node {lazy} did not see its WAL torn:\n{}",
        cluster.log(lazy)
    );
    let last = last.max(cluster.append_chosen(values(written, 100), 8));
    cluster.wait_for("every node to learn the last append", |statuses| {
        statuses
            .iter()
            .all(|(_, s)| s.as_ref().is_some_and(|s| s.chosen_index >= last))
            .then_some(())
    });
    assert_same_logs_holding(&cluster, &[leader, lazy], last, written + 100);
}

/// Breaks the checksum of the first batch of the last run of unsynced
/// batches with one marker (no sync after it) in `dir`'s WAL, if the run
/// holds two batches or more; says what it did.
fn tear_the_last_unsynced_run(dir: &std::path::Path) -> Option<String> {
    let batches = paxlog_storage::wal_batches(dir).expect("read the WAL");
    let last_marker = batches.last()?.synced_before?;
    let run = batches
        .iter()
        .rev()
        .take_while(|b| b.synced_before == Some(last_marker))
        .count();
    if run < 2 {
        return None;
    }
    let target = &batches[batches.len() - run];
    let mut bytes = std::fs::read(&target.file).expect("read the WAL file");
    bytes[target.offset] ^= 0x01;
    std::fs::write(&target.file, &bytes).expect("write the WAL file");
    Some(format!(
        "tore the batch at sequence {}, the first of {run} unsynced ones at the end",
        target.seq
    ))
}

/// The raw logs of `nodes` up to `last` are the same, and hold the values
/// `values(0, n)`, each once.
fn assert_same_logs_holding(cluster: &TestCluster, nodes: &[u64], last: u64, n: u32) {
    let read = |id| {
        block_on(
            cluster
                .client_for_node(id, Duration::from_secs(10))
                .read(1, Some(last)),
        )
        .unwrap_or_else(|e| panic!("reading node {id}: {e}"))
    };
    let first = read(nodes[0]);
    for &id in &nodes[1..] {
        assert_eq!(
            read(id),
            first,
            "node {id}'s log differs from node {}'s",
            nodes[0]
        );
    }
    let mut got: Vec<Bytes> = first.into_iter().map(|e| e.payload).collect();
    let mut want = values(0, n);
    got.sort();
    want.sort();
    assert_eq!(got, want, "every acknowledged append, once");
}
