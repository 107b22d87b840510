//! openraft and transport settings of a benchmark node, chosen as a
//! competent user would for a 3-node loopback cluster with fsync on.

use openraft::{Config, SnapshotPolicy};
use paxlog_net::{NetConfig, FRAME_BYTES_MAX_DEFAULT};

use super::batcher::BatchLimits;

/// Leader heartbeat period. openraft 0.9 also uses it as the timeout of every
/// AppendEntries RPC, so it must cover a follower's fsync under load.
pub const HEARTBEAT_INTERVAL_MS: u64 = 100;
pub const ELECTION_TIMEOUT_MIN_MS: u64 = 500;
pub const ELECTION_TIMEOUT_MAX_MS: u64 = 1000;
/// Entries per AppendEntries when every payload is its own entry: above the
/// 256 concurrent clients of the largest run, so one round trip carries
/// everything pending.
pub const ENTRIES_PER_APPEND_UNBATCHED: u64 = 512;
/// Entries per AppendEntries when entries are batches: a few batches are in
/// flight at once, and this bounds the frame at a few batches' bytes.
pub const ENTRIES_PER_APPEND_BATCHED: u64 = 16;
/// Defaults of the proposal batcher (`batcher.rs`).
pub const BATCH: BatchLimits = BatchLimits {
    payloads_max: 1024,
    bytes_max: 256 << 10,
    // One: openraft 0.9 fsyncs each entry before the next, so a second
    // batch in flight only splits the queue into more fsyncs (measured:
    // 1 beats 2, 4 and 8 at 16..256 clients).
    in_flight: 1,
};
/// No batching: every payload its own entry, all submitted concurrently.
pub const UNBATCHED: BatchLimits = BatchLimits {
    payloads_max: 1,
    bytes_max: 0,
    in_flight: 1024,
};
/// A snapshot of this state machine is a few bytes, and purging is a range
/// delete, so snapshots are cheap; rare enough not to show in a run.
pub const SNAPSHOT_EVERY_ENTRIES: u64 = 100_000;
/// Entries kept behind the snapshot so a briefly lagging follower still
/// catches up from the log.
pub const LOG_KEPT_AFTER_SNAPSHOT_ENTRIES: u64 = 10_000;
pub const SNAPSHOT_CHUNK_BYTES: u64 = 1 << 20;
/// Upper bound of an entry's encoding beyond its payload (log id, tags).
const ENTRY_OVERHEAD_BYTES: usize = 128;
/// Concurrent client streams per connection: the benchmark shares one
/// connection per node among up to 256 clients.
pub const CLIENT_STREAMS_MAX: u32 = 1024;

/// Entries per AppendEntries under `batch`.
pub fn entries_per_append(batch: &BatchLimits) -> u64 {
    if batch.payloads_max > 1 {
        ENTRIES_PER_APPEND_BATCHED
    } else {
        ENTRIES_PER_APPEND_UNBATCHED
    }
}

pub fn raft_config(batch: &BatchLimits) -> anyhow::Result<Config> {
    let config = Config {
        cluster_name: "paxlog-bench".into(),
        heartbeat_interval: HEARTBEAT_INTERVAL_MS,
        election_timeout_min: ELECTION_TIMEOUT_MIN_MS,
        election_timeout_max: ELECTION_TIMEOUT_MAX_MS,
        install_snapshot_timeout: 2_000,
        max_payload_entries: entries_per_append(batch),
        replication_lag_threshold: SNAPSHOT_EVERY_ENTRIES * 2,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(SNAPSHOT_EVERY_ENTRIES),
        snapshot_max_chunk_size: SNAPSHOT_CHUNK_BYTES,
        max_in_snapshot_log_to_keep: LOG_KEPT_AFTER_SNAPSHOT_ENTRIES,
        purge_batch_size: 1024,
        ..Config::default()
    };
    Ok(config.validate()?)
}

/// Frame limit that fits a full AppendEntries of the largest entries.
pub fn frame_bytes_max(payload_bytes_max: usize, batch: &BatchLimits) -> usize {
    let entries = entries_per_append(batch) as usize;
    let entry_bytes = batch
        .entry_bytes_max(payload_bytes_max)
        .saturating_add(ENTRY_OVERHEAD_BYTES);
    let append = entries.saturating_mul(entry_bytes);
    let snapshot = SNAPSHOT_CHUNK_BYTES as usize;
    FRAME_BYTES_MAX_DEFAULT
        .max(append.saturating_add(64 << 10))
        .max(snapshot.saturating_add(64 << 10))
        .min(u32::MAX as usize)
}

pub fn net_config(payload_bytes_max: usize, batch: &BatchLimits) -> NetConfig {
    NetConfig {
        frame_bytes_max: frame_bytes_max(payload_bytes_max, batch),
        client_streams_max: CLIENT_STREAMS_MAX,
        ..NetConfig::default()
    }
}
