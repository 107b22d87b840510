//! The load generator: C clients, each with its own connection and at most
//! one append outstanding, for a warm-up and then a measured window.
//!
//! Closed loop (the default): a client sends its next append as soon as the
//! previous one is acknowledged. Open loop (`rate_per_sec`): each client
//! sends on a fixed schedule and latency is measured from the *intended* send
//! time whenever the client is behind its schedule, so a stall is charged
//! to every request it delays (no coordinated omission); a client on time
//! measures from its real send, so the timer's 1 ms ticks are not charged
//! to the system. The clients' schedules are staggered evenly over one interval,
//! so the offered load arrives at an even rate, not in bursts of C at once.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::future::try_join_all;
use hdrhistogram::Histogram;
use tokio::time::Instant as TokioInstant;

use crate::procstat::{self, ProcSample};
use crate::system::{Appender, Cluster};

/// What each client does in its loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Op {
    Append,
    /// A linearizable read of the log's end (`Appender::tail`).
    Tail,
}

#[derive(Clone, Copy, Debug)]
pub struct LoadSpec {
    pub op: Op,
    pub clients: usize,
    pub payload_bytes: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// Total appends per second across all clients; `None` is closed loop.
    pub rate_per_sec: Option<f64>,
}

#[derive(Debug)]
pub struct LoadResult {
    /// Appends acknowledged inside the measured window.
    pub appends: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub window: Duration,
    /// Commit latency in microseconds.
    pub latency_us: Histogram<u64>,
    /// Per node: CPU spent inside the measured window, and peak RSS at its end.
    pub nodes: Vec<ProcSample>,
    /// CPU the load generator (this process) spent inside the window; `None`
    /// when this process is also a node (an embedded log), whose CPU then
    /// counts it.
    pub generator_cpu: Option<Duration>,
}

/// Connections opened at once while setting up; a burst of 256 TLS
/// handshakes against one node only measures the handshake.
const CONNECT_PARALLEL: usize = 16;
const LATENCY_MAX_US: u64 = 60_000_000;

pub async fn run(cluster: &dyn Cluster, spec: LoadSpec) -> anyhow::Result<LoadResult> {
    anyhow::ensure!(spec.clients > 0, "at least one client");
    let mut appenders: Vec<Box<dyn Appender>> = Vec::with_capacity(spec.clients);
    for chunk_start in (0..spec.clients).step_by(CONNECT_PARALLEL) {
        let chunk_end = (chunk_start + CONNECT_PARALLEL).min(spec.clients);
        let opened = try_join_all((chunk_start..chunk_end).map(|i| cluster.connect(i)))
            .await
            .context("connect benchmark clients")?;
        appenders.extend(opened);
    }

    let start = TokioInstant::now();
    let measure_from = start + spec.warmup;
    let end = measure_from + spec.duration;
    let per_client_interval = spec
        .rate_per_sec
        .map(|r| Duration::from_secs_f64(spec.clients as f64 / r.max(f64::MIN_POSITIVE)));
    let shared = Arc::new(Window { measure_from, end });

    let mut tasks = Vec::with_capacity(spec.clients);
    for (i, appender) in appenders.into_iter().enumerate() {
        let window = Arc::clone(&shared);
        let payload = payload_for(i, spec.payload_bytes);
        // Client i's schedule starts i/C of an interval late.
        let schedule = per_client_interval.map(|every| Schedule {
            first: start + every.mul_f64(i as f64 / spec.clients as f64),
            every,
        });
        tasks.push(tokio::spawn(client_loop(
            appender, spec.op, payload, window, schedule,
        )));
    }

    tokio::time::sleep_until(measure_from).await;
    let pids = cluster.pids();
    let own = std::process::id();
    let generator_before = procstat::sample(own);
    let before = sample_all(&pids);
    tokio::time::sleep_until(end).await;
    let after = sample_all(&pids);
    let generator_after = procstat::sample(own);

    let mut latency_us = Histogram::<u64>::new_with_bounds(1, LATENCY_MAX_US, 3)?;
    let (mut appends, mut errors, mut first_error) = (0, 0, None);
    for task in tasks {
        let stats = task.await.context("a client task panicked")?;
        latency_us.add(&stats.latency_us)?;
        appends += stats.appends;
        errors += stats.errors;
        if first_error.is_none() {
            first_error = stats.first_error;
        }
    }
    // A node that died mid-run would silently turn this into a 2-node measurement.
    let (before, after) = (before?, after?);
    let nodes = before
        .iter()
        .zip(&after)
        .map(|(b, a)| ProcSample {
            cpu: a.cpu.saturating_sub(b.cpu),
            peak_rss_bytes: a.peak_rss_bytes,
        })
        .collect();
    let generator_cpu = match (generator_before, generator_after) {
        _ if pids.contains(&own) => None,
        (Some(b), Some(a)) => Some(a.cpu.saturating_sub(b.cpu)),
        _ => anyhow::bail!("cannot read this process's own CPU time from /proc"),
    };
    Ok(LoadResult {
        appends,
        errors,
        first_error,
        window: spec.duration,
        latency_us,
        nodes,
        generator_cpu,
    })
}

struct Window {
    measure_from: TokioInstant,
    end: TokioInstant,
}

struct ClientStats {
    appends: u64,
    errors: u64,
    first_error: Option<String>,
    latency_us: Histogram<u64>,
}

/// One open-loop client's send times: `first`, then every `every`.
#[derive(Clone, Copy, Debug)]
struct Schedule {
    first: TokioInstant,
    every: Duration,
}

async fn client_loop(
    mut appender: Box<dyn Appender>,
    op: Op,
    mut payload: Vec<u8>,
    window: Arc<Window>,
    schedule: Option<Schedule>,
) -> ClientStats {
    let mut stats = ClientStats {
        appends: 0,
        errors: 0,
        first_error: None,
        latency_us: Histogram::new_with_bounds(1, LATENCY_MAX_US, 3)
            .expect("static histogram bounds are valid"),
    };
    let mut sent: u64 = 0;
    loop {
        let intended = match schedule {
            Some(Schedule { first, every }) => {
                let at = first + every.mul_f64(sent as f64);
                if TokioInstant::now() >= at {
                    // Behind schedule: the system's slowness delayed this
                    // send, so the wait counts against it.
                    at
                } else {
                    // On time: any lateness is the timer's (1 ms ticks), not
                    // the system's; measure from the real send.
                    tokio::time::sleep_until(at).await;
                    TokioInstant::now()
                }
            }
            None => TokioInstant::now(),
        };
        if intended >= window.end {
            return stats;
        }
        sent += 1;
        // Every append differs, and random-looking bytes defeat compression.
        let stamp = 8.min(payload.len());
        payload[..stamp].copy_from_slice(&sent.to_le_bytes()[..stamp]);
        let result = match op {
            Op::Append => appender.append(&payload).await,
            Op::Tail => appender.tail().await,
        };
        let done = TokioInstant::now();
        if done < window.measure_from || done > window.end {
            continue;
        }
        match result {
            Ok(()) => {
                stats.appends += 1;
                let us = done.duration_since(intended).as_micros() as u64;
                // Saturate instead of failing: an over-range sample still counts.
                stats
                    .latency_us
                    .saturating_record(us.clamp(1, LATENCY_MAX_US));
            }
            Err(e) => {
                stats.errors += 1;
                if stats.first_error.is_none() {
                    stats.first_error = Some(format!("{e:#}"));
                }
            }
        }
    }
}

fn sample_all(pids: &[u32]) -> anyhow::Result<Vec<ProcSample>> {
    anyhow::ensure!(
        pids.len() == 3,
        "expected 3 node processes, found {}",
        pids.len()
    );
    pids.iter()
        .map(|&pid| procstat::sample(pid).with_context(|| format!("node process {pid} is gone")))
        .collect()
}

/// Deterministic pseudo-random bytes (xorshift), different per client.
fn payload_for(client: usize, len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ (client as u64 + 1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_have_the_requested_size_and_differ_per_client() {
        assert_eq!(payload_for(0, 256).len(), 256);
        assert_eq!(payload_for(0, 0).len(), 0);
        assert_ne!(payload_for(0, 64), payload_for(1, 64));
        assert_eq!(payload_for(3, 64), payload_for(3, 64));
    }
}
