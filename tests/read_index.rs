//! Linearizable tails without a log write (issue 15, `core/src/read_index.rs`):
//! on an idle cluster a thousand tails, through the leader and through
//! each follower (which asks the leader for its read index), leave every
//! node's log and fsync count as they were, and each answers the last
//! chosen index. Seen failing on the Barrier tail it replaces (every tail
//! was a Noop written through the log and fsynced on every node).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::workload::wait_until;
use common::{block_on, http_get, TestCluster, WAIT_MAX};
use paxlog::core::Ballot;

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

/// What a node has written: (fsyncs, last index), and its ballot, which moves
/// only with an election.
type Footprint = BTreeMap<u64, ((u64, u64), Ballot)>;

fn footprint(cluster: &TestCluster) -> Footprint {
    cluster
        .statuses()
        .into_iter()
        .map(|(id, s)| {
            let s = s.expect("every node answers");
            (id, ((fsyncs(cluster, id), s.last_index), s.ballot))
        })
        .collect()
}

fn ballots(footprint: &Footprint) -> Vec<Ballot> {
    footprint.values().map(|(_, ballot)| *ballot).collect()
}

/// An election writes (the new leader's no-op, every promise), so an attempt
/// that saw one proves nothing either way and is run again.
const ATTEMPTS_MAX: usize = 3;

#[test]
fn a_thousand_tails_on_an_idle_cluster_write_nothing() {
    let cluster = TestCluster::start(3);
    let values: Vec<Bytes> = (0..100).map(|i| Bytes::from(format!("v{i}"))).collect();
    let acknowledged = cluster.append_chosen(values, 16);
    let nodes: Vec<_> = cluster
        .ids()
        .into_iter()
        .map(|id| (id, cluster.client_for_node(id, Duration::from_secs(10))))
        .collect();
    for attempt in 1..=ATTEMPTS_MAX {
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
        // Not `acknowledged` itself: a leader elected after the appends (a
        // loaded machine can delay heartbeats past the election timeout)
        // chose its own no-op after them (seen once in CI: 104 against 103).
        let last = before
            .values()
            .map(|((_, last), _)| *last)
            .max()
            .expect("nodes");
        assert!(last >= acknowledged, "{before:?} lost index {acknowledged}");
        let started = Instant::now();
        let mut answers = Vec::with_capacity(TAILS);
        for (id, node) in nodes.iter().cycle().take(TAILS) {
            let (index, _) =
                block_on(node.tail()).unwrap_or_else(|e| panic!("tail at node {id}: {e}"));
            answers.push((*id, index));
        }
        let took = started.elapsed();
        let after = footprint(&cluster);
        println!(
            "attempt {attempt}: {TAILS} tails in {took:?} ({:?} each); ((fsyncs, last index), \
             ballot) per node before {before:?}, after {after:?}",
            took / TAILS as u32
        );
        if ballots(&after) != ballots(&before) && attempt < ATTEMPTS_MAX {
            println!("attempt {attempt}: an election ran during the tails; again");
            continue;
        }
        for (id, index) in answers {
            assert_eq!(
                index, last,
                "node {id}: the tail of an idle log is its last chosen index"
            );
        }
        assert_eq!(after, before, "tails wrote to the log or synced");
        return;
    }
}
