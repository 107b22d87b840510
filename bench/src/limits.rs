//! The hardware's floor, measured in the same run: how long one small
//! fdatasync takes on the data disk, one TCP round trip on loopback, and one
//! round trip over paxlog's own transport (a QUIC peer link with mutual TLS).
//! A replicated log's single-client commit latency cannot beat fsync + RTT;
//! one that speaks QUIC, not fsync + two QUIC round trips (client → leader →
//! follower and back).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use hdrhistogram::Histogram;
use paxlog_net::{generate_certs, NetConfig, NodeEndpoint, NodeTls};
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct Limits {
    pub fsync_p50_us: u64,
    pub fsync_p99_us: u64,
    pub loopback_rtt_p50_us: u64,
    pub loopback_rtt_p99_us: u64,
    /// A 64-byte frame and its echo over a paxlog-net peer link.
    pub quic_rtt_p50_us: u64,
    pub quic_rtt_p99_us: u64,
}

const FSYNC_ROUNDS: usize = 300;
const RTT_ROUNDS: usize = 2_000;

pub fn measure(dir: &Path) -> anyhow::Result<Limits> {
    let fsync = fsync_latency(dir)?;
    let rtt = loopback_rtt()?;
    let quic = quic_rtt(dir).context("QUIC round trip")?;
    Ok(Limits {
        fsync_p50_us: fsync.value_at_quantile(0.5),
        fsync_p99_us: fsync.value_at_quantile(0.99),
        loopback_rtt_p50_us: rtt.value_at_quantile(0.5),
        loopback_rtt_p99_us: rtt.value_at_quantile(0.99),
        quic_rtt_p50_us: quic.value_at_quantile(0.5),
        quic_rtt_p99_us: quic.value_at_quantile(0.99),
    })
}

impl Limits {
    /// The least one commit over QUIC takes: fsync + two round trips.
    pub fn quic_commit_floor_us(&self) -> u64 {
        self.fsync_p50_us + 2 * self.quic_rtt_p50_us
    }
}

/// Appends 256 bytes and fdatasyncs, like a log's smallest commit.
fn fsync_latency(dir: &Path) -> anyhow::Result<Histogram<u64>> {
    let path = dir.join("fsync-probe");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)?;
    let mut hist = Histogram::<u64>::new(3)?;
    let block = [0x5au8; 256];
    for _ in 0..FSYNC_ROUNDS {
        let start = Instant::now();
        file.write_all(&block)?;
        file.sync_data()?;
        hist.record(start.elapsed().as_micros() as u64)?;
    }
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(hist)
}

/// 64-byte ping-pong over a loopback TCP connection with Nagle off.
fn loopback_rtt() -> anyhow::Result<Histogram<u64>> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut conn, _) = listener.accept()?;
        conn.set_nodelay(true)?;
        let mut buf = [0u8; 64];
        for _ in 0..RTT_ROUNDS {
            conn.read_exact(&mut buf)?;
            conn.write_all(&buf)?;
        }
        Ok(())
    });
    let mut conn = TcpStream::connect(addr)?;
    conn.set_nodelay(true)?;
    let mut hist = Histogram::<u64>::new(3)?;
    let mut buf = [7u8; 64];
    for _ in 0..RTT_ROUNDS {
        let start = Instant::now();
        conn.write_all(&buf)?;
        conn.read_exact(&mut buf)?;
        hist.record(start.elapsed().as_micros() as u64)?;
    }
    echo.join()
        .map_err(|_| anyhow::anyhow!("echo thread panicked"))??;
    Ok(hist)
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Ping(Bytes);

/// Ping-pong over a peer link between two endpoints, each on a
/// current-thread runtime of its own thread, as in a `paxlog serve` node.
fn quic_rtt(dir: &Path) -> anyhow::Result<Histogram<u64>> {
    let certs = dir.join("quic-probe-certs");
    generate_certs(&certs, &[1, 2], &[])?;
    // Off the caller's thread: it may be inside the load generator's runtime,
    // where a runtime of our own cannot be entered.
    let probe = certs.clone();
    let result = std::thread::spawn(move || quic_ping_pong(&probe))
        .join()
        .map_err(|_| anyhow::anyhow!("QUIC probe thread panicked"))
        .and_then(|r| r);
    std::fs::remove_dir_all(&certs)?;
    result
}

fn quic_ping_pong(certs: &Path) -> anyhow::Result<Histogram<u64>> {
    let local = SocketAddr::from(([127, 0, 0, 1], 0));
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    };
    let (rt1, rt2) = (runtime()?, runtime()?);
    // Binding registers the UDP socket with the runtime it is entered in.
    let n1 = rt1.block_on(async {
        NodeEndpoint::bind(local, NodeTls::load(certs, 1)?, NetConfig::default())
    })?;
    let n2 = rt2.block_on(async {
        NodeEndpoint::bind(local, NodeTls::load(certs, 2)?, NetConfig::default())
    })?;
    let peers: BTreeMap<_, _> = [(1, n1.local_addr()), (2, n2.local_addr())].into();
    let echo_peers = peers.clone();
    // Dropped when the pings are done (or failed): the echo then stops.
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let echo = std::thread::spawn(move || -> anyhow::Result<()> {
        rt2.block_on(async move {
            let (tx, mut rx) = n2.peers::<Ping>(echo_peers)?;
            loop {
                tokio::select! {
                    _ = &mut stop_rx => break,
                    ping = rx.recv() => match ping {
                        // A lost echo shows as the pinger's timeout.
                        Some((from, ping)) => { let _ = tx.try_send(from, ping); }
                        None => break,
                    },
                }
            }
            n2.shutdown().await;
            Ok(())
        })
    });
    // This thread is off any runtime (`quic_rtt`), so it can drive one.
    let pings = rt1.block_on(async move {
        let (tx, mut rx) = n1.peers::<Ping>(peers)?;
        let ping = Bytes::from(vec![7u8; 64]);
        // The links dial in the background: retry until one echo came back.
        let connected = async {
            loop {
                tx.try_send(2, Ping(ping.clone()))?;
                let wait = tokio::time::timeout(Duration::from_millis(200), rx.recv());
                if let Ok(echo) = wait.await {
                    echo.context("link closed")?;
                    return anyhow::Ok(());
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), connected)
            .await
            .context("no echo within 10 s")??;
        // Echoes of the retries, if any, must not be taken for the first ping's.
        while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(50), rx.recv()).await {}
        let mut hist = Histogram::<u64>::new(3)?;
        for _ in 0..RTT_ROUNDS {
            let start = Instant::now();
            tx.try_send(2, Ping(ping.clone()))?;
            let echo = tokio::time::timeout(Duration::from_secs(5), rx.recv());
            echo.await
                .context("no echo within 5 s")?
                .context("link closed")?;
            hist.record(start.elapsed().as_micros() as u64)?;
        }
        anyhow::Ok(hist)
    });
    // Stopped with its links unpolled, so neither side sees the other's
    // close: a graceful shutdown would log a lost peer into the bench's output.
    drop(rt1);
    drop(stop_tx);
    let hist = pings?;
    echo.join()
        .map_err(|_| anyhow::anyhow!("echo thread panicked"))??;
    Ok(hist)
}
