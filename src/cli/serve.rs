use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use paxlog_storage::NodeId;

use paxlog::cluster::{ClusterFile, DEFAULT_CLUSTER_ID};
use paxlog::node::{self, FollowerSync, NodeConfig};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The cluster file; alternatively give --listen, --peer and --certs.
    #[arg(long, env = "PAXLOG_CLUSTER")]
    pub cluster: Option<PathBuf>,
    /// This node's id.
    #[arg(long, env = "PAXLOG_ID")]
    pub id: NodeId,
    /// Data directory (created if missing; remembers its node and cluster ids).
    #[arg(long, env = "PAXLOG_DATA")]
    pub data: PathBuf,
    /// Address to listen on (default: this node's addr in the cluster file).
    #[arg(long, env = "PAXLOG_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Another member, as ID=ADDR; repeat for each peer (without --cluster).
    #[arg(long = "peer", env = "PAXLOG_PEERS", value_delimiter = ',')]
    pub peers: Vec<String>,
    /// Certificate directory (without --cluster).
    #[arg(long, env = "PAXLOG_CERTS")]
    pub certs: Option<PathBuf>,
    /// Cluster id (without --cluster); a data directory refuses another.
    #[arg(long, env = "PAXLOG_CLUSTER_ID")]
    pub cluster_id: Option<String>,
    /// Admin HTTP address for /metrics, /livez, /readyz.
    #[arg(long, env = "PAXLOG_ADMIN")]
    pub admin: Option<SocketAddr>,
    /// Dial peer ID at ADDR instead of its address from --cluster or --peer,
    /// as ID=ADDR; repeatable. Meant for tests that route peer links through
    /// a fault-injecting proxy: the peer is still known by its certificate.
    #[arg(long = "peer-via", value_name = "ID=ADDR")]
    pub peer_via: Vec<String>,
    /// Client certificate names allowed member changes and trims, comma
    /// separated (default: the cluster file's `admins`, else `cli`).
    #[arg(
        long = "admin-clients",
        env = "PAXLOG_ADMIN_CLIENTS",
        value_delimiter = ','
    )]
    pub admin_clients: Vec<String>,
    /// Election timeout range in milliseconds, as MIN..MAX.
    #[arg(long, env = "PAXLOG_ELECTION_TIMEOUT_MS", value_parser = parse_range)]
    pub election_timeout_ms: Option<(u64, u64)>,
    /// Threads that run the node's loop and its QUIC connections (the
    /// writer and RocksDB have threads of their own). With 1, the default,
    /// they share one thread and hand work to each other without waking
    /// another: a node is one loop, and on a 2-core machine shared by three
    /// nodes this spent 5-15 % less CPU per append than two threads. More
    /// help a node with many cores and many client connections.
    #[arg(long, env = "PAXLOG_THREADS", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=THREADS_MAX as i64))]
    pub threads: u16,
    /// Where a follower syncs the accepts it answers: `loop` (the default)
    /// in the node's loop, without handing each write to the writer thread
    /// and back; `writer` on the writer thread, as the leader does.
    #[arg(long, env = "PAXLOG_FOLLOWER_SYNC", value_enum, default_value_t = FollowerSyncArg::Loop)]
    pub follower_sync: FollowerSyncArg,
    /// As leader, ask only a quorum to sync each Accept (`on`: the others
    /// write it unsynced, uncounted) or every follower (`off`).
    #[arg(long, env = "PAXLOG_THRIFTY", value_enum, default_value_t = Switch::On)]
    pub thrifty: Switch,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    On,
    Off,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FollowerSyncArg {
    Loop,
    Writer,
}

/// `--threads` at most: a node has one loop, so more threads only serve
/// more connections in parallel.
pub const THREADS_MAX: u16 = 64;

/// The async runtime `serve` runs on, as `--threads` asks. Its threads are
/// named for `top -H`: `paxlog-worker` (only with more than one thread; with
/// one, the main thread does the work) and `paxlog-blocking` (file work).
pub fn runtime(threads: u16) -> std::io::Result<tokio::runtime::Runtime> {
    let (mut builder, workers) = if threads == 1 {
        (tokio::runtime::Builder::new_current_thread(), 0)
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(usize::from(threads));
        (builder, usize::from(threads))
    };
    // The runtime starts its workers when it is built, before any blocking
    // task can ask for a thread: the first `workers` threads are they.
    let started = std::sync::atomic::AtomicUsize::new(0);
    builder
        .thread_name_fn(move || {
            let n = started.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if n < workers {
                "paxlog-worker".into()
            } else {
                "paxlog-blocking".into()
            }
        })
        .enable_all()
        .build()
}

fn parse_range(s: &str) -> Result<(u64, u64), String> {
    let (a, b) = s
        .split_once("..")
        .ok_or("expected MIN..MAX, e.g. 300..600")?;
    let a: u64 = a.trim().parse().map_err(|e| format!("bad MIN: {e}"))?;
    let b: u64 = b.trim().parse().map_err(|e| format!("bad MAX: {e}"))?;
    if a == 0 || a >= b {
        return Err("need 0 < MIN < MAX".into());
    }
    Ok((a, b))
}

/// `ID=ADDR`, as `--peer` and `--peer-via` take it; `flag` names the flag in errors.
fn parse_peer(flag: &str, s: &str) -> anyhow::Result<(NodeId, SocketAddr)> {
    let (id, addr) = s
        .split_once('=')
        .with_context(|| format!("{flag} {s:?}: expected ID=ADDR"))?;
    let id: NodeId = id
        .trim()
        .parse()
        .with_context(|| format!("{flag} {s:?}: bad id"))?;
    let addr: SocketAddr = addr
        .trim()
        .parse()
        .with_context(|| format!("{flag} {s:?}: bad address"))?;
    Ok((id, addr))
}

/// The `--peer-via` overrides, each naming another member once.
fn peer_via(
    args: &Args,
    members: &BTreeMap<NodeId, SocketAddr>,
) -> anyhow::Result<BTreeMap<NodeId, SocketAddr>> {
    let mut via = BTreeMap::new();
    for value in &args.peer_via {
        let (id, addr) = parse_peer("--peer-via", value)?;
        if id == args.id {
            bail!("--peer-via {value:?}: node {id} is this node, not a peer");
        }
        if !members.contains_key(&id) {
            let known: Vec<String> = members.keys().map(ToString::to_string).collect();
            bail!(
                "--peer-via {value:?}: node {id} is not a member (members: {})",
                known.join(", ")
            );
        }
        if via.insert(id, addr).is_some() {
            bail!("--peer-via: node {id} is given twice");
        }
    }
    Ok(via)
}

pub fn node_config(args: &Args) -> anyhow::Result<NodeConfig> {
    let (cluster_id, mut members, certs, admin, admins) = match &args.cluster {
        Some(path) => {
            if !args.peers.is_empty() || args.certs.is_some() {
                bail!("give either --cluster or --peer/--certs, not both");
            }
            let file = ClusterFile::load(path)?;
            let entry = file
                .node(args.id)
                .with_context(|| format!("node {} is not in {}", args.id, path.display()))?;
            (
                file.cluster_id.clone(),
                file.addrs(),
                file.certs.clone(),
                entry.admin,
                file.admin_names(),
            )
        }
        None => {
            let certs = args
                .certs
                .clone()
                .context("without --cluster, --certs is required")?;
            let listen = args
                .listen
                .context("without --cluster, --listen is required")?;
            let mut members = BTreeMap::new();
            members.insert(args.id, listen);
            for peer in &args.peers {
                let (id, addr) = parse_peer("--peer", peer)?;
                if members.insert(id, addr).is_some() {
                    bail!("node {id} is given twice");
                }
            }
            let cluster_id = args
                .cluster_id
                .clone()
                .unwrap_or_else(|| DEFAULT_CLUSTER_ID.into());
            let admins = vec![node::DEFAULT_ADMIN.to_string()];
            (cluster_id, members, certs, None, admins)
        }
    };
    if let Some(listen) = args.listen {
        members.insert(args.id, listen);
    }
    let via = peer_via(args, &members)?;
    let mut config = NodeConfig::new(cluster_id, args.id, members, certs, args.data.clone())?;
    config.peer_via = via;
    config.admin = args.admin.or(admin);
    config.admins = if args.admin_clients.is_empty() {
        admins
    } else {
        args.admin_clients.clone()
    };
    config.follower_sync = match args.follower_sync {
        FollowerSyncArg::Loop => FollowerSync::Loop,
        FollowerSyncArg::Writer => FollowerSync::Writer,
    };
    config.core.thrifty = args.thrifty == Switch::On;
    if let Some((min, max)) = args.election_timeout_ms {
        config.core.election_timeout_min_ms = min;
        config.core.election_timeout_max_ms = max;
    }
    Ok(config)
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = node_config(&args)?;
    let node_id = config.node_id;
    let handle = node::start(config).await.with_context(|| {
        format!(
            "starting node {node_id} with data in {}",
            args.data.display()
        )
    })?;
    let stop = shutdown_signal();
    eprintln!(
        "paxlog node {node_id} serving on {}{}",
        handle.local_addr(),
        handle
            .admin_addr()
            .map(|a| format!(", admin on http://{a}"))
            .unwrap_or_default()
    );
    let stopper = handle.stopper();
    tokio::spawn(async move {
        stop.await;
        eprintln!("paxlog node {node_id}: shutting down");
        stopper.stop();
    });
    handle.wait().await?;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGTERM or Ctrl-C. The handlers are installed when this is
/// called, not when the future is first polled: a signal that comes right
/// after the caller announced it serves is caught, instead of killing the
/// process by the default action (seen: `paxlog dev` dying of the Ctrl-C
/// its test sent just after "Press Ctrl-C to stop").
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let interrupt = signal(SignalKind::interrupt()).ok();
    let terminate = signal(SignalKind::terminate()).ok();
    async move {
        tokio::select! {
            _ = recv(interrupt) => {}
            _ = recv(terminate) => {}
        }
    }
}

/// The next delivery of `signal`; never, if its handler could not be installed.
async fn recv(signal: Option<tokio::signal::unix::Signal>) {
    match signal {
        Some(mut s) => {
            s.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(peer_via: &[&str]) -> Args {
        Args {
            cluster: None,
            id: 1,
            data: PathBuf::from("unused"),
            listen: Some("127.0.0.1:7001".parse().expect("literal")),
            peers: vec!["2=127.0.0.1:7002".into(), "3=127.0.0.1:7003".into()],
            certs: Some(PathBuf::from("unused")),
            cluster_id: None,
            admin: None,
            peer_via: peer_via.iter().map(|s| s.to_string()).collect(),
            election_timeout_ms: None,
            admin_clients: Vec::new(),
            threads: 1,
            follower_sync: FollowerSyncArg::Loop,
            thrifty: Switch::On,
        }
    }

    /// `serve --id 1 --data d FLAG VALUE`, parsed.
    fn parse_serve(flag: &str, value: &str) -> Result<Args, String> {
        #[derive(clap::Parser)]
        struct Serve {
            #[command(flatten)]
            args: Args,
        }
        let argv = ["serve", "--id", "1", "--data", "d", flag, value];
        <Serve as clap::Parser>::try_parse_from(argv)
            .map(|s| s.args)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn threads_pick_the_runtime_and_out_of_range_counts_are_refused() {
        use tokio::runtime::RuntimeFlavor;
        let one = runtime(1).expect("runtime");
        assert_eq!(one.handle().runtime_flavor(), RuntimeFlavor::CurrentThread);
        let three = runtime(3).expect("runtime");
        assert_eq!(three.handle().runtime_flavor(), RuntimeFlavor::MultiThread);
        assert_eq!(three.metrics().num_workers(), 3);
        let parse = |threads: &str| {
            parse_serve("--threads", threads)
                .map(|args| assert_eq!(args.threads.to_string(), threads))
        };
        assert_eq!(parse("64"), Ok(()));
        for bad in ["0", "65", "two"] {
            let error = parse(bad).expect_err("refused");
            assert!(error.contains("--threads"), "{bad}: {error}");
        }
        let sync = |value: &str| parse_serve("--follower-sync", value).map(|a| a.follower_sync);
        assert_eq!(sync("writer"), Ok(FollowerSyncArg::Writer));
        assert_eq!(sync("loop"), Ok(FollowerSyncArg::Loop));
        let error = sync("thread").expect_err("refused");
        assert!(error.contains("--follower-sync"), "{error}");
        let thrifty = |value: &str| parse_serve("--thrifty", value).map(|a| a.thrifty);
        assert_eq!(thrifty("off"), Ok(Switch::Off));
        let error = thrifty("maybe").expect_err("refused");
        assert!(error.contains("--thrifty"), "{error}");
    }

    #[test]
    fn followers_sync_in_the_loop_unless_told_otherwise() {
        let config = node_config(&args(&[])).expect("valid");
        assert_eq!(config.follower_sync, FollowerSync::Loop);
        let mut writer = args(&[]);
        writer.follower_sync = FollowerSyncArg::Writer;
        let config = node_config(&writer).expect("valid");
        assert_eq!(config.follower_sync, FollowerSync::Writer);
        assert!(config.core.thrifty, "thrifty is the default");
        writer.thrifty = Switch::Off;
        assert!(!node_config(&writer).expect("valid").core.thrifty);
    }

    fn error(peer_via: &[&str]) -> String {
        format!(
            "{:#}",
            node_config(&args(peer_via)).expect_err("the override is refused")
        )
    }

    #[test]
    fn peer_via_changes_only_where_that_peer_is_dialed() {
        let config = node_config(&args(&["3=127.0.0.1:9003"])).expect("valid overrides");
        let dial = config.peer_dial_addrs();
        assert_eq!(dial[&2].to_string(), "127.0.0.1:7002");
        assert_eq!(dial[&3].to_string(), "127.0.0.1:9003");
        assert_eq!(config.members[&3].to_string(), "127.0.0.1:7003");
        assert_eq!(config.listen.to_string(), "127.0.0.1:7001");
    }

    #[test]
    fn peer_via_refuses_malformed_values_and_non_peers() {
        let malformed = error(&["3"]);
        assert!(malformed.contains("expected ID=ADDR"), "{malformed}");
        assert!(error(&["x=127.0.0.1:1"]).contains("bad id"));
        assert!(error(&["3=nowhere"]).contains("bad address"));
        let stranger = error(&["9=127.0.0.1:1"]);
        assert!(
            stranger.contains("node 9 is not a member (members: 1, 2, 3)"),
            "{stranger}"
        );
        assert!(error(&["1=127.0.0.1:1"]).contains("is this node"));
        let twice = error(&["2=127.0.0.1:1", "2=127.0.0.1:2"]);
        assert!(twice.contains("node 2 is given twice"), "{twice}");
    }
}
