//! Thrifty Paxos on real processes (`core/src/thrifty.rs`): a leader asks one
//! follower of two to sync the Accepts it answers; the other writes them
//! unsynced, and its answers count toward nothing. When the follower that
//! syncs dies, the chosen index stalls until the leader asks the other to
//! sync again, and every acknowledged append is on both survivors.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::thrifty::who_syncs;
use common::{block_on, sample, TestCluster};

/// What the leader logs when a stall makes every follower sync again.
const STALL_LINE: &str = "every follower syncs again";

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
    const UNSYNCED: &str = "paxlog_unsynced_writes_total";
    let mut cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader();
    cluster.append_chosen(values(0, 100), 8);
    let (eager, lazy) = who_syncs(&cluster, leader);

    let before = [
        metric(&cluster, lazy, UNSYNCED),
        metric(&cluster, eager, UNSYNCED),
    ];
    cluster.append_chosen(values(100, 100), 8);
    let after = [
        metric(&cluster, lazy, UNSYNCED),
        metric(&cluster, eager, UNSYNCED),
    ];
    assert!(
        after[0] > before[0],
        "node {lazy}, not asked to sync, wrote nothing unsynced ({before:?} → {after:?})"
    );
    let stalls_before = cluster.log(leader).matches(STALL_LINE).count();
    assert_eq!(
        who_syncs(&cluster, leader),
        (eager, lazy),
        "a stall changed who syncs before the kill"
    );

    cluster.kill_node(eager);
    // Each needs node `lazy`'s synced accept now.
    let last = cluster.append_chosen(values(200, 100), 8);
    let stalls = cluster.log(leader).matches(STALL_LINE).count();
    assert!(
        stalls > stalls_before,
        "the leader never saw the stall that losing node {eager} made ({stalls_before} → {stalls})"
    );
    cluster.wait_for("the survivor to be asked to sync", |statuses| {
        let (_, status) = statuses.iter().find(|(id, _)| *id == leader)?;
        let peer = status.as_ref()?.peers.iter().find(|p| p.id == lazy)?;
        (peer.syncs == Some(true)).then_some(())
    });

    // The raw logs of both survivors hold the same 300 values.
    let read = |id| {
        block_on(
            cluster
                .client_for_node(id, Duration::from_secs(10))
                .read(1, Some(last)),
        )
        .expect("read")
    };
    let (on_leader, on_lazy) = (read(leader), read(lazy));
    assert_eq!(on_leader, on_lazy, "the survivors' logs differ");
    let mut got: Vec<Bytes> = on_leader.into_iter().map(|e| e.payload).collect();
    let mut want = values(0, 300);
    got.sort();
    want.sort();
    assert_eq!(got, want, "every acknowledged append, once");
}
