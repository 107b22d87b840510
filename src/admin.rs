//! The admin port: `/metrics` (Prometheus text, `paxlog_` prefix), `/livez`
//! and `/readyz`. A small blocking HTTP server on its own thread, so a busy
//! event loop cannot make the node look dead to its supervisor.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::sync::{mpsc, oneshot};

use crate::node::request::Command;

static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide Prometheus recorder once; later calls reuse it.
pub fn install_recorder() -> Option<PrometheusHandle> {
    RECORDER
        .get_or_init(|| {
            let builder = with_buckets(PrometheusBuilder::new()).ok()?;
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            Some(handle)
        })
        .clone()
}

/// Every series a node exports, with its help text (`promtool check metrics`
/// wants one for each, and a new operator reads them).
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    let s = Unit::Seconds;
    let b = Unit::Bytes;
    describe_histogram!(
        "paxlog_commit_latency_seconds",
        s,
        "Leader: a proposal's arrival to its acknowledgement (chosen)."
    );
    describe_histogram!(
        "paxlog_fsync_duration_seconds",
        s,
        "One synced write of the store (group commit)."
    );
    describe_histogram!(
        "paxlog_client_request_seconds",
        s,
        "A client request's stay in this node: its frame read to its answer queued for writing."
    );
    describe_histogram!(
        "paxlog_write_wait_seconds",
        s,
        "A batch of the loop's from its hand-off to the writer to the start of the sync that carries it."
    );
    describe_histogram!(
        "paxlog_write_notice_seconds",
        s,
        "A sync's end to the loop taking its notice (the writer thread's wake of the loop)."
    );
    describe_histogram!(
        "paxlog_loop_burst_seconds",
        s,
        "One turn of the loop: a burst of inputs taken and its outputs drained."
    );
    describe_histogram!(
        "paxlog_write_batch_entries",
        "Accepted entries in one store write, synced or not."
    );
    describe_histogram!(
        "paxlog_write_batch_bytes",
        b,
        "Value bytes in one store write, synced or not."
    );
    describe_histogram!(
        "paxlog_peer_round_trip_time_seconds",
        s,
        "Leader: a heartbeat to a peer until its echo."
    );
    describe_counter!(
        "paxlog_appends_total",
        "Client appends this node proposed as leader, each once (a resend that joins one is not counted)."
    );
    describe_counter!(
        "paxlog_appended_bytes_total",
        b,
        "Encoded bytes of the appends counted by paxlog_appends_total."
    );
    describe_counter!(
        "paxlog_append_answers_total",
        "Client appends this node answered, by outcome (ok or the error's kind)."
    );
    describe_counter!(
        "paxlog_unsynced_writes_total",
        "Store writes made without a sync: accepts a thrifty leader does not count (--thrifty)."
    );
    describe_counter!(
        "paxlog_loop_syncs_total",
        "Syncs a follower made in its own loop, without the writer thread (--follower-sync loop)."
    );
    describe_counter!(
        "paxlog_entries_chosen_total",
        "Entries this node learned chosen."
    );
    describe_counter!(
        "paxlog_duplicate_appends_total",
        "Chosen appends that repeat an earlier one of their session (applied as no-ops)."
    );
    describe_counter!(
        "paxlog_elections_total",
        "Elections this node ran, by result (started, won, lost)."
    );
    describe_counter!(
        "paxlog_leader_changes_seen_total",
        "Times the leader this node knows changed."
    );
    describe_counter!(
        "paxlog_peer_messages_dropped_total",
        "Peer messages the transport refused, by reason."
    );
    describe_counter!(
        "paxlog_configuration_changes_total",
        "Configurations this node moved to."
    );
    describe_gauge!("paxlog_is_leader", "1 while this node leads, else 0.");
    describe_gauge!(
        "paxlog_leader_tenure_seconds",
        s,
        "How long this node has led (0 when it does not)."
    );
    describe_gauge!(
        "paxlog_promised_ballot",
        "The highest ballot this node promised (its counter; the node is in the status)."
    );
    describe_gauge!(
        "paxlog_chosen_index",
        "The highest index this node knows chosen."
    );
    describe_gauge!("paxlog_last_index", "The highest index this node accepted.");
    describe_gauge!(
        "paxlog_trim_index",
        "Every index at or below it is trimmed."
    );
    describe_gauge!(
        "paxlog_snapshot_index",
        "Index of the newest published snapshot (0: none)."
    );
    describe_gauge!("paxlog_holds", "Retention holds in force.");
    describe_gauge!(
        "paxlog_uncommitted_bytes",
        b,
        "Leader: value bytes proposed and not yet chosen."
    );
    describe_gauge!(
        "paxlog_peer_lag_entries",
        "Leader: entries a peer is behind this node's last index."
    );
    describe_gauge!(
        "paxlog_peer_inflight_entries",
        "Leader: entries sent to a peer and not yet acknowledged."
    );
    describe_gauge!(
        "paxlog_peer_inflight_bytes",
        b,
        "Leader: value bytes sent to a peer and not yet acknowledged."
    );
    describe_gauge!(
        "paxlog_member_lag_entries",
        "Leader: chosen entries a member is behind (a learner's catch-up)."
    );
    describe_gauge!(
        "paxlog_configuration_epoch",
        "The configuration epoch this node knows."
    );
    describe_gauge!("paxlog_client_connections", "Open QUIC client connections.");
    describe_gauge!(
        "paxlog_storage_size_bytes",
        b,
        "Bytes of the files in the data directory."
    );
    // Counters exist from the start, at zero: a rate over a series that
    // appears only with its first event misses that event, and a dashboard
    // shows "no data" where it means none.
    for name in [
        "paxlog_appends_total",
        "paxlog_appended_bytes_total",
        "paxlog_entries_chosen_total",
        "paxlog_duplicate_appends_total",
        "paxlog_leader_changes_seen_total",
        "paxlog_configuration_changes_total",
    ] {
        metrics::counter!(name).increment(0);
    }
    for result in ["started", "won", "lost"] {
        metrics::counter!("paxlog_elections_total", "result" => result).increment(0);
    }
    for reason in [
        "queue_full",
        "closed",
        "unknown_peer",
        "too_large",
        "encode",
    ] {
        metrics::counter!("paxlog_peer_messages_dropped_total", "reason" => reason).increment(0);
    }
    for outcome in [
        "ok",
        "not_leader",
        "no_quorum",
        "busy",
        "too_large",
        "fenced",
        "indeterminate",
    ] {
        metrics::counter!("paxlog_append_answers_total", "outcome" => outcome).increment(0);
    }
}

/// Latencies from 50 µs (a loopback round trip) to 2.5 s (a stalled disk).
const SECONDS_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5,
];
/// Entries in one synced write: 1 up to the writer's merge bound.
const ENTRIES_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0,
];
/// Value bytes in one synced write: one small value up to the 16 MiB merge bound.
const BYTES_BUCKETS: &[f64] = &[
    256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0,
];

/// Every histogram gets buckets in its own unit (a name ending `_seconds`,
/// `_entries` or `_bytes`); one set for all would put every batch of more
/// than one entry in `+Inf`.
fn with_buckets(builder: PrometheusBuilder) -> Result<PrometheusBuilder, BuildError> {
    builder
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)?
        .set_buckets_for_metric(Matcher::Suffix("_entries".into()), ENTRIES_BUCKETS)?
        .set_buckets_for_metric(Matcher::Suffix("_bytes".into()), BYTES_BUCKETS)
}

/// Bytes of every file under the node's data directory (RocksDB's files
/// and the snapshots), read when `/metrics` is scraped, off the event loop.
fn storage_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(t) if t.is_dir() => storage_bytes(&entry.path()),
            Ok(_) => entry.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

#[derive(Debug, thiserror::Error)]
#[error("cannot serve the admin port on {addr}: {message}")]
pub struct AdminError {
    addr: SocketAddr,
    message: String,
}

/// Serves the admin endpoints until the process exits. Returns the bound address.
pub(crate) fn serve(
    addr: SocketAddr,
    loop_tx: mpsc::Sender<Command>,
    data_dir: PathBuf,
) -> Result<SocketAddr, AdminError> {
    let handle = install_recorder();
    let server = tiny_http::Server::http(addr).map_err(|e| AdminError {
        addr,
        message: e.to_string(),
    })?;
    let bound = server.server_addr().to_ip().ok_or_else(|| AdminError {
        addr,
        message: "not an IP listener".into(),
    })?;
    let runtime = tokio::runtime::Handle::current();
    std::thread::Builder::new()
        .name("paxlog-admin".into())
        .spawn(move || {
            for request in server.incoming_requests() {
                let (code, body) = match request.url() {
                    "/metrics" => {
                        metrics::gauge!("paxlog_storage_size_bytes")
                            .set(storage_bytes(&data_dir) as f64);
                        (200, handle.as_ref().map(|h| h.render()).unwrap_or_default())
                    }
                    "/livez" => (200, "ok\n".to_string()),
                    "/readyz" => readiness(&runtime, &loop_tx),
                    _ => (
                        404,
                        "not found: try /metrics, /livez or /readyz\n".to_string(),
                    ),
                };
                let response = tiny_http::Response::from_string(body).with_status_code(code);
                if let Err(error) = request.respond(response) {
                    tracing::debug!(%error, "admin response failed");
                }
            }
        })
        .map_err(|e| AdminError {
            addr,
            message: e.to_string(),
        })?;
    Ok(bound)
}

/// Ready when the event loop answers and the node knows a leader.
fn readiness(runtime: &tokio::runtime::Handle, loop_tx: &mpsc::Sender<Command>) -> (u16, String) {
    let (tx, rx) = oneshot::channel();
    if loop_tx
        .blocking_send(Command::Status { reply: tx })
        .is_err()
    {
        return (503, "node stopped\n".into());
    }
    // The timer must be created inside the runtime, hence the async block.
    match runtime.block_on(async { tokio::time::timeout(Duration::from_secs(2), rx).await }) {
        Ok(Ok(status)) => match status.leader {
            Some(leader) => (200, format!("ready: leader is node {leader}\n")),
            None => (503, "not ready: no leader known\n".into()),
        },
        Ok(Err(_)) => (503, "node stopped\n".into()),
        Err(_) => (503, "not ready: event loop did not answer in 2 s\n".into()),
    }
}
