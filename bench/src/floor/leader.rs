//! The floor's leader: gathers every client request that arrived into one
//! batch, sends it to both followers and appends + fdatasyncs it to its own
//! log meanwhile, and replies once its own sync and one follower's ack are
//! in (a majority of 3). One batch in flight; the next gathers meanwhile.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::pending::{BatchLimits, HasBytes, Pending};
use super::wire::{self, FrameError};

/// Followers start alongside the leader; they bind within this bound.
const FOLLOWER_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A batch not acknowledged by any follower in this bound ends the leader.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);
/// Committed batches waiting for their replies to be written.
const REPLY_QUEUE: usize = 4;
/// Acks waiting for the batch loop; it drains them every batch.
const ACK_QUEUE: usize = 1024;
/// Connection threads only read one frame at a time.
const CONN_STACK_BYTES: usize = 128 * 1024;

pub struct LeaderConfig {
    pub listen: SocketAddr,
    pub followers: Vec<SocketAddr>,
    pub log: File,
    pub payload_bytes_max: usize,
    pub batch: BatchLimits,
    pub connections_max: usize,
}

struct Request {
    conn: Arc<TcpStream>,
    payload: Vec<u8>,
}

impl HasBytes for Request {
    fn bytes(&self) -> usize {
        self.payload.len()
    }
}

/// A batch whose entries are durable on a majority: `conns[i]` gets index `first + i`.
struct Committed {
    first: u64,
    conns: Vec<Arc<TcpStream>>,
}

struct Ack {
    follower: usize,
    index: u64,
}

pub fn run(cfg: LeaderConfig) -> anyhow::Result<()> {
    let followers = cfg
        .followers
        .iter()
        .map(|&addr| connect_follower(addr))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (ack_tx, acks) = mpsc::sync_channel(ACK_QUEUE);
    let mut senders = Vec::new();
    for (follower, stream) in followers.into_iter().enumerate() {
        let reader = stream.try_clone()?;
        let tx = ack_tx.clone();
        std::thread::Builder::new()
            .name(format!("acks-{follower}"))
            .spawn(move || read_acks(follower, reader, tx))?;
        senders.push(Some(stream));
    }
    // Only the ack threads hold senders now: `recv` fails once both followers are gone.
    drop(ack_tx);

    let pending = Arc::new(Pending::new(cfg.batch));
    let listener = TcpListener::bind(cfg.listen).with_context(|| format!("bind {}", cfg.listen))?;
    {
        let pending = Arc::clone(&pending);
        let (payload_max, conns_max) = (cfg.payload_bytes_max, cfg.connections_max);
        std::thread::Builder::new()
            .name("accept".into())
            .spawn(move || accept_clients(listener, pending, payload_max, conns_max))?;
    }
    let (reply_tx, replies) = mpsc::sync_channel(REPLY_QUEUE);
    std::thread::Builder::new()
        .name("reply".into())
        .spawn(move || write_replies(replies))?;

    batch_loop(cfg.log, &pending, &mut senders, &acks, &reply_tx)
}

fn connect_follower(addr: SocketAddr) -> anyhow::Result<TcpStream> {
    let deadline = Instant::now() + FOLLOWER_CONNECT_TIMEOUT;
    loop {
        match TcpStream::connect(addr) {
            Ok(s) => {
                s.set_nodelay(true)?;
                return Ok(s);
            }
            Err(_) if Instant::now() < deadline => {
                // Polls a process that is starting up; there is no event to wait on.
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e).with_context(|| format!("connect to follower {addr}")),
        }
    }
}

fn batch_loop(
    mut log: File,
    pending: &Pending<Request>,
    followers: &mut [Option<TcpStream>],
    acks: &Receiver<Ack>,
    replies: &SyncSender<Committed>,
) -> anyhow::Result<()> {
    // Invariant: the index the next batch's first entry gets; indices start at 1.
    let mut next_index: u64 = 1;
    // Invariant: `acked[f]` is the highest index follower `f` has made durable.
    let mut acked = vec![0u64; followers.len()];
    let mut buf = Vec::new();
    loop {
        let batch = pending.take();
        assert!(
            !batch.is_empty(),
            "Pending::take returns at least one request"
        );
        let first = next_index;
        let last = first + batch.len() as u64 - 1;
        wire::encode_batch(&mut buf, first, batch.iter().map(|r| &r.payload[..]));
        // Sending first hands the bytes to the kernel in microseconds; the
        // followers then write and sync while this thread syncs its own copy.
        for (f, slot) in followers.iter_mut().enumerate() {
            if let Some(stream) = slot {
                if let Err(e) = stream.write_all(&buf) {
                    eprintln!("floor leader: follower {f} lost while sending: {e}");
                    *slot = None;
                }
            }
        }
        log.write_all(&buf).context("append to the leader's log")?;
        log.sync_data().context("fdatasync the leader's log")?;
        let deadline = Instant::now() + ACK_TIMEOUT;
        while !acked.iter().any(|&a| a >= last) {
            let left = deadline.saturating_duration_since(Instant::now());
            match acks.recv_timeout(left) {
                Ok(Ack { follower, index }) => acked[follower] = acked[follower].max(index),
                Err(RecvTimeoutError::Timeout) => anyhow::bail!(
                    "no follower acknowledged entries {first}..={last} within {ACK_TIMEOUT:?}"
                ),
                Err(RecvTimeoutError::Disconnected) => {
                    anyhow::bail!("both followers are gone; entries {first}..={last} cannot commit")
                }
            }
        }
        // The slower follower's acks, so its queue never fills.
        while let Ok(Ack { follower, index }) = acks.try_recv() {
            acked[follower] = acked[follower].max(index);
        }
        next_index = last + 1;
        let conns = batch.into_iter().map(|r| r.conn).collect();
        replies
            .send(Committed { first, conns })
            .map_err(|_| anyhow::anyhow!("the reply thread is gone"))?;
    }
}

fn read_acks(follower: usize, mut stream: TcpStream, tx: SyncSender<Ack>) {
    let mut index = [0u8; 8];
    loop {
        if let Err(e) = stream.read_exact(&mut index) {
            eprintln!("floor leader: follower {follower} stopped acknowledging: {e}");
            return;
        }
        let index = u64::from_be_bytes(index);
        if tx.send(Ack { follower, index }).is_err() {
            return;
        }
    }
}

fn write_replies(replies: Receiver<Committed>) {
    for Committed { first, conns } in replies {
        for (index, conn) in (first..).zip(conns) {
            // A client that left needs no reply; its reader thread ends too.
            let _ = (&*conn).write_all(&index.to_be_bytes());
        }
    }
}

fn accept_clients(
    listener: TcpListener,
    pending: Arc<Pending<Request>>,
    payload_bytes_max: usize,
    connections_max: usize,
) {
    let open = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                eprintln!("floor leader: accept: {e}");
                continue;
            }
        };
        if open.load(Ordering::Relaxed) >= connections_max {
            eprintln!("floor leader: refusing a client: {connections_max} connections open");
            continue;
        }
        open.fetch_add(1, Ordering::Relaxed);
        let (pending, open) = (Arc::clone(&pending), Arc::clone(&open));
        let spawned = std::thread::Builder::new()
            .name("client".into())
            .stack_size(CONN_STACK_BYTES)
            .spawn(move || {
                serve_client(stream, &pending, payload_bytes_max);
                open.fetch_sub(1, Ordering::Relaxed);
            });
        if let Err(e) = spawned {
            eprintln!("floor leader: cannot start a client thread: {e}");
        }
    }
}

/// Reads one client's frames into the queue until it leaves or misbehaves;
/// the reply thread answers on the same socket.
fn serve_client(stream: TcpStream, pending: &Pending<Request>, payload_bytes_max: usize) {
    let peer = stream
        .peer_addr()
        .map_or_else(|_| "?".to_string(), |a| a.to_string());
    if let Err(e) = stream.set_nodelay(true) {
        eprintln!("floor leader: client {peer}: set TCP_NODELAY: {e}");
        return;
    }
    let conn = Arc::new(stream);
    loop {
        match wire::read_frame(&mut &*conn, payload_bytes_max) {
            Ok(payload) => pending.push(Request {
                conn: Arc::clone(&conn),
                payload,
            }),
            Err(FrameError::Closed) => return,
            Err(e) => {
                eprintln!("floor leader: client {peer}: {e}; closing this connection");
                // Queued requests of this client still hold the socket; close it now.
                let _ = conn.shutdown(Shutdown::Both);
                return;
            }
        }
    }
}
