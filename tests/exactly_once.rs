//! Exactly-once and one writer's order across leader SIGKILLs, on real
//! `paxlog serve` processes (issue 11, holes 0 and 1; hole 2 on the restarted
//! nodes). Two clients pipeline with a window of 256 while the leader is
//! killed by signal 9, twice, and each killed node restarts. Checked with
//! the shared history checker (`history::check_cluster`):
//! - through every node's read: each acknowledged value exactly once, at its
//!   acknowledged index, in its writer's submission order, the same on every
//!   node (the restarted ones included);
//! - on the raw log: every node's RocksDB directory, read after the nodes are
//!   gone, folded by the checker's own model of sessions (not the core's): an
//!   acknowledged value is *effective* (its session's next seq) exactly at
//!   its acknowledged index, every other copy of it is hidden, and the
//!   nodes' raw logs agree index by index.
//!
//! Seen failing on f8f3c80 (the dedup table of 64 seqs per client): after
//! the kills, values acknowledged at one index also appeared at another in
//! what nodes read back, and one writer's appends came out of order.

mod common;

use std::time::{Duration, Instant};

use common::history;
use common::workload::{wait_until, Writer, WriterShape};
use common::{TestCluster, WAIT_MAX};

const MAIN: WriterShape = WriterShape {
    batch: 1024,
    window: 256,
};
/// Refusals as out of order by the last leader that the test tolerates:
/// about ten per append in flight (two windows of 256).
const OUT_OF_ORDER_MAX: f64 = 5_000.0;
/// Acknowledged appends between two faults.
const PHASE_ACKS: usize = 3000;

fn kill_leader(cluster: &mut TestCluster) -> u64 {
    let leader = cluster.wait_for_leader();
    // Asserts the node died of signal 9.
    cluster.kill_node(leader);
    leader
}

#[test]
fn pipelined_writers_are_exactly_once_and_in_order_across_leader_kills() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
    let mut cluster = TestCluster::start(3);
    let writers: Vec<Writer> = ["a", "b"]
        .into_iter()
        .map(|name| {
            Writer::start(
                name,
                cluster.client_with_timeout(Duration::from_secs(30)),
                MAIN,
            )
        })
        .collect();
    let acked = || writers.iter().map(|w| w.progress.acked()).sum::<usize>();
    let wait_acks = |n: usize| {
        wait_until(&format!("{n} acknowledged appends"), WAIT_MAX, || {
            acked() >= n
        })
    };
    let started = Instant::now();
    let mut phases: Vec<(&str, Duration, usize)> = Vec::new();
    let mut mark = |what| {
        let n = acked();
        phases.push((what, started.elapsed(), n));
        n
    };

    wait_acks(PHASE_ACKS);
    let healthy = mark("healthy");
    let first = kill_leader(&mut cluster);
    let second_leader = cluster.wait_for_leader();
    assert_ne!(second_leader, first, "a killed node cannot lead");
    wait_acks(healthy + PHASE_ACKS);
    let after_first = mark("after the first kill");
    cluster.start_node(first);
    let second = kill_leader(&mut cluster);
    assert_ne!(
        second, first,
        "the restarted node took over before the second kill"
    );
    wait_acks(after_first + PHASE_ACKS);
    let after_second = mark("after the second kill");
    cluster.start_node(second);
    wait_acks(after_second + PHASE_ACKS);
    mark("all restarted");
    let histories: Vec<_> = writers.into_iter().map(Writer::finish).collect();
    // Resends over QUIC follow the same rule as in `embedded_local`: none
    // goes while the seq before it is held. A resend redirected to another
    // node than the seq after it can still be refused, so a new leader
    // refuses a few per append in flight. Seen: 0–658 in 13 runs, 2,060 once
    // in a loaded CI run; the client before that rule: 0, 11,306, 0, 10,600,
    // 34, 491, 308, 2,440.
    let leader = cluster.wait_for_leader();
    let refused =
        common::sample(&cluster.metrics(leader), common::OUT_OF_ORDER_SERIES).unwrap_or(0.0);
    println!("node {leader}, leading since the second kill at the latest, refused {refused} appends as out of order");
    assert!(
        refused < OUT_OF_ORDER_MAX,
        "node {leader} refused {refused} appends as out of order: a resend went while the \
         seq before it was held"
    );
    let mut last = (Duration::ZERO, 0);
    for (what, at, n) in phases {
        let rate = (n - last.1) as f64 / (at - last.0).as_secs_f64();
        println!(
            "{what}: {} acknowledged in {:?} ({rate:.0}/s)",
            n - last.1,
            at - last.0
        );
        last = (at, n);
    }
    for h in &histories {
        let (ok, _, _) = h.tally();
        let failed: Vec<_> = h
            .ops
            .iter()
            .filter(|op| !matches!(op.outcome, history::Outcome::Ok(_)))
            .collect();
        assert_eq!(
            ok,
            h.ops.len(),
            "writer {}: {} appends failed, first: {:?}",
            h.name,
            failed.len(),
            failed.first().map(|op| &op.outcome)
        );
    }
    history::check_cluster(&mut cluster, &histories);
}
