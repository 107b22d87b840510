//! What operators scrape (issue 16): every node's `/metrics` passes
//! `promtool check metrics`, the series say what happened (only the leader
//! counts the appends it proposed; commit latency, round trip per peer and
//! batch sizes land in finite buckets), every metric the Grafana dashboard
//! (`ops/grafana-dashboard.json`) queries exists, and `paxlog status --json`
//! is JSON with no key twice.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use bytes::Bytes;
use common::workload::wait_until;
use common::{block_on, dashboard_exprs, sample, TestCluster, WAIT_MAX};

const APPENDS: u64 = 300;

/// `promtool check metrics` (Debian's `prometheus` package); under `CI` a
/// missing promtool fails rather than skips.
fn promtool_check(body: &str) -> Option<(bool, String)> {
    let spawned = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!(
                "SKIPPED promtool check: promtool not runnable ({e}); apt-get install prometheus"
            );
            return None;
        }
        Err(e) => panic!("promtool is required under CI (apt-get install prometheus): {e}"),
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("feed promtool");
    let out = child.wait_with_output().expect("promtool ran");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success(), said))
}

#[test]
fn every_node_passes_promtool_and_only_the_leader_counts_its_appends() {
    let cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader();
    let values: Vec<Bytes> = (0..APPENDS)
        .map(|i| Bytes::from(format!("value {i}")))
        .collect();
    let last = cluster.append_chosen(values, 16);
    // Gauges are exported once a second: wait until every node's says so.
    wait_until("every node to export its chosen index", WAIT_MAX, || {
        cluster.ids().into_iter().all(|id| {
            sample(&cluster.metrics(id), "paxlog_chosen_index").is_some_and(|v| v >= last as f64)
        })
    });
    let peers: Vec<u64> = cluster
        .ids()
        .into_iter()
        .filter(|&id| id != leader)
        .collect();
    // The leader times a heartbeat round to each peer; wait for one each.
    wait_until("a round trip to each peer", WAIT_MAX, || {
        let body = cluster.metrics(leader);
        peers.iter().all(|p| {
            let series = format!("paxlog_peer_round_trip_time_seconds_count{{peer=\"{p}\"}}");
            sample(&body, &series).is_some_and(|n| n > 0.0)
        })
    });

    let bodies: BTreeMap<u64, String> = cluster
        .ids()
        .into_iter()
        .map(|id| (id, cluster.metrics(id)))
        .collect();
    for (id, body) in &bodies {
        if let Some((ok, said)) = promtool_check(body) {
            assert!(
                ok && said.trim().is_empty(),
                "promtool on node {id}: {said}\n{body}"
            );
        }
        let leads = *id == leader;
        assert_eq!(
            sample(body, "paxlog_is_leader"),
            Some(f64::from(u8::from(leads))),
            "node {id}"
        );
        let appends = sample(body, "paxlog_appends_total").unwrap_or(0.0);
        let storage = sample(body, "paxlog_storage_size_bytes").expect("storage size");
        assert!(storage > 0.0, "node {id} holds data: {storage}");
        // Every synced write lands in a finite bucket (the old buckets were
        // seconds' and put every batch above one entry in +Inf).
        let batches = sample(body, "paxlog_write_batch_entries_count").expect("batches");
        let finite =
            sample(body, "paxlog_write_batch_entries_bucket{le=\"65536\"}").expect("bucket");
        assert_eq!(
            finite, batches,
            "node {id}: batches past the last finite bucket"
        );
        // Each sync on the writer thread carries at least one batch the loop
        // staged, and its notice reaches the loop (one may be on its way
        // while the page renders, which reads one series after another); a
        // follower syncs in its loop (`--follower-sync loop`, the default),
        // with neither.
        let syncs = sample(body, "paxlog_fsync_duration_seconds_count").expect("syncs");
        let in_loop = sample(body, "paxlog_loop_syncs_total").unwrap_or(0.0);
        let staged = sample(body, "paxlog_write_wait_seconds_count").unwrap_or(0.0);
        let notices = sample(body, "paxlog_write_notice_seconds_count").unwrap_or(0.0);
        let by_writer = syncs - in_loop;
        assert!(
            syncs > 0.0 && staged >= by_writer && (notices - by_writer).abs() <= 1.0,
            "node {id}: {syncs} syncs ({in_loop} in the loop), {staged} batches staged, \
             {notices} notices"
        );
        if !leads {
            // Every accept of the appends came while it followed; the writer
            // synced only what it wrote while it was not a follower (a
            // candidate's own promise).
            assert!(
                in_loop >= by_writer && in_loop > 0.0,
                "follower {id}: {in_loop} syncs in the loop, {by_writer} by the writer"
            );
        }
        let turns = sample(body, "paxlog_loop_burst_seconds_count").expect("loop turns");
        assert!(turns > 0.0, "node {id}: no loop turn timed");
        if leads {
            assert_eq!(
                appends, APPENDS as f64,
                "the leader proposed each append once"
            );
            let committed = sample(body, "paxlog_commit_latency_seconds_count").expect("commits");
            assert!(committed >= APPENDS as f64, "{committed} commits timed");
            // The stream's time holds the loop's: read before the proposal,
            // queued after its answer.
            let requests = sample(body, "paxlog_client_request_seconds_count").expect("requests");
            let in_stream = sample(body, "paxlog_client_request_seconds_sum").expect("stream sum");
            let in_loop = sample(body, "paxlog_commit_latency_seconds_sum").expect("commit sum");
            assert!(
                requests >= APPENDS as f64 && in_stream >= in_loop,
                "{requests} requests timed, {in_stream} s in streams against {in_loop} s in the loop"
            );
            let won = sample(body, "paxlog_elections_total{result=\"won\"}");
            assert!(
                won.is_some_and(|n| n >= 1.0),
                "the leader won an election: {won:?}"
            );
        } else {
            assert_eq!(
                appends, 0.0,
                "follower {id} counted appends it did not propose"
            );
        }
    }
    let used = dashboard_metrics();
    for name in &used {
        let exported = bodies.values().any(|body| {
            body.lines().any(|l| {
                l.strip_prefix(name.as_str())
                    .is_some_and(|rest| rest.starts_with(['{', ' ']))
            })
        });
        assert!(
            exported,
            "the dashboard names {name}, which no node exports"
        );
    }
    println!(
        "leader {leader}; {APPENDS} appends; promtool clean on {} nodes; the dashboard's {} \
         metrics all exported",
        bodies.len(),
        used.len()
    );
}

/// Every `paxlog_…` series the Grafana dashboard's queries name.
fn dashboard_metrics() -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for expr in dashboard_exprs() {
        let mut rest = expr.as_str();
        while let Some(at) = rest.find("paxlog_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[at + name.len()..];
            names.insert(name);
        }
    }
    assert!(
        names.len() >= 10,
        "the dashboard names too few metrics: {names:?}"
    );
    names
}

/// A JSON document in which no object names a key twice (serde_json keeps
/// the last of two silently).
fn assert_no_duplicate_keys(text: &str) {
    use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
    struct Checked;
    impl<'de> Deserialize<'de> for Checked {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(CheckedVisitor)
        }
    }
    struct CheckedVisitor;
    impl<'de> Visitor<'de> for CheckedVisitor {
        type Value = Checked;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
            let mut keys = std::collections::BTreeSet::new();
            while let Some(key) = map.next_key::<String>()? {
                if !keys.insert(key.clone()) {
                    return Err(serde::de::Error::custom(format!("key {key:?} twice")));
                }
                map.next_value::<Checked>()?;
            }
            Ok(Checked)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
            while seq.next_element::<Checked>()?.is_some() {}
            Ok(Checked)
        }
        fn visit_bool<E>(self, _: bool) -> Result<Checked, E> {
            Ok(Checked)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Checked, E> {
            Ok(Checked)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Checked, E> {
            Ok(Checked)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Checked, E> {
            Ok(Checked)
        }
        fn visit_str<E>(self, _: &str) -> Result<Checked, E> {
            Ok(Checked)
        }
        fn visit_unit<E>(self) -> Result<Checked, E> {
            Ok(Checked)
        }
        fn visit_none<E>(self) -> Result<Checked, E> {
            Ok(Checked)
        }
    }
    if let Err(e) = serde_json::from_str::<Checked>(text) {
        panic!("not JSON without duplicate keys: {e}\n{text}");
    }
}

#[test]
fn status_json_names_each_key_once_and_tells_tenure_fsync_and_round_trips() {
    let cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader();
    let client = cluster.client();
    let values: Vec<Bytes> = (0..50).map(|i| Bytes::from(format!("v{i}"))).collect();
    for r in block_on(client.append_all(values, 8)) {
        r.expect("append");
    }
    let mut json = serde_json::Value::Null;
    wait_until(
        "the leader to time a round trip to each peer",
        WAIT_MAX,
        || {
            let (ok, stdout, stderr) = cluster.cli(&["status", "-o", "json"], None);
            assert!(ok, "paxlog status -o json: {stderr}");
            assert_no_duplicate_keys(&stdout);
            json = serde_json::from_str(&stdout).expect("JSON");
            let rows = json.as_array().expect("one row per node");
            let row = rows
                .iter()
                .find(|r| r["id"] == leader)
                .expect("the leader's row");
            row["peers"]
                .as_array()
                .is_some_and(|ps| ps.iter().all(|p| p["round_trip_us"].is_u64()))
        },
    );
    let rows = json.as_array().expect("rows");
    assert_eq!(rows.len(), 3, "{json}");
    for row in rows {
        let leads = row["id"] == leader;
        assert_eq!(
            row["role"],
            if leads { "leader" } else { "follower" },
            "{row}"
        );
        assert!(row["fsync_p99_us"].is_u64(), "every node synced: {row}");
        assert_eq!(row["leader_tenure_ms"].is_u64(), leads, "{row}");
    }
    // The table says the same things.
    let (ok, table, stderr) = cluster.cli(&["status"], None);
    assert!(ok, "{stderr}");
    for header in ["tenure", "fsync p99", "rtt"] {
        assert!(table.contains(header), "{header} missing from:\n{table}");
    }
}
