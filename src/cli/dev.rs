//! `paxlog dev`: a local cluster in one command. Generates certificates,
//! starts each node as its own `paxlog serve` process on free loopback ports,
//! writes `DIR/cluster.toml`, appends and reads back one entry to show the
//! cluster working, then serves until Ctrl-C and stops its children.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use crate::client::Client;
use crate::cluster::{ClusterFile, NodeEntry};

const CLIENT_NAME: &str = "cli";
const READY_TIMEOUT: Duration = Duration::from_secs(30);
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
    std::fs::create_dir_all(args.dir.join("logs"))
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let dir = args.dir.canonicalize().context("resolving --dir")?;
    let ids: Vec<u64> = (1..=args.nodes).collect();
    let certs = dir.join("certs");
    let have_certs = ids
        .iter()
        .all(|id| certs.join(format!("node-{id}.pem")).exists())
        && certs.join(format!("client-{CLIENT_NAME}.pem")).exists();
    if !have_certs {
        paxlog_net::generate_certs(&certs, &ids, &[CLIENT_NAME.to_string()])
            .with_context(|| format!("generating certificates in {}", certs.display()))?;
    }

    let mut file = ClusterFile {
        cluster_id: "dev".into(),
        certs: PathBuf::from("certs"),
        client: Some(CLIENT_NAME.into()),
        nodes: Vec::new(),
    };
    let ports = free_ports(ids.len())?;
    for (id, (addr, admin)) in ids.iter().zip(ports) {
        file.nodes.push(NodeEntry {
            id: *id,
            addr,
            admin: Some(admin),
            data: Some(PathBuf::from(format!("data/node-{id}"))),
            pid: None,
        });
    }
    let cluster_path = dir.join("cluster.toml");
    std::fs::write(&cluster_path, file.to_toml())
        .with_context(|| format!("writing {}", cluster_path.display()))?;

    let exe = std::env::current_exe().context("finding the paxlog executable")?;
    let mut children = Vec::new();
    for node in &mut file.nodes {
        let child = spawn_node(&exe, &dir, &cluster_path, node.id)?;
        node.pid = child.id();
        children.push((node.id, child));
    }
    std::fs::write(&cluster_path, file.to_toml())
        .with_context(|| format!("writing {}", cluster_path.display()))?;

    let outcome = show_it_works(&cluster_path, &mut children).await;
    if let Err(error) = &outcome {
        eprintln!("error: {error:#}");
        eprintln!("node logs are in {}", dir.join("logs").display());
    } else if !args.once {
        let rel = relative(&cluster_path);
        println!();
        println!("The cluster is running. In another terminal, try:");
        println!("  paxlog append --cluster {rel} hello world");
        println!("  seq 1 1000 | paxlog append --cluster {rel}");
        println!("  paxlog read --cluster {rel} --from 1");
        println!("  paxlog tail --cluster {rel} --follow");
        println!("  paxlog status --cluster {rel}");
        println!(
            "  curl http://{}/metrics",
            file.nodes[0]
                .admin
                .map(|a| a.to_string())
                .unwrap_or_default()
        );
        println!("(from a source checkout, `paxlog` is `cargo run --profile ci --`)");
        println!(
            "Node logs: {}. Press Ctrl-C to stop.",
            relative(&dir.join("logs"))
        );
        wait_until_stopped(&mut children).await;
    }
    stop_all(&mut children).await;
    outcome.map(|_| ExitCode::SUCCESS)
}

/// Ports picked by binding port 0; held together so no two are the same.
fn free_ports(n: usize) -> anyhow::Result<Vec<(SocketAddr, SocketAddr)>> {
    let mut held = Vec::new();
    for _ in 0..n {
        let udp = UdpSocket::bind("127.0.0.1:0").context("finding a free UDP port")?;
        let tcp = TcpListener::bind("127.0.0.1:0").context("finding a free TCP port")?;
        held.push((udp.local_addr()?, tcp.local_addr()?, udp, tcp));
    }
    Ok(held.into_iter().map(|(u, t, _, _)| (u, t)).collect())
}

fn spawn_node(exe: &Path, dir: &Path, cluster: &Path, id: u64) -> anyhow::Result<Child> {
    let log_path = dir.join("logs").join(format!("node-{id}.log"));
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    let log_err = log.try_clone()?;
    Command::new(exe)
        .arg("serve")
        .arg("--cluster")
        .arg(cluster)
        .arg("--id")
        .arg(id.to_string())
        .arg("--data")
        .arg(dir.join("data").join(format!("node-{id}")))
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting node {id}"))
}

async fn show_it_works(cluster: &Path, children: &mut [(u64, Child)]) -> anyhow::Result<()> {
    let file = ClusterFile::load(cluster)?;
    let client = Client::from_cluster_file(&file, None, Duration::from_secs(5))?;
    let started = Instant::now();
    let leader = loop {
        for (id, child) in children.iter_mut() {
            if let Some(status) = child.try_wait()? {
                bail!("node {id} exited early with {status}");
            }
        }
        let statuses = client.status_all().await;
        if let Some(leader) = statuses
            .iter()
            .filter_map(|(_, _, s)| s.as_ref().ok())
            .find(|s| s.role == crate::core::Role::Leader)
        {
            break leader.id;
        }
        if started.elapsed() > READY_TIMEOUT {
            bail!("no leader was elected within {READY_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!(
        "paxlog dev: {} nodes up, node {leader} leads (elected in {} ms)",
        children.len(),
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
            println!("appended {value:?} at index {index} and read it back");
        }
        other => bail!("read back {other:?} at index {index}, expected {value:?}"),
    }
    for (id, addr, status) in client.status_all().await {
        match status {
            Ok(s) => println!(
                "  node {id} {addr}: {:<9} ballot {} chosen {} last {}",
                s.role, s.ballot, s.chosen_index, s.last_index
            ),
            Err(e) => println!("  node {id} {addr}: unreachable ({e})"),
        }
    }
    Ok(())
}

async fn wait_until_stopped(children: &mut [(u64, Child)]) {
    let stop = super::serve::shutdown_signal();
    tokio::pin!(stop);
    let any_exit = async {
        let waits = children.iter_mut().map(|(id, child)| {
            let id = *id;
            Box::pin(async move { (id, child.wait().await) })
        });
        futures::future::select_all(waits).await.0
    };
    tokio::select! {
        _ = &mut stop => println!("\nstopping the cluster"),
        (id, status) = any_exit => eprintln!("node {id} exited ({status:?}); stopping the cluster"),
    }
}

async fn stop_all(children: &mut [(u64, Child)]) {
    for (_, child) in children.iter() {
        if let Some(pid) = child.id() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
    }
    for (id, child) in children.iter_mut() {
        match tokio::time::timeout(STOP_GRACE, child.wait()).await {
            Ok(_) => {}
            Err(_) => {
                eprintln!("node {id} did not stop within {STOP_GRACE:?}; killing it");
                let _ = child.kill().await;
            }
        }
    }
}

fn relative(path: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(|p| p.display().to_string()))
        .unwrap_or_else(|| path.display().to_string())
}
