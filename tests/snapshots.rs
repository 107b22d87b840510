//! Snapshots with real processes (issue 14): a node is SIGKILLed while the
//! others take 100,000 appends, publish a snapshot of the application's
//! state and trim the log behind it. The node restarts and catches up below
//! the trim point; an application rebuilding from index 1 gets the snapshot
//! (fetched by a `paxlog snapshot get` process that is itself SIGKILLed at
//! 5 random points of the transfer, and resumes each time), then every
//! entry after it, once; its state equals the model built from the
//! acknowledgements.
//!
//! The documented long run scales it up (`PAXLOG_SNAPSHOT_VALUES`,
//! `PAXLOG_SNAPSHOT_VALUE_BYTES`, `PAXLOG_SNAPSHOT_KILLS`; see README):
//! 1,000,000 values of 256 bytes make a snapshot of about 260 MiB.

mod common;

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{block_on, exe, runtime, TestCluster, WAIT_MAX};
use futures::StreamExt;
use paxlog::client::Delivery;
use paxlog_storage::Index;
use rand::{Rng, SeedableRng};

/// The receiver's memory bound, whatever the snapshot's size: it streams.
const RECEIVER_RSS_MAX_KIB: u64 = 128 << 10;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The application's state: every effective value in index order, each
/// with its length. What a snapshot at `S` holds is this for indexes `<= S`.
fn state_of<'a>(values: impl Iterator<Item = &'a Bytes>) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        out.extend_from_slice(v);
    }
    out
}

/// Appends `count` values of `bytes` bytes from 8 clients; index → value.
fn append_values(
    cluster: &TestCluster,
    tag: &str,
    count: u64,
    bytes: usize,
) -> BTreeMap<Index, Bytes> {
    const CLIENTS: u64 = 8;
    block_on(async {
        let mut tasks = Vec::new();
        for c in 0..CLIENTS {
            let client = cluster.client_with_timeout(Duration::from_secs(30));
            let tag = tag.to_string();
            tasks.push(runtime().spawn(async move {
                let values: Vec<Bytes> = (c..count)
                    .step_by(CLIENTS as usize)
                    .map(|i| {
                        let mut v = format!("{tag}-{i}-").into_bytes();
                        v.resize(bytes.max(v.len()), b'.');
                        Bytes::from(v)
                    })
                    .collect();
                let results = client.append_all(values.clone(), 64).await;
                values
                    .into_iter()
                    .zip(results)
                    .map(|(v, r)| (r.expect("every append is acknowledged"), v))
                    .collect::<Vec<_>>()
            }));
        }
        let mut out = BTreeMap::new();
        for t in tasks {
            for (index, v) in t.await.expect("client task") {
                assert!(
                    out.insert(index, v).is_none(),
                    "two values acknowledged at {index}"
                );
            }
        }
        out
    })
}

/// Runs `paxlog snapshot get` into `out` and SIGKILLs it once the partial
/// file holds `kill_at` bytes. `Some(bytes held)` if it died of the signal
/// mid-transfer, `None` if it finished first (its output is checked).
fn get_killed_at(cluster: &TestCluster, out: &Path, kill_at: u64) -> Option<u64> {
    let part = paxlog::client::partial_path(out);
    let mut child = Command::new(exe())
        .args(["snapshot", "get", "--out"])
        .arg(out)
        .arg("--cluster")
        .arg(&cluster.cluster_path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn paxlog snapshot get");
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            assert!(status.success(), "paxlog snapshot get failed: {status}");
            return None;
        }
        let held = std::fs::metadata(&part).map_or(0, |m| m.len());
        if held >= kill_at {
            child.kill().expect("SIGKILL");
            let status = child.wait().expect("reap");
            if status.signal() != Some(9) {
                assert!(status.success(), "paxlog snapshot get failed: {status}");
                return None;
            }
            assert!(
                !out.exists(),
                "a killed fetch left {} visible",
                out.display()
            );
            return Some(std::fs::metadata(&part).map_or(0, |m| m.len()));
        }
        assert!(started.elapsed() < WAIT_MAX, "the fetch made no progress");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Runs `paxlog snapshot get` to the end: it resumes at `held` bytes and
/// writes exactly `expected`, and says how much memory it took at most.
fn finish_get(cluster: &TestCluster, out: &Path, held: u64, expected: &[u8]) {
    let (ok, stdout, stderr) =
        cluster.cli(&["snapshot", "get", "--out", common::path_str(out)], None);
    assert!(ok, "the fetch failed: {stderr}");
    assert!(
        stdout.contains(&format!("resumed at byte {held})")),
        "{stdout}"
    );
    println!("{}", stdout.trim());
    let peak_kib: u64 = stdout
        .rsplit("peak memory ")
        .next()
        .and_then(|m| m.trim().strip_suffix("kB"))
        .and_then(|m| m.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak memory in {stdout}"));
    assert!(
        peak_kib < RECEIVER_RSS_MAX_KIB,
        "the receiver peaked at {peak_kib} KiB"
    );
    assert!(
        std::fs::read(out).expect("fetched") == expected,
        "the fetched snapshot differs"
    );
    assert!(
        !paxlog::client::partial_path(out).exists(),
        "the partial file stayed"
    );
}

#[test]
fn a_node_down_while_the_log_is_snapshotted_and_trimmed_rebuilds_equal_state() {
    let values = env_or("PAXLOG_SNAPSHOT_VALUES", 100_000);
    let value_bytes = env_or("PAXLOG_SNAPSHOT_VALUE_BYTES", 256) as usize;
    let kills = env_or("PAXLOG_SNAPSHOT_KILLS", 5);
    let seed = env_or("PAXLOG_SNAPSHOT_SEED", rand::random::<u32>().into());
    println!("seed {seed} (replay: PAXLOG_SNAPSHOT_SEED={seed}); {values} values of {value_bytes} bytes, {kills} kills");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);

    let mut cluster = TestCluster::start(3);
    cluster.wait_for_leader();
    cluster.kill_node(3);
    let mut model = append_values(&cluster, "a", values, value_bytes);
    let last = *model.keys().last().expect("appends");

    // The application on node 1 publishes its state at `last`, checked
    // against a read of node 1 first: a snapshot of what was chosen.
    let node1 = cluster.client_for_node(1, Duration::from_secs(30));
    let read = block_on(node1.read(1, Some(last))).expect("read node 1");
    let read: Vec<(Index, Bytes)> = read.into_iter().map(|e| (e.index, e.payload)).collect();
    let acked: Vec<(Index, Bytes)> = model.iter().map(|(i, v)| (*i, v.clone())).collect();
    assert_eq!(read, acked, "node 1's log is not the acknowledged appends");
    let snapshot = state_of(model.values());
    let client = cluster.client_with_timeout(Duration::from_secs(30));
    let (meta, _) = block_on(client.publish_snapshot(1, last, &snapshot[..])).expect("publish");
    assert_eq!((meta.index, meta.size_bytes), (last, snapshot.len() as u64));
    block_on(client.trim(last)).expect("trim");
    cluster.wait_for("nodes 1 and 2 to trim", |s| {
        s.iter()
            .filter(|(id, _)| *id != 3)
            .all(|(_, st)| st.as_ref().is_some_and(|st| st.trim_index == last))
            .then_some(())
    });
    let after = append_values(&cluster, "b", 1_000, value_bytes);
    let end = *after.keys().last().expect("appends");
    model.extend(after);

    // Node 3 comes back below the trim point and catches up: its raw log
    // above the trim point is the acknowledged one.
    cluster.start_node(3);
    cluster.wait_for("node 3 to catch up past the trim point", |s| {
        s.iter()
            .find(|(id, _)| *id == 3)
            .and_then(|(_, st)| st.as_ref())
            .filter(|st| st.trim_index == last && st.chosen_index >= end)
            .map(|_| ())
    });
    let node3 = cluster.client_for_node(3, Duration::from_secs(30));
    let held = block_on(node3.read(last + 1, Some(end))).expect("read node 3");
    let held: Vec<(Index, Bytes)> = held.into_iter().map(|e| (e.index, e.payload)).collect();
    let expected: Vec<(Index, Bytes)> = model
        .range(last + 1..)
        .map(|(i, v)| (*i, v.clone()))
        .collect();
    assert_eq!(held, expected, "node 3's log after the trim point");

    // The application's receiver is killed at random points of the transfer.
    let out = cluster.dir.path().join("app-snapshot");
    let mut killed_at = Vec::new();
    let mut held_before = 0;
    while (killed_at.len() as u64) < kills {
        if held_before == meta.size_bytes {
            // Killed after the last byte, before the rename: it completes.
            finish_get(&cluster, &out, held_before, &snapshot);
            std::fs::remove_file(&out).expect("remove");
            held_before = 0;
        }
        let kill_at = rng.gen_range(held_before + 1..=meta.size_bytes);
        if let Some(held) = get_killed_at(&cluster, &out, kill_at) {
            assert!(
                held >= held_before,
                "a restart lost fetched bytes ({held} < {held_before})"
            );
            held_before = held;
            killed_at.push(held);
        } else {
            // It finished before the kill: start the fetch over.
            std::fs::remove_file(&out).expect("remove");
            held_before = 0;
        }
    }
    println!(
        "receiver killed with {killed_at:?} bytes of {} held",
        meta.size_bytes
    );
    finish_get(&cluster, &out, held_before, &snapshot);

    // The application rebuilds from index 1: the snapshot, then every entry
    // after it, once, ending equal to the model.
    let rebuilt = block_on(async {
        let mut state = Vec::new();
        let mut next = 1;
        let mut events = Box::pin(client.subscribe(1));
        while next <= end {
            match events.next().await.expect("the stream goes on") {
                Ok(Delivery::Snapshot(m)) => {
                    assert_eq!((m.index, next), (last, 1), "one snapshot, first");
                    state = std::fs::read(&out).expect("the fetched snapshot");
                    next = m.index + 1;
                }
                Ok(Delivery::Entry(e)) => {
                    assert!(e.index >= next, "entry {} again or out of order", e.index);
                    assert_eq!(model.get(&e.index), Some(&e.payload), "index {}", e.index);
                    state.extend(state_of(std::iter::once(&e.payload)));
                    next = e.index + 1;
                }
                Err(e) => panic!("subscription error: {e}"),
            }
        }
        state
    });
    assert!(
        rebuilt == state_of(model.values()),
        "the rebuilt application state differs"
    );
}
