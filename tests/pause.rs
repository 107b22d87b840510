//! A paused leader (issue 12): SIGSTOP for longer than the election timeout
//! while two writers pipeline appends, then SIGCONT. The others elect a new
//! leader and keep acknowledging; the woken node must acknowledge nothing
//! stale: a writer pinned to it keeps appending through the pause, and
//! whatever it was told is acknowledged must be in the log at that index on
//! every node. Checked with the partition test's history checker (every
//! node's read and raw RocksDB log against each append's outcome).

mod common;

use std::time::Duration;

use common::history::{self, Outcome};
use common::workload::{wait_until, Writer, WriterShape};
use common::{TestCluster, WAIT_MAX};

const MAIN: WriterShape = WriterShape {
    batch: 1024,
    window: 256,
};
const PINNED: WriterShape = WriterShape {
    batch: 1,
    window: 1,
};
const PHASE_ACKS: usize = 5_000;

#[test]
fn a_paused_leader_wakes_without_acknowledging_anything_stale() {
    let mut cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader();
    let writers = [
        Writer::start(
            "a",
            cluster.client_with_timeout(Duration::from_secs(10)),
            MAIN,
        ),
        Writer::start(
            "b",
            cluster.client_with_timeout(Duration::from_secs(10)),
            MAIN,
        ),
    ];
    let pinned = Writer::start(
        "pinned",
        cluster.client_for_node(leader, Duration::from_secs(1)),
        PINNED,
    );
    let acked = || writers.iter().map(|w| w.progress.acked()).sum::<usize>();
    wait_until("appends before the pause", WAIT_MAX, || {
        acked() >= PHASE_ACKS
    });

    cluster.pause_node(leader);
    let new_leader = cluster.wait_for_leader();
    assert_ne!(new_leader, leader, "a stopped node cannot lead");
    let before = acked();
    wait_until("appends through the new leader", WAIT_MAX, || {
        acked() >= before + PHASE_ACKS
    });
    let pinned_before_wake = pinned.progress.acked();
    cluster.resume_node(leader);
    // The woken node hears of the new ballot and follows.
    cluster.wait_for("the woken node to follow the new leader", |statuses| {
        statuses
            .iter()
            .find(|(id, _)| *id == leader)
            .and_then(|(_, s)| s.as_ref())
            .filter(|s| s.leader.is_some_and(|l| l != leader))
            .map(|_| ())
    });
    let before = acked();
    wait_until("appends after the wake", WAIT_MAX, || {
        acked() >= before + PHASE_ACKS
    });

    let pinned = pinned.finish();
    let histories: Vec<_> = writers
        .into_iter()
        .map(Writer::finish)
        .chain([pinned])
        .collect();
    for h in &histories {
        let (ok, surely, maybe) = h.tally();
        println!(
            "writer {}: {ok} acknowledged, {surely} surely failed, {maybe} indeterminate",
            h.name
        );
    }
    let pinned = &histories[2];
    let woken_acks = pinned
        .ops
        .iter()
        .filter(|op| matches!(op.outcome, Outcome::Ok(_)))
        .count()
        .saturating_sub(pinned_before_wake);
    println!(
        "leader {leader} stopped, node {new_leader} led meanwhile; the pinned writer had \
         {pinned_before_wake} acknowledged before the wake and {woken_acks} after"
    );
    for h in &histories[..2] {
        let (ok, _, _) = h.tally();
        assert_eq!(ok, h.ops.len(), "writer {} saw failures", h.name);
    }
    // Every acknowledgement, the pinned writer's included, is checked
    // against every node's read and raw log.
    history::check_cluster(&mut cluster, &histories);
}

/// The real-time check can fail: an append acknowledged before another was
/// invoked, at a higher index.
#[test]
fn the_real_time_check_catches_an_inversion() {
    use common::history::{Op, WriterHistory};
    use std::time::Instant;
    let t0 = Instant::now();
    let at = |ms| t0 + Duration::from_millis(ms);
    let op = |value: &'static str, invoked, completed, index| Op {
        value: bytes::Bytes::from(value),
        invoked: at(invoked),
        completed: at(completed),
        outcome: Outcome::Ok(index),
    };
    let ordered = [WriterHistory {
        name: "w",
        ops: vec![op("a", 0, 10, 5), op("b", 20, 30, 7)],
    }];
    assert_eq!(history::check_real_time(&ordered), 1);
    let inverted = [
        WriterHistory {
            name: "x",
            ops: vec![op("a", 0, 10, 9)],
        },
        WriterHistory {
            name: "y",
            ops: vec![op("b", 20, 30, 7)],
        },
    ];
    let caught = std::panic::catch_unwind(|| history::check_real_time(&inverted));
    assert!(caught.is_err(), "an inversion passed the real-time check");
}
