//! `paxlog check health` and `paxlog check perf`, in the spirit of etcdctl's
//! `endpoint health` and `check perf`: a verdict a script can act on.
//! Exit codes: 0 every check passed, 1 a check failed (or the cluster could
//! not be asked), 2 bad usage.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use bytes::Bytes;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use paxlog::core::Role;
use paxlog::node::nearest_rank;
use serde::Serialize;

use super::args::{ClientArgs, OutputArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Debug, clap::Subcommand)]
pub enum Cmd {
    /// Every node reachable, one leader that all agree on, each peer's lag
    /// and each node's fsync p99 under their bounds.
    Health(HealthArgs),
    /// A short closed-loop append load; reports throughput, p50 and p99 and
    /// a verdict against the thresholds. The values it appends stay in the
    /// log (until trimmed), like etcdctl's check perf keys.
    Perf(PerfArgs),
}

#[derive(Debug, clap::Args)]
pub struct HealthArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub out: OutputArgs,
    /// A peer further behind the leader's last index than this fails.
    #[arg(long, env = "PAXLOG_LAG_MAX", default_value_t = 10_000)]
    pub lag_max: u64,
    /// A node whose recent fsync p99 is above this fails.
    #[arg(long, env = "PAXLOG_FSYNC_P99_MAX", default_value = "100ms", value_parser = humantime::parse_duration)]
    pub fsync_p99_max: Duration,
}

#[derive(Debug, clap::Args)]
pub struct PerfArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub out: OutputArgs,
    /// How long the load runs.
    #[arg(long, env = "PAXLOG_PERF_DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Appends in flight at once (closed loop).
    #[arg(long, env = "PAXLOG_PERF_CLIENTS", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub clients: u32,
    /// Bytes per appended value.
    #[arg(long, env = "PAXLOG_PERF_VALUE_BYTES", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    pub value_bytes: u32,
    /// Acknowledged appends per second below this fail.
    #[arg(long, env = "PAXLOG_PERF_MIN_THROUGHPUT", default_value_t = 1_000.0)]
    pub min_throughput: f64,
    /// A p99 append latency above this fails.
    #[arg(long, env = "PAXLOG_PERF_P99_MAX", default_value = "100ms", value_parser = humantime::parse_duration)]
    pub p99_max: Duration,
}

#[derive(Debug, Serialize)]
struct Check {
    check: String,
    ok: bool,
    detail: String,
}

fn verdict(checks: &[Check], json: bool) -> anyhow::Result<ExitCode> {
    let ok = checks.iter().all(|c| c.ok);
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "ok": ok, "checks": checks }))?
        );
    } else {
        let mut table = Table::new();
        table.load_preset(UTF8_FULL_CONDENSED);
        table.set_header(["check", "result", "detail"]);
        for c in checks {
            let result = if c.ok { "ok" } else { "FAILED" };
            table.add_row([c.check.as_str(), result, c.detail.as_str()]);
        }
        outln!("{table}");
        outln!("{}", if ok { "PASS" } else { "FAIL" });
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Cmd::Health(a) => health(a).await,
        Cmd::Perf(a) => perf(a).await,
    }
}

async fn health(a: HealthArgs) -> anyhow::Result<ExitCode> {
    let client = a.client.connect()?;
    let answers = client.status_all().await;
    let mut checks = Vec::new();
    let down: Vec<String> = answers
        .iter()
        .filter_map(|(id, addr, r)| r.as_ref().err().map(|e| format!("node {id} ({addr}): {e}")))
        .collect();
    checks.push(Check {
        check: "every node reachable".into(),
        ok: down.is_empty(),
        detail: if down.is_empty() {
            format!("{} of {}", answers.len(), answers.len())
        } else {
            down.join("; ")
        },
    });
    let up: Vec<_> = answers
        .iter()
        .filter_map(|(id, _, r)| r.as_ref().ok().map(|s| (*id, s)))
        .collect();
    let leaders: Vec<u64> = up
        .iter()
        .filter(|(_, s)| s.role == Role::Leader)
        .map(|(id, _)| *id)
        .collect();
    let named: std::collections::BTreeSet<Option<u64>> = up.iter().map(|(_, s)| s.leader).collect();
    let one_leader = leaders.len() == 1 && named.len() == 1 && named.contains(&Some(leaders[0]));
    checks.push(Check {
        check: "one leader".into(),
        ok: one_leader,
        detail: if one_leader {
            format!(
                "node {} leads, and every answering node says so",
                leaders[0]
            )
        } else {
            format!("nodes leading: {leaders:?}; leaders named: {named:?}")
        },
    });
    let leader = up
        .iter()
        .find(|(_, s)| s.role == Role::Leader)
        .map(|(_, s)| *s);
    let lags: Vec<(u64, u64)> = leader
        .map(|s| {
            s.peers
                .iter()
                .map(|p| (p.id, p.lag_entries.unwrap_or(u64::MAX)))
                .collect()
        })
        .unwrap_or_default();
    let worst = lags.iter().max_by_key(|(_, lag)| *lag);
    checks.push(Check {
        check: format!("peer lag <= {} entries", a.lag_max),
        ok: leader.is_some() && worst.is_none_or(|(_, lag)| *lag <= a.lag_max),
        detail: match (leader, worst) {
            (None, _) => "no leader to ask".into(),
            (Some(_), None) => "no peers".into(),
            (Some(_), Some(_)) => lags
                .iter()
                .map(|(id, lag)| format!("node {id}: {lag}"))
                .collect::<Vec<_>>()
                .join(", "),
        },
    });
    let bound_us = u64::try_from(a.fsync_p99_max.as_micros()).unwrap_or(u64::MAX);
    let fsyncs: Vec<String> = up
        .iter()
        .map(|(id, s)| match s.fsync_p99_us {
            Some(us) => format!("node {id}: {us} µs"),
            None => format!("node {id}: no write yet"),
        })
        .collect();
    checks.push(Check {
        check: format!(
            "fsync p99 <= {}",
            humantime::format_duration(a.fsync_p99_max)
        ),
        ok: up
            .iter()
            .all(|(_, s)| s.fsync_p99_us.is_none_or(|us| us <= bound_us)),
        detail: fsyncs.join(", "),
    });
    verdict(&checks, a.out.json())
}

async fn perf(a: PerfArgs) -> anyhow::Result<ExitCode> {
    let client = a.client.connect()?;
    let value = Bytes::from(vec![b'p'; a.value_bytes as usize]);
    let started = Instant::now();
    let deadline = started + a.duration;
    let mut tasks = Vec::new();
    for _ in 0..a.clients {
        let client = client.clone();
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            let mut took_us = Vec::new();
            let mut errors = Vec::new();
            let mut indexes = (u64::MAX, 0);
            while Instant::now() < deadline {
                let sent = Instant::now();
                match client.append(value.clone()).await {
                    Ok(index) => {
                        took_us.push(sent.elapsed().as_micros() as u64);
                        indexes = (indexes.0.min(index), indexes.1.max(index));
                    }
                    Err(e) => errors.push(e.to_string()),
                }
            }
            (took_us, errors, indexes)
        }));
    }
    let mut took_us = Vec::new();
    let mut errors = Vec::new();
    let mut indexes = (u64::MAX, 0);
    for task in tasks {
        let (t, e, (lo, hi)) = task.await?;
        took_us.extend(t);
        errors.extend(e);
        indexes = (indexes.0.min(lo), indexes.1.max(hi));
    }
    let elapsed = started.elapsed().as_secs_f64();
    took_us.sort_unstable();
    let throughput = took_us.len() as f64 / elapsed;
    let p99_max_us = u64::try_from(a.p99_max.as_micros()).unwrap_or(u64::MAX);
    let (p50, p99) = (nearest_rank(&took_us, 0.5), nearest_rank(&took_us, 0.99));
    let checks = vec![
        Check {
            check: format!("throughput >= {} appends/s", a.min_throughput),
            ok: throughput >= a.min_throughput,
            detail: format!(
                "{throughput:.0} appends/s: {} acknowledged in {elapsed:.1} s by {} clients × {} B",
                took_us.len(),
                a.clients,
                a.value_bytes
            ),
        },
        Check {
            check: format!("p99 <= {}", humantime::format_duration(a.p99_max)),
            ok: p99.is_some_and(|us| us <= p99_max_us),
            detail: match (p50, p99) {
                (Some(p50), Some(p99)) => format!("p50 {p50} µs, p99 {p99} µs"),
                _ => "no append was acknowledged".into(),
            },
        },
        Check {
            check: "no errors".into(),
            ok: errors.is_empty(),
            detail: match errors.first() {
                None => match took_us.is_empty() {
                    true => "none".into(),
                    false => format!("none; appended indexes {}..={}", indexes.0, indexes.1),
                },
                Some(first) => format!("{} failed, the first: {first}", errors.len()),
            },
        },
    ];
    verdict(&checks, a.out.json())
}
