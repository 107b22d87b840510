//! What every benchmarked system provides: a way to start three nodes as
//! separate processes on loopback, and a client that appends one payload at a
//! time and returns only once the system acknowledged it as durable on a
//! quorum (fsync before acknowledgement, on every system).

use std::future::Future;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::pin::Pin;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One closed-loop client: at most one request outstanding.
pub trait Appender: Send {
    /// Resolves once `payload` is acknowledged as committed (durable on a quorum).
    fn append<'a>(&'a mut self, payload: &'a [u8]) -> BoxFuture<'a, anyhow::Result<()>>;
    /// A linearizable read of the log's end, through the system's own
    /// linearizable read path (no write where the system has one).
    fn tail(&mut self) -> BoxFuture<'_, anyhow::Result<()>>;
}

/// A running 3-node cluster. Its node processes are spawned with
/// `kill_on_drop`, so dropping it without `stop` still leaves nothing behind.
pub trait Cluster: Send + Sync {
    /// Node process ids, for CPU-seconds and peak-RSS accounting.
    fn pids(&self) -> Vec<u32>;
    /// Opens client number `client` (0-based); called once per client before the run.
    fn connect(&self, client: usize) -> BoxFuture<'_, anyhow::Result<Box<dyn Appender>>>;
    /// Stops every node process (SIGTERM, then SIGKILL after a bound) and waits for it.
    fn stop(self: Box<Self>) -> BoxFuture<'static, anyhow::Result<()>>;
}

/// What a system's `start` gets.
#[derive(Clone, Debug)]
pub struct StartCtx {
    /// A fresh, empty directory owned by this cluster (data, certs, logs).
    pub dir: PathBuf,
    /// This benchmark binary, for systems whose nodes run as its hidden
    /// subcommands (`raft-node`, `floor-node`).
    pub self_exe: PathBuf,
    /// The `paxlog` binary.
    pub paxlog_bin: PathBuf,
    /// Largest payload the run will append, so systems can size their frame limits.
    pub payload_bytes_max: usize,
}

/// `n` loopback addresses with ports that were free a moment ago (both UDP
/// and TCP, so either transport can use them).
pub fn free_addrs(n: usize) -> anyhow::Result<Vec<SocketAddr>> {
    let mut held = Vec::new();
    let mut addrs = Vec::new();
    while addrs.len() < n {
        let tcp = TcpListener::bind("127.0.0.1:0")?;
        let addr = tcp.local_addr()?;
        // A port free for TCP may be taken for UDP; skip it then.
        if let Ok(udp) = UdpSocket::bind(addr) {
            addrs.push(addr);
            held.push((tcp, udp));
        }
    }
    Ok(addrs)
}
