//! The hardware's floor, measured in the same run: how long one small
//! fdatasync takes on the data disk, and one TCP round trip on loopback. A
//! replicated log's single-client commit latency cannot beat fsync + RTT.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::Instant;

use hdrhistogram::Histogram;
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct Limits {
    pub fsync_p50_us: u64,
    pub fsync_p99_us: u64,
    pub loopback_rtt_p50_us: u64,
    pub loopback_rtt_p99_us: u64,
}

const FSYNC_ROUNDS: usize = 300;
const RTT_ROUNDS: usize = 2_000;

pub fn measure(dir: &Path) -> anyhow::Result<Limits> {
    let fsync = fsync_latency(dir)?;
    let rtt = loopback_rtt()?;
    Ok(Limits {
        fsync_p50_us: fsync.value_at_quantile(0.5),
        fsync_p99_us: fsync.value_at_quantile(0.99),
        loopback_rtt_p50_us: rtt.value_at_quantile(0.5),
        loopback_rtt_p99_us: rtt.value_at_quantile(0.99),
    })
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
