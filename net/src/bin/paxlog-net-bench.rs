//! Loopback micro-benchmark of one peer link: frames/s and MB/s.
//!
//! `paxlog-net-bench [frames_per_size] [size_bytes ...]`
//! (defaults: 200000 frames, sizes 256 and 4096). Not a test: no assertions
//! on speed, just figures for `net/README.md`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use paxlog_net::{generate_certs, NetConfig, NodeEndpoint, NodeTls, SendError};

#[derive(serde::Serialize, serde::Deserialize)]
struct Payload(Bytes);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let frames: u64 = match args.first() {
        Some(n) => n.parse()?,
        None => 200_000,
    };
    let sizes: Vec<usize> = if args.len() > 1 {
        args[1..]
            .iter()
            .map(|s| s.parse())
            .collect::<Result<_, _>>()?
    } else {
        vec![256, 4096]
    };
    let dir = std::env::temp_dir().join(format!("paxlog-net-bench-{}", std::process::id()));
    generate_certs(&dir, &[1, 2], &[])?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(async {
        println!("| frame payload | frames | seconds | frames/s | MB/s |");
        println!("| --- | --- | --- | --- | --- |");
        for &size in &sizes {
            run(&dir, frames, size).await?;
        }
        Ok::<_, Box<dyn std::error::Error>>(())
    });
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run(
    dir: &std::path::Path,
    frames: u64,
    size: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let local = SocketAddr::from(([127, 0, 0, 1], 0));
    let n1 = NodeEndpoint::bind(local, NodeTls::load(dir, 1)?, NetConfig::default())?;
    let n2 = NodeEndpoint::bind(local, NodeTls::load(dir, 2)?, NetConfig::default())?;
    let peers: BTreeMap<_, _> = [(1, n1.local_addr()), (2, n2.local_addr())].into();
    let (tx1, _rx1) = n1.peers::<Payload>(peers.clone())?;
    let (_tx2, mut rx2) = n2.peers::<Payload>(peers)?;
    let payload = Bytes::from(vec![0xA5u8; size]);

    // Warm up: the link is connected once one frame made it.
    tx1.try_send(2, Payload(payload.clone()))?;
    rx2.recv().await.ok_or("link closed")?;

    let started = Instant::now();
    let sender = tokio::spawn(async move {
        let mut sent = 0;
        while sent < frames {
            match tx1.try_send(2, Payload(payload.clone())) {
                Ok(()) => sent += 1,
                Err(SendError::Full(_)) => tokio::task::yield_now().await,
                Err(e) => return Err(e),
            }
        }
        Ok(tx1)
    });
    let mut received = 0;
    while received < frames {
        rx2.recv().await.ok_or("link closed")?;
        received += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    let _tx1 = sender.await??;
    let mb = (frames as f64 * size as f64) / 1e6;
    println!(
        "| {size} B | {frames} | {seconds:.2} | {:.0} | {:.1} |",
        frames as f64 / seconds,
        mb / seconds
    );
    n1.shutdown().await;
    n2.shutdown().await;
    Ok(())
}
