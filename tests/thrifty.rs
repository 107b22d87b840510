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
