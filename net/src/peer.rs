//! Peer links: one ordered, pipelined unidirectional stream per direction
//! per pair of nodes, with bounded queues on both ends.
//!
//! Outbound: [`PeerSender::try_send`] encodes on the caller's thread and puts
//! the frame in the peer's bounded queue (or answers `Full`); one task per
//! peer dials, opens one uni stream and writes frames in order, reconnecting
//! with backoff when the connection dies (frames in flight then are lost;
//! Paxos retransmits). Inbound: every accepted peer connection gets a task
//! that reads its uni streams and pushes `(sender, msg)` into one bounded
//! channel, awaiting when it is full so that QUIC flow control pushes back.

use std::collections::{BTreeMap, HashMap};
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn, Instrument};

use crate::backoff::Backoff;
use crate::dial::{close_code, Dialer};
use crate::frame::{encode, FrameReader};
use crate::{NetConfig, NodeId, SendError};

/// Queues messages to peers. Cheap to clone.
#[derive(Debug)]
pub struct PeerSender<M> {
    /// Invariant: one bounded queue per configured peer, never resized.
    queues: Arc<BTreeMap<NodeId, mpsc::Sender<Bytes>>>,
    frame_bytes_max: usize,
    _msg: PhantomData<fn(&M)>,
}

impl<M> Clone for PeerSender<M> {
    fn clone(&self) -> Self {
        Self {
            queues: self.queues.clone(),
            frame_bytes_max: self.frame_bytes_max,
            _msg: PhantomData,
        }
    }
}

impl<M: Serialize> PeerSender<M> {
    /// Queues `msg` for peer `to` without waiting. `Full` means the message
    /// was dropped because the link is slow or down.
    pub fn try_send(&self, to: NodeId, msg: M) -> Result<(), SendError> {
        let queue = self.queues.get(&to).ok_or(SendError::UnknownPeer(to))?;
        // Refuse before encoding: a full queue is the common overload case.
        if queue.capacity() == 0 {
            return Err(SendError::Full(to));
        }
        let frame =
            encode(&msg, self.frame_bytes_max).map_err(|source| SendError::Frame { to, source })?;
        queue.try_send(frame).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SendError::Full(to),
            mpsc::error::TrySendError::Closed(_) => SendError::Closed(to),
        })
    }

    /// The configured peers.
    pub fn peers(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.queues.keys().copied()
    }

    /// Frames queued for `to` and not yet handed to QUIC.
    pub fn queued(&self, to: NodeId) -> Option<usize> {
        self.queues
            .get(&to)
            .map(|q| q.max_capacity() - q.capacity())
    }
}

/// Messages from all peers, each tagged with the sender proven by its certificate.
#[derive(Debug)]
pub struct PeerReceiver<M> {
    pub(crate) rx: mpsc::Receiver<(NodeId, M)>,
}

impl<M> PeerReceiver<M> {
    /// The next message; `None` once the endpoint shut down.
    pub async fn recv(&mut self) -> Option<(NodeId, M)> {
        self.rx.recv().await
    }

    pub fn try_recv(&mut self) -> Option<(NodeId, M)> {
        self.rx.try_recv().ok()
    }
}

/// Starts one outbound link task per peer; returns the sender and the tasks.
pub(crate) fn start_links<M: Serialize>(
    dialer: Dialer,
    peers: &BTreeMap<NodeId, SocketAddr>,
    cfg: &NetConfig,
) -> (PeerSender<M>, Vec<tokio::task::JoinHandle<()>>) {
    let mut queues = BTreeMap::new();
    let mut tasks = Vec::new();
    for (&id, &addr) in peers {
        let (tx, rx) = mpsc::channel(cfg.peer_queue_capacity);
        queues.insert(id, tx);
        let span = tracing::info_span!("peer_link", node = dialer.node_id, peer = id);
        tasks.push(tokio::spawn(
            run_link(dialer.clone(), id, addr, rx, cfg.clone()).instrument(span),
        ));
    }
    let sender = PeerSender {
        queues: Arc::new(queues),
        frame_bytes_max: cfg.frame_bytes_max,
        _msg: PhantomData,
    };
    (sender, tasks)
}

async fn run_link(
    dialer: Dialer,
    id: NodeId,
    addr: SocketAddr,
    mut rx: mpsc::Receiver<Bytes>,
    cfg: NetConfig,
) {
    let mut backoff = Backoff::new(cfg.reconnect_backoff_min_ms, cfg.reconnect_backoff_max_ms);
    let mut batch: Vec<Bytes> = Vec::with_capacity(cfg.write_batch_frames_max);
    loop {
        let conn = match dialer.connect_peer(addr, id).await {
            Ok(conn) => conn,
            Err(e) => {
                debug!(%addr, error = %e, "dial failed");
                if wait_or_stop(&mut rx, backoff.next_delay()).await {
                    return;
                }
                continue;
            }
        };
        let up_at = Instant::now();
        info!(%addr, "peer link connected");
        let reason = match conn.open_uni().await {
            Ok(mut stream) => loop {
                tokio::select! {
                    first = rx.recv() => {
                        let Some(first) = first else {
                            conn.close(close_code::SHUTDOWN, b"shutdown");
                            return;
                        };
                        batch.clear();
                        batch.push(first);
                        while batch.len() < cfg.write_batch_frames_max {
                            match rx.try_recv() {
                                Ok(frame) => batch.push(frame),
                                Err(_) => break,
                            }
                        }
                        if let Err(e) = stream.write_all_chunks(&mut batch).await {
                            break e.to_string();
                        }
                    }
                    e = conn.closed() => break e.to_string(),
                }
            },
            Err(e) => e.to_string(),
        };
        conn.close(close_code::SHUTDOWN, b"link restart");
        warn!(%addr, %reason, "peer link disconnected");
        // A link that stayed up a while earned a quick retry; a flapping one backs off.
        if up_at.elapsed().as_millis() as u64 > cfg.reconnect_backoff_max_ms {
            backoff.reset();
        }
        if wait_or_stop(&mut rx, backoff.next_delay()).await {
            return;
        }
    }
}

/// Sleeps for `delay`, keeping queued frames (a down peer fills its queue
/// and `try_send` answers `Full`). True if all senders are gone.
async fn wait_or_stop(rx: &mut mpsc::Receiver<Bytes>, delay: std::time::Duration) -> bool {
    tokio::time::sleep(delay).await;
    rx.is_closed() && rx.is_empty()
}

/// Takes accepted peer connections and reads them into `inbound`.
pub(crate) async fn run_inbound<M: DeserializeOwned + Send + 'static>(
    node_id: NodeId,
    mut conns: mpsc::Receiver<(NodeId, quinn::Connection)>,
    known: BTreeMap<NodeId, SocketAddr>,
    inbound: mpsc::Sender<(NodeId, M)>,
    frame_bytes_max: usize,
) {
    // Only the newest connection of each peer is read; a restarted peer's
    // new connection supersedes its old one.
    let mut current: HashMap<NodeId, quinn::Connection> = HashMap::new();
    while let Some((id, conn)) = conns.recv().await {
        if !known.contains_key(&id) {
            warn!(
                node = node_id,
                peer = id,
                "refusing peer connection: not a configured peer"
            );
            conn.close(close_code::REFUSED, b"not a configured peer");
            continue;
        }
        if let Some(old) = current.insert(id, conn.clone()) {
            old.close(close_code::SHUTDOWN, b"superseded");
        }
        info!(node = node_id, peer = id, remote = %conn.remote_address(), "peer connected (inbound)");
        let span = tracing::info_span!("peer_in", node = node_id, peer = id);
        tokio::spawn(read_peer(id, conn, inbound.clone(), frame_bytes_max).instrument(span));
    }
}

async fn read_peer<M: DeserializeOwned>(
    id: NodeId,
    conn: quinn::Connection,
    inbound: mpsc::Sender<(NodeId, M)>,
    frame_bytes_max: usize,
) {
    loop {
        let stream = match conn.accept_uni().await {
            Ok(s) => s,
            Err(e) => {
                info!(reason = %e, "peer disconnected (inbound)");
                return;
            }
        };
        let mut reader = FrameReader::<M, _>::new(stream, frame_bytes_max);
        loop {
            match reader.read().await {
                Ok(Some(msg)) => {
                    if inbound.send((id, msg)).await.is_err() {
                        conn.close(close_code::SHUTDOWN, b"shutdown");
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    // A stream cut by a closed connection is not the peer's fault.
                    if let Some(reason) = conn.close_reason() {
                        info!(%reason, "peer disconnected (inbound)");
                        return;
                    }
                    error!(error = %e, "bad frame from peer; closing its connection");
                    conn.close(close_code::PROTOCOL, b"bad frame");
                    return;
                }
            }
        }
    }
}
