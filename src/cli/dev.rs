//! `paxlog dev`: a local cluster in one command. Generates certificates,
//! starts each node as its own `paxlog serve` process on free loopback ports,
//! writes `DIR/cluster.toml`, appends and reads back one entry to show the
//! cluster working, then serves until Ctrl-C and stops its children.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use paxlog::client::Client;
use paxlog::core::Role;
use paxlog::launch::{LaunchConfig, LaunchError, LocalCluster};

/// Writes a line, ignoring a closed stream: the report is for whoever
/// watches, and a reader that went away (`paxlog dev | head`) must not take
/// the cluster down with a panic.
macro_rules! say {
    ($stream:ident) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::$stream());
    }};
    ($stream:ident, $($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::$stream(), $($arg)*);
    }};
}

const CLIENT_NAME: &str = "cli";
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const READY_RETRY: Duration = Duration::from_millis(100);
const STOP_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Number of nodes (1, 3 or 5).
    #[arg(long, default_value_t = 3)]
    pub nodes: u64,
    /// Directory for certificates, data, logs and cluster.toml (reused if present).
    #[arg(long, default_value = "paxlog-dev")]
    pub dir: PathBuf,
    /// Delete the directory's certificates and data first.
    #[arg(long)]
    pub fresh: bool,
    /// Start the cluster, show it working, stop it and exit (no waiting for Ctrl-C).
    #[arg(long)]
    pub once: bool,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    if !matches!(args.nodes, 1 | 3 | 5) {
        bail!(
            "--nodes must be 1, 3 or 5 (a majority must survive a failure), not {}",
            args.nodes
        );
    }
    if args.fresh && args.dir.exists() {
        std::fs::remove_dir_all(&args.dir)
            .with_context(|| format!("removing {}", args.dir.display()))?;
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let dir = args.dir.canonicalize().context("resolving --dir")?;
    let config = LaunchConfig {
        dir: dir.clone(),
        exe: std::env::current_exe().context("finding the paxlog executable")?,
        nodes: args.nodes,
        cluster_id: "dev".into(),
        client: CLIENT_NAME.into(),
        admin: true,
        rust_log: std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
    };
    let mut cluster = LocalCluster::start(config)?;

    let outcome = show_it_works(&mut cluster).await;
    if let Err(error) = &outcome {
        say!(stderr, "error: {error:#}");
        say!(stderr, "node logs are in {}", dir.join("logs").display());
    } else if !args.once {
        let rel = relative(cluster.cluster_path());
        say!(stdout);
        say!(stdout, "The cluster is running. In another terminal, try:");
        say!(stdout, "  paxlog append --cluster {rel} hello world");
        say!(stdout, "  seq 1 1000 | paxlog append --cluster {rel}");
        say!(stdout, "  paxlog read --cluster {rel} --from 1");
        say!(stdout, "  paxlog tail --cluster {rel} --follow");
        say!(stdout, "  paxlog status --cluster {rel}");
        say!(
            stdout,
            "  curl http://{}/metrics",
            cluster.file().nodes[0]
                .admin
                .map(|a| a.to_string())
                .unwrap_or_default()
        );
        say!(
            stdout,
            "(from a source checkout, `paxlog` is `cargo run --profile ci --`)"
        );
        let stop = super::serve::shutdown_signal();
        say!(
            stdout,
            "Node logs: {}. Press Ctrl-C to stop.",
            relative(&dir.join("logs"))
        );
        wait_until_stopped(&mut cluster, stop).await;
    }
    for id in cluster.stop(STOP_GRACE).await {
        say!(
            stderr,
            "node {id} did not stop within {STOP_GRACE:?}; killing it"
        );
    }
    outcome.map(|_| ExitCode::SUCCESS)
}

async fn show_it_works(cluster: &mut LocalCluster) -> anyhow::Result<()> {
    let client = cluster.client(Duration::from_secs(5))?;
    let started = Instant::now();
    let leader = cluster
        .wait_ready(READY_TIMEOUT, READY_RETRY, || leader_of(&client))
        .await
        .map_err(|e| match e {
            LaunchError::NotReady(_) => {
                anyhow::anyhow!("no leader was elected within {READY_TIMEOUT:?}")
            }
            other => other.into(),
        })?;
    say!(
        stdout,
        "paxlog dev: {} nodes up, node {leader} leads (elected in {} ms)",
        cluster.ids().len(),
        started.elapsed().as_millis()
    );
    let value = format!(
        "hello from paxlog dev at {}",
        humantime::format_rfc3339_seconds(std::time::SystemTime::now())
    );
    let index = client
        .append(Bytes::from(value.clone()))
        .await
        .context("appending a first entry")?;
    let back = client
        .read(index, Some(index))
        .await
        .context("reading it back")?;
    match back.first() {
        Some(entry) if entry.payload == value.as_bytes() => {
            say!(
                stdout,
                "appended {value:?} at index {index} and read it back"
            );
        }
        other => bail!("read back {other:?} at index {index}, expected {value:?}"),
    }
    for (id, addr, status) in client.status_all().await {
        match status {
            Ok(s) => say!(
                stdout,
                "  node {id} {addr}: {:<9} ballot {} chosen {} last {}",
                s.role,
                s.ballot,
                s.chosen_index,
                s.last_index
            ),
            Err(e) => say!(stdout, "  node {id} {addr}: unreachable ({e})"),
        }
    }
    Ok(())
}

async fn leader_of(client: &Client) -> Result<Option<u64>, paxlog::client::ClientError> {
    let statuses = client.status_all().await;
    Ok(statuses
        .iter()
        .filter_map(|(_, _, s)| s.as_ref().ok())
        .find(|s| s.role == Role::Leader)
        .map(|s| s.id))
}

async fn wait_until_stopped(
    cluster: &mut LocalCluster,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    // A node that dies is reported, and the others keep serving: replacing
    // a dead node (README's runbook) is something to try against this.
    loop {
        tokio::select! {
            _ = &mut stop => {
                say!(stdout, "\nstopping the cluster");
                return;
            }
            exit = cluster.any_exit() => match exit {
                Ok((id, status)) => {
                    say!(stderr, "node {id} exited ({status}); the others keep serving (Ctrl-C stops them)");
                    if cluster.ids().iter().all(|&n| !cluster.is_running(n)) {
                        say!(stderr, "no node is running; stopping");
                        return;
                    }
                }
                Err(e) => {
                    say!(stderr, "cannot watch the nodes ({e}); stopping the cluster");
                    return;
                }
            },
        }
    }
}

fn relative(path: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(|p| p.display().to_string()))
        .unwrap_or_else(|| path.display().to_string())
}
