//! Values at the size limit across a leader crash, on real processes: every
//! Promise and Catchup must fit a frame, or a candidate never gathers its
//! quorum of promises and a lagging node never catches up.

mod common;

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{block_on, runtime, TestCluster};
use futures::StreamExt;

const VALUES: usize = 48;
const WINDOW: usize = 32;
/// Node 3 starts only after the kill: it has all of this to catch up on,
/// and as a candidate its promise from the survivor would carry all of it.
const LAGGING: u64 = 3;

/// A client payload whose encoded `Append` is at most `value_bytes_max`, and
/// within a byte or two of it: the command adds a tag (1 byte), the client
/// id (≤ 10), the seq (≤ 2 here) and the payload's length (3).
fn payload(i: usize) -> Bytes {
    let len = paxlog::core::Limits::default().value_bytes_max - 16;
    let mut v = vec![(i % 251) as u8; len];
    v[..8].copy_from_slice(&(i as u64).to_be_bytes());
    Bytes::from(v)
}

#[test]
fn one_mib_values_survive_a_leader_sigkill_with_the_window_full() {
    let started = Instant::now();
    let mut cluster = TestCluster::new(3);
    cluster.start_node(1);
    cluster.start_node(2);
    let first_leader = cluster.wait_for_leader();
    // An append in flight to the killed leader waits out this timeout (its
    // connection is only found dead by QUIC's idle timeout): it bounds the run.
    let client = cluster.client_with_timeout(Duration::from_secs(10));
    let values: Vec<Bytes> = (0..VALUES).map(payload).collect();
    // One append alone first, so the window goes to the leader it found
    // rather than waiting on node 3, which is not up yet.
    let first = block_on(client.append(values[0].clone()));
    let acked = Arc::new(AtomicUsize::new(usize::from(first.is_ok())));
    let appends = {
        let values = values[1..].to_vec();
        let acked = acked.clone();
        runtime().spawn(async move {
            futures::stream::iter(values)
                .map(|v| {
                    let (client, acked) = (&client, &acked);
                    async move {
                        let r = client.append(v).await;
                        if r.is_ok() {
                            acked.fetch_add(1, Ordering::Relaxed);
                        }
                        r
                    }
                })
                .buffered(WINDOW)
                .collect::<Vec<_>>()
                .await
        })
    };
    // Kill while the window is full: megabytes accepted and not known chosen.
    while acked.load(Ordering::Relaxed) < 8 {
        assert!(
            started.elapsed() < common::WAIT_MAX,
            "no append acknowledged before the kill"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = cluster.kill_node(first_leader);
    assert_eq!(status.signal(), Some(9), "the leader died of the SIGKILL");
    let killed_at = acked.load(Ordering::Relaxed);
    assert!(
        killed_at < VALUES,
        "the kill came mid-way ({killed_at} acked)"
    );
    cluster.start_node(LAGGING);

    let new_leader = cluster.wait_for_leader();
    assert_ne!(new_leader, first_leader);
    eprintln!(
        "{:?}: node {new_leader} leads after the kill of node {first_leader}",
        started.elapsed()
    );
    let mut results = vec![first];
    results.extend(block_on(appends).expect("append task"));
    eprintln!("{:?}: appends done", started.elapsed());
    let mut expected = BTreeMap::new();
    for (value, result) in values.iter().zip(&results) {
        // An error is an append lost with the leader or surely not made:
        // either way not acknowledged, so there is nothing to look for.
        if let Ok(index) = result {
            assert!(
                expected.insert(*index, value).is_none(),
                "index {index} twice"
            );
        }
    }
    assert!(
        expected.len() > killed_at,
        "appends went on after the kill: {} acked in all, {killed_at} before",
        expected.len()
    );
    let last = *expected.keys().next_back().expect("acked");
    cluster.wait_for_chosen(last);
    eprintln!("{:?}: every live node chose {last}", started.elapsed());
    for id in cluster.ids().into_iter().filter(|&id| id != first_leader) {
        let entries = block_on(
            cluster
                .client_for_node(id, Duration::from_secs(20))
                .read(1, Some(last)),
        )
        .expect("read from a live node");
        let found: BTreeMap<u64, &Bytes> = entries.iter().map(|e| (e.index, &e.payload)).collect();
        for (index, value) in &expected {
            assert!(
                found.get(index) == Some(value),
                "node {id} index {index}: the acknowledged value is not there"
            );
        }
    }
    eprintln!(
        "{:?}: every acknowledged value read back",
        started.elapsed()
    );
}
