//! Micro-benchmark of synced RocksStore writes (not a test).
//!
//! Usage: `paxlog-storage-bench [dir] [seconds_per_size] [value_bytes]`
//!
//! For each batch size (1, 16, 256 entries of `value_bytes`, default 256) it
//! writes synced batches, each also raising the chosen index as a leader's
//! do, into a fresh directory for a fixed time and prints batches/s,
//! entries/s, write latency, and the write amplification: bytes this process
//! sent to the disk (`/proc/self/io` `write_bytes`: WAL, flushes and
//! compactions) per value byte. At batch size 1 the write latency is, to
//! within RocksDB's own overhead, the latency of one fsync.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bytes::Bytes;
use paxlog_storage::{Accepted, Ballot, Identity, RocksStore, Store, WriteBatch};

const BATCH_SIZES: [u64; 3] = [1, 16, 256];
const VALUE_BYTES_DEFAULT: usize = 256;
/// Distinct values cycled through, as the cluster bench's 64 clients send.
const VALUES_DISTINCT: u64 = 64;
/// Latency samples kept per size; enough for percentiles, bounded memory.
const SAMPLES_MAX: usize = 1_000_000;

struct Run {
    batches: u64,
    elapsed: Duration,
    latencies_us: Vec<u64>,
    disk_bytes: u64,
}

/// Incompressible bytes (xorshift), as real payloads mostly are: a constant
/// fill would compress to nothing and hide what flushes and compactions write.
fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ (seed + 1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Bytes this process has caused to be sent to the block device.
fn disk_write_bytes() -> Result<u64, String> {
    let io = std::fs::read_to_string("/proc/self/io").map_err(|e| format!("/proc/self/io: {e}"))?;
    io.lines()
        .find_map(|line| line.strip_prefix("write_bytes: "))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| "no write_bytes in /proc/self/io".to_string())
}

fn run(
    dir: &std::path::Path,
    batch_entries: u64,
    value_bytes: usize,
    duration: Duration,
) -> Result<Run, String> {
    let identity = Identity {
        cluster_id: "bench".to_string(),
        node_id: 1,
    };
    let store = RocksStore::open(dir, identity).map_err(|e| e.to_string())?;
    let values: Vec<Bytes> = (0..VALUES_DISTINCT)
        .map(|seed| Bytes::from(random_bytes(seed, value_bytes)))
        .collect();
    let disk_before = disk_write_bytes()?;
    let ballot = Ballot::new(1, 1);
    let mut latencies_us = Vec::new();
    let mut batches = 0u64;
    let started = Instant::now();
    while started.elapsed() < duration {
        let first = batches * batch_entries + 1;
        let batch = WriteBatch {
            accepts: (first..first + batch_entries)
                .map(|i| {
                    (
                        i,
                        Accepted {
                            ballot,
                            value: values[i as usize % values.len()].clone(),
                        },
                    )
                })
                .collect(),
            chosen_index: Some(first.saturating_sub(1)),
            ..WriteBatch::default()
        };
        let t = Instant::now();
        store.write(&batch).map_err(|e| e.to_string())?;
        if latencies_us.len() < SAMPLES_MAX {
            latencies_us.push(t.elapsed().as_micros() as u64);
        }
        batches += 1;
    }
    let elapsed = started.elapsed();
    // Closing waits for background flushes and compactions, whose writes
    // the batches caused.
    drop(store);
    Ok(Run {
        batches,
        elapsed,
        latencies_us,
        disk_bytes: disk_write_bytes()?.saturating_sub(disk_before),
    })
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let root = args.next().map(PathBuf::from).unwrap_or_else(|| {
        std::env::temp_dir().join(format!("paxlog-storage-bench-{}", std::process::id()))
    });
    let seconds: u64 = match args.next().map(|s| s.parse()) {
        None => 5,
        Some(Ok(s)) => s,
        Some(Err(e)) => {
            eprintln!("seconds_per_size: {e}");
            return ExitCode::from(2);
        }
    };
    let value_bytes: usize = match args.next().map(|s| s.parse()) {
        None => VALUE_BYTES_DEFAULT,
        Some(Ok(b)) => b,
        Some(Err(e)) => {
            eprintln!("value_bytes: {e}");
            return ExitCode::from(2);
        }
    };
    println!(
        "dir = {}, {seconds} s per batch size, {value_bytes}-byte values, sync on",
        root.display()
    );
    println!(
        "{:>7} {:>9} {:>11} {:>12} {:>9} {:>9} {:>9} {:>9} {:>11}",
        "entries",
        "batches",
        "batches/s",
        "entries/s",
        "MiB/s",
        "mean_us",
        "p50_us",
        "p99_us",
        "disk/value"
    );
    for batch_entries in BATCH_SIZES {
        let dir = root.join(format!("batch-{batch_entries}"));
        let result = run(
            &dir,
            batch_entries,
            value_bytes,
            Duration::from_secs(seconds),
        );
        // Best effort: the data is throwaway.
        let _ = std::fs::remove_dir_all(&dir);
        let mut r = match result {
            Ok(r) => r,
            Err(e) => {
                eprintln!("batch size {batch_entries}: {e}");
                return ExitCode::FAILURE;
            }
        };
        r.latencies_us.sort_unstable();
        let secs = r.elapsed.as_secs_f64();
        let entries = r.batches * batch_entries;
        let mean_us =
            r.latencies_us.iter().sum::<u64>() as f64 / r.latencies_us.len().max(1) as f64;
        let value_total = (entries as usize * value_bytes).max(1) as f64;
        println!(
            "{:>7} {:>9} {:>11.0} {:>12.0} {:>9.1} {:>9.0} {:>9} {:>9} {:>11.2}",
            batch_entries,
            r.batches,
            r.batches as f64 / secs,
            entries as f64 / secs,
            (entries as usize * value_bytes) as f64 / secs / (1 << 20) as f64,
            mean_us,
            percentile(&r.latencies_us, 0.50),
            percentile(&r.latencies_us, 0.99),
            r.disk_bytes as f64 / value_total,
        );
    }
    let _ = std::fs::remove_dir(&root);
    ExitCode::SUCCESS
}
