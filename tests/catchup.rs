//! A follower restarted far behind a busy leader catches up while the
//! writers keep the leader at full rate: real `paxlog serve` processes, one
//! SIGKILLed while two writers pipeline appends, restarted once the leader
//! has chosen `BEHIND` entries more. Its chosen index must come within
//! `LAG_MAX` of the leader's (inside the reach of the leader's Accepts)
//! while the writers still run; then every node's read and raw log are
//! checked against the writers' histories. Seen failing before the debug checks were
//! paced by the mirror's size: the follower spent most of its CPU walking
//! the entries it had learned and hovered 130k–850k entries behind for as
//! long as the writers ran (`nemesis_mix`, seed 6803080278781746613, failed
//! its heal this way).

mod common;

use std::time::{Duration, Instant};

use common::history;
use common::workload::{wait_until, Writer, WriterShape};
use common::{observe, TestCluster, WAIT_MAX};

/// Entries the leader chooses while the follower is down: many catch-up
/// replies, and far beyond the reach of its Accepts (65,536).
const BEHIND: u64 = 300_000;
/// The follower counts as caught up this close to the leader.
const LAG_MAX: u64 = 20_000;
const SHAPE: WriterShape = WriterShape {
    batch: 512,
    window: 256,
};
const WRITER_TIMEOUT: Duration = Duration::from_secs(10);

#[test]
fn a_follower_restarted_far_behind_catches_up_under_full_write_load() {
    let mut cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader();
    let victim = cluster
        .ids()
        .into_iter()
        .find(|&id| id != leader)
        .expect("a follower");
    let writers: Vec<Writer> = ["a", "b"]
        .into_iter()
        .map(|name| Writer::start(name, cluster.client_with_timeout(WRITER_TIMEOUT), SHAPE))
        .collect();
    let acked = |writers: &[Writer]| writers.iter().map(|w| w.progress.acked()).sum::<usize>();
    wait_until("the writers' first acknowledgements", WAIT_MAX, || {
        acked(&writers) >= SHAPE.batch
    });

    cluster.kill_node(victim);
    // Waits, not one status round: a round may miss a busy node.
    let leader_chosen = |statuses: &[_]| observe::chosen_in(statuses).get(&leader).copied();
    let killed_at = cluster.wait_for("the leader's chosen index", leader_chosen);
    let behind = cluster.wait_for("the leader to choose BEHIND more entries", |statuses| {
        leader_chosen(statuses).filter(|&chosen| chosen >= killed_at + BEHIND)
    });
    cluster.start_node(victim);
    let restarted = Instant::now();
    let acked_at_restart = acked(&writers);
    let (caught_up, leader_then) =
        cluster.wait_for("the restarted follower to catch up", |statuses| {
            let chosen = observe::chosen_in(statuses);
            let (&mine, &theirs) = (chosen.get(&victim)?, chosen.get(&leader)?);
            (mine + LAG_MAX >= theirs).then_some((mine, theirs))
        });
    let took = restarted.elapsed();
    let acked_meanwhile = acked(&writers) - acked_at_restart;
    let histories: Vec<_> = writers.into_iter().map(Writer::finish).collect();
    println!(
        "node {victim} killed at the leader's index {killed_at}, restarted at {behind}; \
         caught up at {caught_up} (leader {leader_then}) {took:.1?} later, while the writers \
         had {acked_meanwhile} more appends acknowledged"
    );
    // At least a batch, not a rate: a bound on the leader's progress
    // would fail a catch-up for being fast.
    assert!(
        acked_meanwhile >= SHAPE.batch && leader_then > behind,
        "the writers kept appending during the catch-up ({acked_meanwhile} acknowledged, \
         leader {behind} → {leader_then})"
    );
    for h in &histories {
        let (_, surely_failed, indeterminate) = h.tally();
        assert_eq!(
            (surely_failed, indeterminate),
            (0, 0),
            "writer {}: no fault touched the leader",
            h.name
        );
    }
    // What the follower learned is the log: every node's read and raw log
    // hold each acknowledged append once, where it was acknowledged.
    history::check_cluster(&mut cluster, &histories);
}
