//! Linearizable tails without a log write (issue 15, `core/src/read_index.rs`):
//! on an idle cluster a thousand tails, through the leader and through
//! each follower (which asks the leader for its read index), leave every
//! node's log and fsync count as they were, and each answers the last
//! acknowledged index. Seen
//! failing on the Barrier tail it replaces (every tail was a Noop written
//! through the log and fsynced on every node).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::workload::wait_until;
use common::{block_on, http_get, TestCluster, WAIT_MAX};

const TAILS: usize = 1_000;

/// Synced store writes so far on `id` (`paxlog_fsync_duration_seconds` counts every
/// one).
fn fsyncs(cluster: &TestCluster, id: u64) -> u64 {
    let admin = cluster.file.node(id).and_then(|n| n.admin).expect("admin");
    let (code, body) = http_get(admin, "/metrics");
    assert_eq!(code, 200, "{body}");
    body.lines()
        .find_map(|l| l.strip_prefix("paxlog_fsync_duration_seconds_count "))
        .map(|n| n.trim().parse().expect("a count"))
        .unwrap_or(0)
}

/// (fsyncs, last index) of every node.
fn footprint(cluster: &TestCluster) -> BTreeMap<u64, (u64, u64)> {
    cluster
        .statuses()
        .into_iter()
        .map(|(id, s)| {
            let s = s.expect("every node answers");
            (id, (fsyncs(cluster, id), s.last_index))
        })
        .collect()
}

#[test]
fn a_thousand_tails_on_an_idle_cluster_write_nothing() {
    let cluster = TestCluster::start(3);
    let values: Vec<Bytes> = (0..100).map(|i| Bytes::from(format!("v{i}"))).collect();
    let last = cluster.append_chosen(values, 16);
    // Idle: the lazy flush of the chosen index (every 100 ms) is done when
    // no node wrote anything for a few of its intervals.
    let mut seen = footprint(&cluster);
    let mut quiet_since = Instant::now();
    wait_until("every node to stop writing", WAIT_MAX, || {
        let now = footprint(&cluster);
        if now != seen {
            seen = now;
            quiet_since = Instant::now();
        }
        quiet_since.elapsed() >= Duration::from_millis(500)
    });
    let before = seen;
    let nodes: Vec<_> = cluster
        .ids()
        .into_iter()
        .map(|id| (id, cluster.client_for_node(id, Duration::from_secs(10))))
        .collect();
    let started = Instant::now();
    for (id, node) in nodes.iter().cycle().take(TAILS) {
        let (index, _) = block_on(node.tail()).unwrap_or_else(|e| panic!("tail at node {id}: {e}"));
        assert_eq!(
            index, last,
            "node {id}: the tail of an idle log is its last acknowledged index"
        );
    }
    let took = started.elapsed();
    let after = footprint(&cluster);
    println!(
        "{TAILS} tails in {took:?} ({:?} each); (fsyncs, last index) per node before {before:?}, \
         after {after:?}",
        took / TAILS as u32
    );
    assert_eq!(after, before, "tails wrote to the log or synced");
}
