//! Integration tests: real `paxlog serve` processes on loopback, QUIC with
//! mutual TLS, RocksDB on disk. See `common` for the harness.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{block_on, http_get, runtime, TestCluster};
use paxlog::client::{Client, ClientError, ClientOptions, Delivery};
use paxlog::proto::Entry;

/// Reads `1..=to` from node `id` alone (any node may serve chosen entries).
fn read_node(cluster: &TestCluster, id: u64, to: u64) -> Vec<Entry> {
    block_on(
        cluster
            .client_for_node(id, Duration::from_secs(10))
            .read(1, Some(to)),
    )
    .expect("read from node")
}

/// The highest chosen index any node reports, once every running node has it.
fn settle(cluster: &TestCluster) -> u64 {
    let chosen = cluster
        .statuses()
        .iter()
        .filter_map(|(_, s)| s.as_ref().map(|s| s.chosen_index))
        .max()
        .unwrap_or(0);
    cluster.wait_for_chosen(chosen);
    chosen
}

/// Every running node holds the same entries, each value exactly once.
fn assert_same_everywhere(cluster: &TestCluster, expected_len: usize) -> Vec<Entry> {
    let to = settle(cluster);
    let mut reference: Option<(u64, Vec<Entry>)> = None;
    for id in cluster
        .ids()
        .into_iter()
        .filter(|id| cluster.is_running(*id))
    {
        let entries = read_node(cluster, id, to);
        assert_eq!(
            entries.len(),
            expected_len,
            "node {id} holds {} entries",
            entries.len()
        );
        let distinct: BTreeSet<_> = entries.iter().map(|e| e.payload.clone()).collect();
        assert_eq!(
            distinct.len(),
            entries.len(),
            "node {id} holds a value twice"
        );
        match &reference {
            None => reference = Some((id, entries)),
            Some((ref_id, ref_entries)) => {
                assert_eq!(
                    &entries, ref_entries,
                    "node {id} differs from node {ref_id}"
                )
            }
        }
    }
    reference.map(|(_, e)| e).unwrap_or_default()
}

#[test]
fn ten_thousand_appends_from_eight_clients_read_back_identically_everywhere() {
    let cluster = TestCluster::start(3);
    const CLIENTS: usize = 8;
    const PER_CLIENT: usize = 1250;
    let acked: Vec<Vec<(Bytes, u64)>> = block_on(async {
        let mut tasks = Vec::new();
        for c in 0..CLIENTS {
            let client = cluster.client();
            tasks.push(runtime().spawn(async move {
                let values: Vec<Bytes> = (0..PER_CLIENT)
                    .map(|i| Bytes::from(format!("c{c}-{i}")))
                    .collect();
                let results = client.append_all(values.clone(), 64).await;
                values
                    .into_iter()
                    .zip(results)
                    .map(|(v, r)| (v, r.expect("every append is acknowledged")))
                    .collect::<Vec<_>>()
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("client task"));
        }
        out
    });
    let by_index: BTreeMap<u64, Bytes> = acked.into_iter().flatten().map(|(v, i)| (i, v)).collect();
    assert_eq!(
        by_index.len(),
        CLIENTS * PER_CLIENT,
        "two values acknowledged at one index"
    );
    let last = *by_index.keys().last().expect("some index");
    cluster.wait_for_chosen(last);
    let entries = assert_same_everywhere(&cluster, CLIENTS * PER_CLIENT);
    for entry in &entries {
        assert_eq!(
            by_index.get(&entry.index),
            Some(&entry.payload),
            "index {}",
            entry.index
        );
    }
}

#[test]
fn leader_sigkill_under_load_loses_nothing_and_the_old_leader_catches_up() {
    let mut cluster = TestCluster::start(3);
    let first_leader = cluster.wait_for_leader();
    let stop = Arc::new(AtomicBool::new(false));
    let acked_count = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for c in 0..4 {
        let client = cluster.client_with_timeout(Duration::from_secs(20));
        let stop = stop.clone();
        let acked_count = acked_count.clone();
        tasks.push(runtime().spawn(async move {
            let mut acked = Vec::new();
            let mut uncertain = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let value = Bytes::from(format!("c{c}-{i}"));
                i += 1;
                match client.append(value.clone()).await {
                    Ok(index) => {
                        acked.push((value, index));
                        acked_count.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) if !e.surely_not_appended() => uncertain.push(value),
                    Err(e) => panic!("append of {value:?} surely failed: {e}"),
                }
            }
            (acked, uncertain)
        }));
    }
    let wait_acks = |n: usize| {
        let started = Instant::now();
        while acked_count.load(Ordering::Relaxed) < n {
            assert!(
                started.elapsed() < common::WAIT_MAX,
                "stuck below {n} acknowledged appends"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    // A subscriber from index 1 through the whole run, over a client that
    // knows every node: it must resume across the kill without a gap or repeat.
    let delivered: Arc<std::sync::Mutex<Vec<Entry>>> = Arc::default();
    let subscriber = {
        let client = cluster.client_with_timeout(Duration::from_secs(20));
        let delivered = delivered.clone();
        runtime().spawn(async move {
            use futures::StreamExt;
            let mut events = Box::pin(client.subscribe(1));
            while let Some(event) = events.next().await {
                // An error reports the break while it resumes on another node.
                if let Ok(Delivery::Entry(entry)) = event {
                    delivered.lock().expect("lock").push(entry);
                }
            }
        })
    };
    wait_acks(300);
    cluster.wait_for("the subscription to deliver", |_| {
        (!delivered.lock().expect("lock").is_empty()).then_some(())
    });
    cluster.kill_node(first_leader);
    let delivered_before_kill = delivered.lock().expect("lock").len();
    let killed_at = acked_count.load(Ordering::Relaxed);
    let new_leader = cluster.wait_for_leader();
    assert_ne!(new_leader, first_leader, "a killed node cannot lead");
    wait_acks(killed_at + 300);
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    let mut uncertain = Vec::new();
    for t in tasks {
        let (a, u) = block_on(t).expect("client task");
        acked.extend(a);
        uncertain.extend(u);
    }
    assert!(
        acked.len() >= killed_at + 300,
        "appends continued after the kill"
    );

    let survivor = cluster
        .ids()
        .into_iter()
        .find(|id| *id != first_leader)
        .expect("survivor");
    let last = acked.iter().map(|(_, i)| *i).max().expect("acked");
    cluster.wait_for_chosen(last);
    let entries = read_node(&cluster, survivor, settle(&cluster));
    let at: BTreeMap<u64, &Bytes> = entries.iter().map(|e| (e.index, &e.payload)).collect();
    for (value, index) in &acked {
        assert_eq!(
            at.get(index),
            Some(&value),
            "acknowledged {value:?} at {index} is lost"
        );
    }
    let distinct: BTreeSet<_> = entries.iter().map(|e| &e.payload).collect();
    assert_eq!(distinct.len(), entries.len(), "a value was appended twice");
    let known: BTreeSet<&Bytes> = acked
        .iter()
        .map(|(v, _)| v)
        .chain(uncertain.iter())
        .collect();
    for e in &entries {
        assert!(
            known.contains(&e.payload),
            "{:?} was never appended",
            e.payload
        );
    }

    let last_entry = entries.last().expect("entries").index;
    cluster.wait_for("the subscription to reach the end", |_| {
        let got = delivered.lock().expect("lock");
        got.last()
            .is_some_and(|e| e.index >= last_entry)
            .then_some(())
    });
    subscriber.abort();
    let got = delivered.lock().expect("lock").clone();
    assert!(
        delivered_before_kill > 0,
        "the subscription did not start before the kill"
    );
    assert!(
        got.len() > delivered_before_kill,
        "the subscription did not resume after the kill"
    );
    assert_eq!(
        got[..entries.len()],
        entries[..],
        "the subscription skipped, reordered or repeated an entry"
    );

    cluster.start_node(first_leader);
    cluster.wait_for_chosen(last);
    assert_same_everywhere(&cluster, entries.len());
}

/// The log lines of node `from`'s peer link to `to` ending, oldest first.
fn link_ends(cluster: &TestCluster, from: u64, to: u64) -> Vec<String> {
    let link = format!("peer_link{{node={from} peer={to}}}");
    cluster
        .log(from)
        .lines()
        .filter(|l| l.contains(&link) && l.contains("peer link disconnected"))
        .map(str::to_owned)
        .collect()
}

/// A follower killed by signal 9 and restarted at once is reached again by
/// a stateless reset, not by waiting out the QUIC idle timeout. Its peers'
/// connections to its previous life saw no close; the restarted node answers
/// their next packet with a reset they accept (the reset key is derived from
/// the node key, so it survives the restart) and they redial. Before that,
/// each peer sent into a dead connection until the idle timeout ended it:
/// the leader's Accepts to the follower vanished for 3 s.
#[test]
fn a_follower_killed_and_restarted_at_once_is_reached_through_a_stateless_reset() {
    let mut cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader();
    let follower = cluster
        .ids()
        .into_iter()
        .find(|&id| id != leader)
        .expect("a follower");
    let values = |from: u32| {
        (from..from + 20)
            .map(|i| Bytes::from(format!("v{i}")))
            .collect()
    };
    cluster.append_chosen(values(0), 4);

    // How each peer's link to the follower ended is in that peer's log: the
    // lines of that link's ends, up to now and after the restart.
    let peers: Vec<u64> = cluster
        .ids()
        .into_iter()
        .filter(|&id| id != follower)
        .collect();
    let ended_before: Vec<usize> = peers
        .iter()
        .map(|&p| link_ends(&cluster, p, follower).len())
        .collect();

    cluster.kill_node(follower);
    cluster.start_node(follower);
    cluster.append_chosen(values(20), 4);
    assert_same_everywhere(&cluster, 40);

    for (&peer, &before) in peers.iter().zip(&ended_before) {
        common::workload::wait_until(
            &format!("node {peer}'s link to node {follower} to end"),
            common::WAIT_MAX,
            || link_ends(&cluster, peer, follower).len() > before,
        );
        let line = &link_ends(&cluster, peer, follower)[before];
        assert!(
            line.ends_with("reason=reset by peer"),
            "node {peer}'s link to the killed node {follower} was not reset: {line}"
        );
    }
}

#[test]
fn full_cluster_restart_keeps_the_log() {
    let mut cluster = TestCluster::start(3);
    let client = cluster.client();
    let values: Vec<Bytes> = (0..500).map(|i| Bytes::from(format!("v{i}"))).collect();
    let indexes: Vec<u64> = block_on(client.append_all(values.clone(), 32))
        .into_iter()
        .map(|r| r.expect("append"))
        .collect();
    drop(client);
    let last = *indexes.iter().max().expect("indexes");
    cluster.wait_for_chosen(last);
    for id in cluster.ids() {
        cluster.kill_node(id);
    }
    for id in cluster.ids() {
        cluster.start_node(id);
    }
    cluster.wait_for_leader();
    cluster.wait_for_chosen(last);
    let entries = assert_same_everywhere(&cluster, values.len());
    // Pipelined appends may be chosen out of input order; each keeps its index.
    let expected: BTreeMap<u64, &Bytes> = indexes.iter().copied().zip(&values).collect();
    let found: BTreeMap<u64, &Bytes> = entries.iter().map(|e| (e.index, &e.payload)).collect();
    assert_eq!(found, expected);
    // The restarted cluster still takes appends, after what it had.
    let next = block_on(
        cluster
            .client()
            .append(Bytes::from_static(b"after restart")),
    )
    .expect("append");
    assert!(next > last);
}

#[test]
fn a_lone_node_refuses_appends_with_no_quorum() {
    let mut cluster = TestCluster::new(3);
    cluster.start_node(1);
    cluster.wait_for("node 1 to answer", |s| {
        s.iter()
            .any(|(id, status)| *id == 1 && status.is_some())
            .then_some(())
    });
    let (ok, stdout, stderr) = cluster.cli(&["append", "--timeout", "3s", "alone"], None);
    assert!(!ok, "a lone node acknowledged an append: {stdout}");
    assert!(stderr.contains("no quorum"), "stderr: {stderr}");
    let statuses = cluster.statuses();
    let me = statuses
        .iter()
        .find(|(id, _)| *id == 1)
        .and_then(|(_, s)| s.clone())
        .expect("status");
    assert_ne!(me.role, paxlog::core::Role::Leader);
    assert_eq!(me.chosen_index, 0);
}

#[test]
fn a_leader_cut_off_from_its_quorum_stops_acknowledging() {
    let mut cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader();
    block_on(cluster.client().append(Bytes::from_static(b"before"))).expect("append");
    for id in cluster.ids().into_iter().filter(|id| *id != leader) {
        cluster.kill_node(id);
    }
    // Invoked after both followers are reaped: no quorum can accept it, so
    // any acknowledgement at all would be a lie, however soon it came.
    let client = cluster.client_for_node(leader, Duration::from_secs(5));
    for attempt in 0..3 {
        let value = Bytes::from(format!("after-{attempt}"));
        match block_on(client.append(value)) {
            Ok(index) => panic!("acknowledged index {index} with both followers dead"),
            Err(e) => assert!(
                e.surely_not_appended() || matches!(e, ClientError::Indeterminate(_)),
                "{e}"
            ),
        }
    }
    cluster.wait_for("the old leader to step down", |s| {
        s.iter()
            .find(|(id, _)| *id == leader)
            .and_then(|(_, s)| s.as_ref())
            .filter(|s| s.role != paxlog::core::Role::Leader)
            .map(|_| ())
    });
}

#[test]
fn a_client_with_a_strangers_certificate_is_refused() {
    let cluster = TestCluster::start(3);
    let stranger = tempfile::tempdir().expect("tempdir");
    paxlog_net::generate_certs(stranger.path(), &[1], &["mallory".to_string()]).expect("certs");
    // Mallory trusts the cluster's CA, so the handshake gets as far as the
    // node judging her certificate, which another CA signed.
    let tls = paxlog_net::ClientTls::from_files(
        &cluster.dir.path().join("certs").join("ca.pem"),
        &stranger.path().join("client-mallory.pem"),
        &stranger.path().join("client-mallory.key"),
    )
    .expect("tls");
    let _runtime = runtime().enter();
    let client = Client::new(
        tls,
        ClientOptions {
            nodes: cluster.file.addrs(),
            timeout: Duration::from_secs(3),
        },
    )
    .expect("client");
    let result = block_on(client.append(Bytes::from_static(b"forged")));
    let err = result.expect_err("a stranger's append was acknowledged");
    // The node's own refusal, told apart from a lost connection: a TLS
    // alert, final and surely not appended.
    match &err {
        ClientError::Tls(why) if why.contains("refused the handshake") => {}
        other => panic!("expected the node's TLS refusal, got: {other}"),
    }
    assert!(err.surely_not_appended(), "{err}");
    // And nothing it sent reached the log.
    assert!(block_on(cluster.client().read(1, None))
        .expect("read")
        .is_empty());
}

#[test]
fn the_cli_appends_reads_tails_and_reports_status() {
    let cluster = TestCluster::start(3);
    let (ok, stdout, stderr) = cluster.cli(&["append"], Some("alpha\nbeta\ngamma\n"));
    assert!(ok, "append failed: {stderr}");
    let indexes: Vec<u64> = stdout
        .lines()
        .map(|l| l.parse().expect("an index per line"))
        .collect();
    assert_eq!(indexes.len(), 3);
    // Output lines follow input order; pipelining may choose them in another order.
    let mut expected: Vec<(u64, &str)> = indexes
        .iter()
        .copied()
        .zip(["alpha", "beta", "gamma"])
        .collect();
    expected.sort();
    let expected: String = expected
        .iter()
        .map(|(i, v)| format!("{i}\t{v}\n"))
        .collect();

    let (ok, stdout, stderr) = cluster.cli(&["read", "--from", "1"], None);
    assert!(ok, "read failed: {stderr}");
    assert_eq!(stdout, expected);

    let (ok, stdout, _) = cluster.cli(&["read", "--from", "1", "--hex"], None);
    assert!(ok);
    assert!(stdout.contains("616c706861"), "hex of alpha in {stdout}");

    let (ok, stdout, stderr) = cluster.cli(&["status", "--json"], None);
    assert!(ok, "status failed: {stderr}");
    let rows: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    let rows = rows.as_array().expect("array");
    assert_eq!(rows.len(), 3);
    assert_eq!(
        rows.iter().filter(|r| r["role"] == "leader").count(),
        1,
        "{stdout}"
    );

    // Every node's admin port answers; the leader reports ready and counts appends.
    for node in &cluster.file.nodes {
        let admin = node.admin.expect("admin address");
        let (code, body) = http_get(admin, "/livez");
        assert_eq!(code, 200, "livez of node {}: {body}", node.id);
        let (code, body) = http_get(admin, "/readyz");
        assert_eq!(code, 200, "readyz of node {}: {body}", node.id);
    }
    let leader = cluster.wait_for_leader();
    let admin = cluster
        .file
        .node(leader)
        .and_then(|n| n.admin)
        .expect("admin");
    let (code, metrics) = http_get(admin, "/metrics");
    assert_eq!(code, 200);
    assert!(metrics.contains("paxlog_appends_total"), "{metrics}");
    assert!(
        metrics.contains("paxlog_fsync_duration_seconds"),
        "{metrics}"
    );

    // A typo above everything chosen is refused, and nothing is trimmed.
    let last = indexes.iter().max().expect("indexes");
    let typo = (last + 999_999).to_string();
    let (ok, stdout, stderr) = cluster.cli(&["trim", "--upto", &typo], None);
    assert!(!ok, "a trim above the chosen index succeeded: {stdout}");
    assert!(
        stderr.contains("refused") && stderr.contains(&typo),
        "{stderr}"
    );
    let (ok, stdout, stderr) = cluster.cli(&["read", "--from", "1"], None);
    assert!(ok, "a read from 1 after the refused trim: {stderr}");
    assert!(stdout.lines().count() >= indexes.len(), "{stdout}");

    // No snapshot yet: a trim is refused, since a node behind it could not
    // rebuild the application's state.
    let lowest = *indexes.iter().min().expect("indexes");
    let (ok, stdout, stderr) = cluster.cli(&["trim", "--upto", &lowest.to_string()], None);
    assert!(!ok, "a trim with no snapshot published succeeded: {stdout}");
    assert!(
        stderr.contains("no snapshot has been published"),
        "{stderr}"
    );

    // Publish a snapshot at the first value (held by node 2), see it listed
    // and fetch it back whole.
    let state = cluster.dir.path().join("state.snap");
    let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&state, &bytes).expect("write the snapshot");
    let state_arg = state.to_str().expect("utf-8");
    let (ok, stdout, stderr) = cluster.cli(
        &[
            "snapshot",
            "publish",
            "--index",
            &lowest.to_string(),
            "--file",
            state_arg,
            "--node",
            "2",
        ],
        None,
    );
    assert!(ok, "snapshot publish failed: {stderr}");
    assert!(stdout.contains("held by node 2"), "{stdout}");
    cluster.wait_for("every node to know the snapshot", |s| {
        s.iter()
            .all(|(_, st)| {
                st.as_ref()
                    .and_then(|st| st.snapshot.as_ref())
                    .is_some_and(|m| m.index == lowest)
            })
            .then_some(())
    });
    let (ok, stdout, stderr) = cluster.cli(&["snapshot", "list", "--json"], None);
    assert!(ok, "snapshot list failed: {stderr}");
    let rows: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    let rows = rows.as_array().expect("rows");
    assert_eq!(rows.len(), 3, "{stdout}");
    for row in rows {
        assert_eq!(
            row["newest"]["index"], lowest,
            "every node knows it: {stdout}"
        );
        let held = row["held"].as_array().expect("held").len();
        assert_eq!(
            held,
            usize::from(row["node"] == 2),
            "only node 2 holds it: {stdout}"
        );
    }
    let fetched = cluster.dir.path().join("fetched.snap");
    let fetched_arg = fetched.to_str().expect("utf-8");
    let (ok, stdout, stderr) = cluster.cli(&["snapshot", "get", "--out", fetched_arg], None);
    assert!(ok, "snapshot get failed: {stderr}");
    assert!(stdout.contains("3000000 bytes"), "{stdout}");
    assert!(
        std::fs::read(&fetched).expect("fetched") == bytes,
        "the fetched snapshot differs"
    );

    // Past the snapshot: refused by name.
    let above = (lowest + 1).to_string();
    let (ok, stdout, stderr) = cluster.cli(&["trim", "--upto", &above], None);
    assert!(!ok, "a trim past the newest snapshot succeeded: {stdout}");
    assert!(
        stderr.contains(&format!("snapshot is at index {lowest}")),
        "{stderr}"
    );

    // A retention hold below it stops the trim by name until released.
    let below = (lowest - 1).to_string();
    let (ok, stdout, stderr) = cluster.cli(&["hold", "set", "backup", "--index", &below], None);
    assert!(
        ok && stdout.contains("hold \"backup\""),
        "hold set: {stdout}{stderr}"
    );
    let (ok, stdout, stderr) = cluster.cli(&["trim", "--upto", &lowest.to_string()], None);
    assert!(!ok, "a trim past a live hold succeeded: {stdout}");
    assert!(stderr.contains("retention hold \"backup\""), "{stderr}");
    let (ok, stdout, _) = cluster.cli(&["hold", "list"], None);
    assert!(
        ok && stdout.contains(&format!("\"backup\" at index {below}")),
        "{stdout}"
    );
    let (ok, stdout, stderr) = cluster.cli(&["hold", "release", "backup"], None);
    assert!(ok, "hold release: {stdout}{stderr}");

    // Trim the first value away: reads below say where the log starts now,
    // reads above still work, on every node once it applied the trim.
    let (ok, stdout, stderr) = cluster.cli(&["trim", "--upto", &lowest.to_string()], None);
    assert!(ok, "trim failed: {stderr}");
    assert!(stdout.contains("trim up to"), "{stdout}");
    cluster.wait_for("every node to apply the trim", |s| {
        s.iter()
            .all(|(_, st)| st.as_ref().is_some_and(|st| st.trim_index >= lowest))
            .then_some(())
    });
    let (ok, _, stderr) = cluster.cli(&["read", "--from", "1"], None);
    assert!(!ok, "a read below the trim point succeeded");
    assert!(stderr.contains("trimmed"), "{stderr}");
    let (ok, stdout, stderr) = cluster.cli(&["read", "--from", &(lowest + 1).to_string()], None);
    assert!(ok, "read above the trim point failed: {stderr}");
    assert_eq!(stdout.lines().count(), 2, "{stdout}");

    // Above the node's 1 MiB value limit, below the 4 MiB frame limit: the leader refuses it.
    let too_big = format!("{}\n", "x".repeat(2 << 20));
    let (ok, _, stderr) = cluster.cli(&["append", "--timeout", "5s"], Some(&too_big));
    assert!(!ok, "a 2 MiB value was acknowledged");
    assert!(
        stderr.contains("larger than") || stderr.contains("too large"),
        "{stderr}"
    );
}

/// Names of process `pid`'s threads, as the kernel has them.
fn thread_names(pid: u32) -> Vec<String> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the node's threads");
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .map(|name| name.trim().to_string())
        .collect()
}

#[test]
fn each_node_runs_the_threads_it_was_given_and_mixed_nodes_agree() {
    let mut cluster = TestCluster::new(3);
    // Node 1 keeps the default (one thread, no runtime workers).
    cluster.set_node_env(2, "PAXLOG_THREADS", "2");
    cluster.set_node_env(3, "PAXLOG_THREADS", "3");
    for id in 1..=3 {
        cluster.start_node(id);
    }
    let leader = cluster.wait_for_leader();
    for (id, workers) in [(1, 0), (2, 2), (3, 3)] {
        let names = thread_names(cluster.pid(id));
        let found = names.iter().filter(|n| *n == "paxlog-worker").count();
        assert_eq!(found, workers, "node {id}'s threads: {names:?}");
    }
    let values: Vec<Bytes> = (0..500)
        .map(|i| Bytes::from(format!("mixed {i}")))
        .collect();
    cluster.append_chosen(values, 16);
    let entries = assert_same_everywhere(&cluster, 500);
    println!(
        "leader {leader}; threads 1/2/3 on nodes 1/2/3; {} entries identical on every node",
        entries.len()
    );
}
