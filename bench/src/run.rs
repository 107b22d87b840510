//! One benchmark run: measure the hardware's limits, then for every payload
//! and system start a fresh 3-node cluster and sweep the client counts.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::load::{self, LoadSpec};
use crate::report::{self, Row};
use crate::system::{Cluster, StartCtx};
use crate::{etcd, floor, limits, paxlog_embedded, paxlog_sys, raft};

pub const SYSTEMS: [&str; 4] = ["paxlog", "openraft", "etcd", "floor"];
/// Run only when named: the embedded log is paxlog used another way, and
/// the gateway etcd used another way, not more systems to compare in every run.
pub const OPTIONAL_SYSTEMS: [&str; 2] = ["paxlog-embedded", "etcd-gateway"];

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// A short run (clients 1,16,64; 256 B; 3 s each) that finishes in under 3 minutes.
    #[arg(long)]
    quick: bool,
    /// Comma-separated: paxlog, openraft, etcd (native gRPC), floor, and
    /// (only when named) paxlog-embedded: node 1 inside this process behind
    /// the `Log` API; etcd-gateway: etcd through its JSON gateway.
    #[arg(long, value_delimiter = ',', default_values_t = SYSTEMS.map(String::from))]
    systems: Vec<String>,
    /// Concurrent closed-loop clients, one run per value [default: 1,16,64,256; quick: 1,16,64].
    #[arg(long, value_delimiter = ',')]
    clients: Vec<usize>,
    /// Payload sizes in bytes [default: 16,256,4096; quick: 256].
    #[arg(long, value_delimiter = ',')]
    payload: Vec<usize>,
    /// Measured window per run [default: 10s; quick: 3s].
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Unmeasured warm-up before each window [default: 2s; quick: 1s].
    #[arg(long, value_parser = humantime::parse_duration)]
    warmup: Option<Duration>,
    /// Open loop: total appends per second offered across all clients, one
    /// run per value (a sweep draws latency against offered load); default:
    /// closed loop.
    #[arg(long, value_delimiter = ',')]
    rate: Vec<f64>,
    /// What the clients do: append, or linearizable tails of an idle log
    /// (every system through its own linearizable read; the floor has none).
    #[arg(long, value_enum, default_value = "append")]
    workload: load::Op,
    /// Where results.json, results.md and the plots go.
    #[arg(long, default_value = "bench-results")]
    out: PathBuf,
    /// The paxlog binary [default: `paxlog` next to this binary, built if missing].
    #[arg(long)]
    paxlog_bin: Option<PathBuf>,
    /// Keep the nodes' data directories and logs under OUT/work.
    #[arg(long)]
    keep: bool,
    /// Worker threads of this process's tokio runtime, where every system's
    /// clients run (1 to 64) [default: tokio's, one per core]. They share the
    /// machine's cores with the nodes; see bench/README's "The load
    /// generator's threads".
    #[arg(long)]
    load_threads: Option<usize>,
}

struct Plan {
    systems: Vec<String>,
    clients: Vec<usize>,
    /// `[None]` for a closed loop, else the offered rates in ascending order.
    rates: Vec<Option<f64>>,
    payloads: Vec<usize>,
    duration: Duration,
    warmup: Duration,
    load_threads: Option<usize>,
}

const PAYLOAD_BYTES_MAX: usize = 1 << 20;
const CLIENTS_MAX: usize = 4096;
const LOAD_THREADS_MAX: usize = 64;

fn plan(args: &RunArgs) -> anyhow::Result<Plan> {
    let pick = |given: &Vec<usize>, full: &[usize], quick: &[usize]| {
        if !given.is_empty() {
            given.clone()
        } else if args.quick {
            quick.to_vec()
        } else {
            full.to_vec()
        }
    };
    let mut clients = pick(&args.clients, &[1, 16, 64, 256], &[1, 16, 64]);
    let payloads = pick(&args.payload, &[16, 256, 4096], &[256]);
    clients.sort_unstable();
    clients.dedup();
    for s in &args.systems {
        anyhow::ensure!(
            !(args.workload == load::Op::Tail && s == "floor"),
            "the floor has no reads: leave it out of --workload tail"
        );
        anyhow::ensure!(
            SYSTEMS.contains(&s.as_str()) || OPTIONAL_SYSTEMS.contains(&s.as_str()),
            "unknown system {s:?}: expected one of {}, {}",
            SYSTEMS.join(", "),
            OPTIONAL_SYSTEMS.join(", ")
        );
    }
    anyhow::ensure!(!args.systems.is_empty(), "--systems is empty");
    anyhow::ensure!(
        clients.iter().all(|&c| (1..=CLIENTS_MAX).contains(&c)),
        "--clients must be between 1 and {CLIENTS_MAX}"
    );
    anyhow::ensure!(
        payloads
            .iter()
            .all(|&p| (1..=PAYLOAD_BYTES_MAX).contains(&p)),
        "--payload must be between 1 and {PAYLOAD_BYTES_MAX} bytes"
    );
    anyhow::ensure!(
        args.load_threads
            .is_none_or(|n| (1..=LOAD_THREADS_MAX).contains(&n)),
        "--load-threads must be between 1 and {LOAD_THREADS_MAX}"
    );
    anyhow::ensure!(
        args.rate.iter().all(|r| r.is_finite() && *r > 0.0),
        "--rate must be positive"
    );
    let mut rates: Vec<f64> = args.rate.clone();
    rates.sort_by(f64::total_cmp);
    rates.dedup();
    let rates = if rates.is_empty() {
        vec![None]
    } else {
        rates.into_iter().map(Some).collect()
    };
    let duration = args.duration.unwrap_or(if args.quick {
        Duration::from_secs(3)
    } else {
        Duration::from_secs(10)
    });
    anyhow::ensure!(!duration.is_zero(), "--duration must be positive");
    let warmup = args.warmup.unwrap_or(if args.quick {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(2)
    });
    Ok(Plan {
        systems: args.systems.clone(),
        clients,
        rates,
        payloads,
        duration,
        warmup,
        load_threads: args.load_threads,
    })
}

pub fn main(args: RunArgs) -> anyhow::Result<()> {
    let plan = plan(&args)?;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = plan.load_threads {
        runtime.worker_threads(threads);
    }
    let runtime = runtime.enable_all().build()?;
    runtime.block_on(run(args, plan))
}

async fn run(args: RunArgs, plan: Plan) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out).with_context(|| format!("create {}", args.out.display()))?;
    // Absolute, because systems write paths into config files that their
    // nodes resolve relative to those files.
    let work = std::fs::canonicalize(&args.out)?.join("work");
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    std::fs::create_dir_all(&work)?;
    let self_exe = std::env::current_exe()?;
    let paxlog_bin = match &args.paxlog_bin {
        Some(p) => p.clone(),
        None => find_paxlog(&self_exe)?,
    };
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let machine = machine();
    println!("machine: {machine}");
    println!(
        "load generator: {} runtime threads",
        tokio::runtime::Handle::current().metrics().num_workers()
    );
    let limits = limits::measure(&work).context("measure fsync and loopback limits")?;
    println!(
        "limits: fdatasync p50 {} µs p99 {} µs; loopback RTT p50 {} µs p99 {} µs; \
         QUIC RTT p50 {} µs p99 {} µs",
        limits.fsync_p50_us,
        limits.fsync_p99_us,
        limits.loopback_rtt_p50_us,
        limits.loopback_rtt_p99_us,
        limits.quic_rtt_p50_us,
        limits.quic_rtt_p99_us
    );

    let points = plan.clients.len() * plan.rates.len();
    let total = (plan.systems.len() * plan.payloads.len() * points) as u64;
    let bar = progress(total);
    let mut rows: Vec<Row> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    for &payload in &plan.payloads {
        for system in &plan.systems {
            let dir = work.join(format!("{system}-{payload}B"));
            std::fs::create_dir_all(&dir)?;
            let ctx = StartCtx {
                dir,
                self_exe: self_exe.clone(),
                paxlog_bin: paxlog_bin.clone(),
                payload_bytes_max: payload,
            };
            bar.set_message(format!("starting {system}"));
            let cluster = match start(system, &ctx).await {
                Ok(c) => c,
                Err(e) => {
                    let msg = format!("{system} ({payload} B): failed to start: {e:#}");
                    bar.suspend(|| eprintln!("{msg}"));
                    failures.push(msg);
                    bar.inc(points as u64);
                    continue;
                }
            };
            let runs = plan
                .clients
                .iter()
                .flat_map(|&c| plan.rates.iter().map(move |&r| (c, r)));
            for (clients, rate) in runs {
                let offered = rate.map_or_else(String::new, |r| format!(" at {r:.0}/s"));
                bar.set_message(format!("{system} {clients} clients × {payload} B{offered}"));
                let spec = LoadSpec {
                    op: args.workload,
                    clients,
                    payload_bytes: payload,
                    warmup: plan.warmup,
                    duration: plan.duration,
                    rate_per_sec: rate,
                };
                match load::run(cluster.as_ref(), spec).await {
                    Ok(result) if result.appends > 0 => {
                        let row = to_row(system, &spec, &result);
                        bar.suspend(|| {
                            println!(
                                "{system:>8} {clients:>4} clients {payload:>5} B{offered}: {:>9.0} appends/s  p50 {:>6} µs  p99 {:>6} µs  p99.9 {:>6} µs  errors {}",
                                row.appends_per_sec, row.p50_us, row.p99_us, row.p999_us, row.errors
                            );
                            if let Some(e) = &result.first_error {
                                println!("         first error: {e}");
                            }
                        });
                        rows.push(row);
                    }
                    Ok(result) => {
                        let msg = format!(
                            "{system} {clients} clients × {payload} B{offered}: no append succeeded ({} errors; first: {})",
                            result.errors,
                            result.first_error.as_deref().unwrap_or("none")
                        );
                        bar.suspend(|| eprintln!("{msg}"));
                        failures.push(msg);
                    }
                    Err(e) => {
                        let msg =
                            format!("{system} {clients} clients × {payload} B{offered}: {e:#}");
                        bar.suspend(|| eprintln!("{msg}"));
                        failures.push(msg);
                    }
                }
                bar.inc(1);
            }
            if let Err(e) = cluster.stop().await {
                failures.push(format!("{system}: stop: {e:#}"));
            }
        }
    }
    bar.finish_and_clear();
    report::write_all(&args.out, &rows, &command, &machine, &limits)?;
    print!("{}", report::table(&rows));
    println!("results in {}", args.out.display());
    if !args.keep {
        std::fs::remove_dir_all(&work)?;
    }
    if !failures.is_empty() {
        anyhow::bail!("{} run(s) failed:\n{}", failures.len(), failures.join("\n"));
    }
    Ok(())
}

async fn start(system: &str, ctx: &StartCtx) -> anyhow::Result<Box<dyn Cluster>> {
    match system {
        "paxlog" => paxlog_sys::start(ctx).await,
        "paxlog-embedded" => paxlog_embedded::start(ctx).await,
        "openraft" => raft::start(ctx).await,
        "etcd" => etcd::start(ctx, etcd::Transport::Grpc).await,
        "etcd-gateway" => etcd::start(ctx, etcd::Transport::Gateway).await,
        "floor" => floor::start(ctx).await,
        other => anyhow::bail!("unknown system {other:?}"),
    }
}

fn to_row(system: &str, spec: &LoadSpec, r: &load::LoadResult) -> Row {
    let secs = r.window.as_secs_f64();
    let h = &r.latency_us;
    Row {
        system: match spec.op {
            load::Op::Append => system.to_string(),
            load::Op::Tail => format!("{system} tail"),
        },
        clients: spec.clients,
        payload: spec.payload_bytes,
        rate_per_sec: spec.rate_per_sec,
        duration_s: secs,
        appends: r.appends,
        errors: r.errors,
        appends_per_sec: r.appends as f64 / secs,
        mb_per_sec: (r.appends as f64 * spec.payload_bytes as f64) / secs / 1e6,
        p50_us: h.value_at_quantile(0.5),
        p90_us: h.value_at_quantile(0.9),
        p99_us: h.value_at_quantile(0.99),
        p999_us: h.value_at_quantile(0.999),
        max_us: h.max(),
        cpu_s: r.nodes.iter().map(|n| n.cpu.as_secs_f64()).sum(),
        node_cpu_s: r.nodes.iter().map(|n| n.cpu.as_secs_f64()).collect(),
        generator_cpu_s: r.generator_cpu.map(|d| d.as_secs_f64()),
        node_peak_rss_mib: r
            .nodes
            .iter()
            .map(|n| n.peak_rss_bytes as f64 / (1024.0 * 1024.0))
            .collect(),
        cdf: report::cdf_points(h),
    }
}

fn progress(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::stderr());
        if let Ok(style) =
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
        {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(200));
    } else {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar
}

/// `paxlog` beside this binary (same target directory and profile); when it
/// is missing and we run under cargo, build it with the same profile.
fn find_paxlog(self_exe: &Path) -> anyhow::Result<PathBuf> {
    let dir = self_exe
        .parent()
        .context("this binary has no parent directory")?;
    let bin = dir.join("paxlog");
    if bin.exists() {
        return Ok(bin);
    }
    let cargo = std::env::var_os("CARGO").with_context(|| {
        format!(
            "no paxlog binary at {}: build it (cargo build --release --workspace --bins) or pass --paxlog-bin",
            bin.display()
        )
    })?;
    let profile = dir
        .file_name()
        .and_then(|n| n.to_str())
        .map(|n| if n == "debug" { "dev" } else { n })
        .unwrap_or("release")
        .to_string();
    eprintln!("building paxlog ({profile} profile)…");
    let status = std::process::Command::new(cargo)
        .args([
            "build",
            "--profile",
            &profile,
            // The workspace's feature set, so RocksDB's C++ is not built a second time.
            "--workspace",
            "--bin",
            "paxlog",
        ])
        .status()?;
    anyhow::ensure!(status.success() && bin.exists(), "building paxlog failed");
    Ok(bin)
}

/// CPU model, cores, memory and kernel, for the report's header.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(str::trim)
        .unwrap_or("unknown CPU");
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / (1024.0 * 1024.0));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{model}, {cores} cores, {mem_gib:.0} GiB RAM, Linux {}",
        kernel.trim()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Wrap {
        #[command(flatten)]
        run: RunArgs,
    }

    fn parse(args: &[&str]) -> anyhow::Result<Plan> {
        let w = Wrap::try_parse_from(std::iter::once("bench").chain(args.iter().copied()))?;
        plan(&w.run)
    }

    #[test]
    fn quick_and_full_defaults() {
        let q = parse(&["--quick"]).expect("quick");
        assert_eq!(q.clients, vec![1, 16, 64]);
        assert_eq!(q.payloads, vec![256]);
        assert_eq!(q.duration, Duration::from_secs(3));
        let f = parse(&[]).expect("full");
        assert_eq!(f.clients, vec![1, 16, 64, 256]);
        assert_eq!(f.payloads, vec![16, 256, 4096]);
        assert_eq!(f.systems.len(), 4);
    }

    #[test]
    fn bad_flags_are_refused() {
        assert!(parse(&["--systems", "zookeeper"]).is_err());
        assert!(parse(&["--systems", "paxlog,paxlog-embedded,etcd-gateway"]).is_ok());
        assert!(parse(&["--clients", "0"]).is_err());
        assert!(parse(&["--payload", "0"]).is_err());
        assert!(parse(&["--duration", "0s"]).is_err());
        assert!(parse(&["--duration", "ten"]).is_err());
        assert!(parse(&["--rate", "-5"]).is_err());
        assert!(parse(&["--rate", "1000,0"]).is_err());
        assert!(parse(&["--load-threads", "0"]).is_err());
        assert!(parse(&["--load-threads", "65"]).is_err());
        assert_eq!(parse(&[]).expect("default").load_threads, None);
        assert_eq!(
            parse(&["--load-threads", "1"]).expect("one").load_threads,
            Some(1)
        );
        let sweep = parse(&["--rate", "5000,1000,5000"]).expect("a sweep");
        assert_eq!(sweep.rates, vec![Some(1000.0), Some(5000.0)]);
        assert_eq!(parse(&[]).expect("closed").rates, vec![None]);
    }
}
