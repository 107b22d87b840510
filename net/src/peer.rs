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
//!
//! The peer set changes at runtime with [`PeerSender::set_peers`] (membership
//! change): links start, stop and move, and the inbound side admits only the
//! current set, at most [`PEERS_MAX`] peers.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, warn, Instrument};

use crate::backoff::Backoff;
use crate::dial::{close_code, Dialer, SharedTasks, Tasks};
use crate::frame::{encode, FrameReader};
use crate::{NetConfig, NetError, NodeId, SendError};

/// Most peers (other nodes) one endpoint links to at once. Each costs a
/// link task, a queue of `peer_queue_capacity` frames and a connection each
/// way; a cluster's membership is far smaller. `peers()` and `set_peers`
/// refuse a larger set with [`NetError::TooManyPeers`].
pub const PEERS_MAX: usize = 16;

/// Queues messages to peers and changes the peer set. Cheap to clone; all
/// clones share one peer set.
#[derive(Debug)]
pub struct PeerSender<M> {
    links: Arc<Links>,
    _msg: PhantomData<fn(&M)>,
}

impl<M> Clone for PeerSender<M> {
    fn clone(&self) -> Self {
        Self {
            links: self.links.clone(),
            _msg: PhantomData,
        }
    }
}

impl<M: Serialize> PeerSender<M> {
    /// Queues `msg` for peer `to` without waiting. `Full` means the message
    /// was dropped because the link is slow or down. `UnknownPeer` means `to`
    /// is not in the current peer set; a send racing with a `set_peers` that
    /// removes `to` may answer `Closed` instead.
    pub fn try_send(&self, to: NodeId, msg: M) -> Result<(), SendError> {
        // The lock covers one lookup and a handle clone, never the encoding,
        // so set_peers waits for no encoder and senders never wait on each other.
        let queue = {
            let queues = read(&self.links.queues);
            let queue = queues.get(&to).ok_or(SendError::UnknownPeer(to))?;
            // Refuse before encoding: a full queue is the common overload case.
            if queue.capacity() == 0 {
                return Err(SendError::Full(to));
            }
            queue.clone()
        };
        let frame = encode(&msg, self.links.cfg.frame_bytes_max)
            .map_err(|source| SendError::Frame { to, source })?;
        queue.try_send(frame).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SendError::Full(to),
            mpsc::error::TrySendError::Closed(_) => SendError::Closed(to),
        })
    }
}

impl<M> PeerSender<M> {
    /// The current peers (a snapshot).
    pub fn peers(&self) -> impl Iterator<Item = NodeId> + '_ {
        let ids: Vec<NodeId> = read(&self.links.queues).keys().copied().collect();
        ids.into_iter()
    }

    /// Frames queued for `to` and not yet handed to QUIC.
    pub fn queued(&self, to: NodeId) -> Option<usize> {
        read(&self.links.queues)
            .get(&to)
            .map(|q| q.max_capacity() - q.capacity())
    }

    /// Replaces the peer set, for a membership change; our own id is skipped.
    ///
    /// * A new id gets a bounded queue and a link task that dials it (with
    ///   the usual backoff), and its inbound connections are admitted.
    /// * An id no longer listed loses its queue at once (`try_send` answers
    ///   `UnknownPeer`, frames still queued are dropped), its link task closes
    ///   its connection and ends, its inbound connection is closed with
    ///   [`close_code::REFUSED`], and new ones are refused. Messages of it
    ///   read before this call may still come out of [`PeerReceiver`]; none
    ///   read after it do.
    /// * An id whose address changed keeps its queue; its link drops the
    ///   connection to the old address and dials the new one at once.
    /// * An unchanged entry is left alone (its connection stays up).
    ///
    /// More than [`PEERS_MAX`] peers is [`NetError::TooManyPeers`], and the
    /// set is then unchanged. Concurrent calls apply one after the other.
    /// Does not wait: links connect in the background. After the endpoint
    /// shut down, new links are not started (`try_send` then answers `Closed`).
    pub fn set_peers(&self, peers: BTreeMap<NodeId, SocketAddr>) -> Result<(), NetError> {
        self.links.set(peers)
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

/// What the clones of one [`PeerSender`] share: the queues, the link tasks'
/// controls and the set the inbound side admits.
#[derive(Debug)]
struct Links {
    node_id: NodeId,
    cfg: NetConfig,
    /// Link tasks are spawned here: set_peers may be called off the runtime.
    runtime: tokio::runtime::Handle,
    /// Shared with the endpoint, whose shutdown aborts the link tasks; also
    /// holds the dialer, which a stopped endpoint takes back.
    tasks: SharedTasks,
    /// One bounded queue per current peer; read by every `try_send`.
    /// Invariant: the same ids as `controls` and `members` once `set` returns.
    queues: RwLock<BTreeMap<NodeId, mpsc::Sender<Bytes>>>,
    /// Each link task's address: `Some(addr)` dial there, `None` stop.
    /// Held for all of `set`, which makes concurrent `set`s apply in turn.
    controls: Mutex<BTreeMap<NodeId, watch::Sender<Option<SocketAddr>>>>,
    /// The ids the inbound side admits.
    members: watch::Sender<BTreeSet<NodeId>>,
}

/// Read-locks `lock`. Writers only insert and remove whole map entries, so
/// a panic cannot leave a half-made entry and a poisoned lock is still sound.
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn lock<T>(lock: &Mutex<T>) -> MutexGuard<'_, T> {
    lock.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Removes our own id and checks the bound. Before anything changes, so
/// that a refused set leaves everything as it was.
pub(crate) fn peer_set(
    node_id: NodeId,
    mut peers: BTreeMap<NodeId, SocketAddr>,
) -> Result<BTreeMap<NodeId, SocketAddr>, NetError> {
    peers.remove(&node_id);
    if peers.len() > PEERS_MAX {
        return Err(NetError::TooManyPeers {
            peers: peers.len(),
            max: PEERS_MAX,
        });
    }
    Ok(peers)
}

impl Links {
    fn set(&self, peers: BTreeMap<NodeId, SocketAddr>) -> Result<(), NetError> {
        let peers = peer_set(self.node_id, peers)?;
        let mut controls = lock(&self.controls);
        // Queues first: once this returns, try_send sees the new set.
        let mut new = Vec::new();
        {
            let mut queues = self.queues.write().unwrap_or_else(PoisonError::into_inner);
            queues.retain(|id, _| peers.contains_key(id));
            for (&id, &addr) in &peers {
                if let std::collections::btree_map::Entry::Vacant(slot) = queues.entry(id) {
                    let (tx, rx) = mpsc::channel(self.cfg.peer_queue_capacity);
                    slot.insert(tx);
                    new.push((id, addr, rx));
                }
            }
        }
        // Then the inbound side, before the links: a removed peer's messages
        // stop here even if its own link to us is still up.
        self.members.send_replace(peers.keys().copied().collect());
        controls.retain(|&id, control| match peers.get(&id) {
            None => {
                info!(node = self.node_id, peer = id, "peer removed");
                control.send_replace(None);
                false
            }
            Some(&addr) => {
                control.send_if_modified(|current| {
                    let moved = *current != Some(addr);
                    if moved {
                        info!(node = self.node_id, peer = id, %addr, "peer address changed");
                        *current = Some(addr);
                    }
                    moved
                });
                true
            }
        });
        let mut tasks = Tasks::lock(&self.tasks);
        for (id, addr, rx) in new {
            let (control, control_rx) = watch::channel(Some(addr));
            controls.insert(id, control);
            // After the endpoint stopped no link starts; the queue's receiver
            // is dropped here and `try_send` answers `Closed`.
            let Some(dialer) = tasks.dialer() else {
                continue;
            };
            let span = tracing::info_span!("peer_link", node = self.node_id, peer = id);
            let link = run_link(
                dialer,
                id,
                LinkControl::new(control_rx, addr),
                rx,
                self.cfg.clone(),
            );
            tasks.push(self.runtime.spawn(link.instrument(span)));
        }
        Ok(())
    }
}

/// Starts the peer links of `peers` (already checked by [`peer_set`]);
/// returns the sender and the watch of the set the inbound side admits.
/// Must run inside a tokio runtime.
pub(crate) fn start_links<M>(
    node_id: NodeId,
    peers: BTreeMap<NodeId, SocketAddr>,
    cfg: &NetConfig,
    tasks: SharedTasks,
) -> Result<(PeerSender<M>, watch::Receiver<BTreeSet<NodeId>>), NetError> {
    let (members, members_rx) = watch::channel(BTreeSet::new());
    let links = Links {
        node_id,
        cfg: cfg.clone(),
        runtime: tokio::runtime::Handle::current(),
        tasks,
        queues: RwLock::new(BTreeMap::new()),
        controls: Mutex::new(BTreeMap::new()),
        members,
    };
    links.set(peers)?;
    let sender = PeerSender {
        links: Arc::new(links),
        _msg: PhantomData,
    };
    Ok((sender, members_rx))
}

/// A link task's view of `set_peers`.
#[derive(Debug)]
struct LinkControl {
    rx: watch::Receiver<Option<SocketAddr>>,
    /// Where to dial now.
    addr: SocketAddr,
    /// False once every `PeerSender` is gone: nothing can move or remove the
    /// link any more, and it ends as it always did, when its queue is
    /// drained and closed.
    watching: bool,
}

/// What `set_peers` did to a link.
#[derive(Debug)]
enum Change {
    Moved,
    Removed,
}

impl LinkControl {
    fn new(rx: watch::Receiver<Option<SocketAddr>>, addr: SocketAddr) -> Self {
        Self {
            rx,
            addr,
            watching: true,
        }
    }

    /// The next change; pending forever once nobody can change the link.
    /// Cancel safe (a select! may drop it).
    async fn changed(&mut self) -> Change {
        while self.watching {
            let alive = self.rx.changed().await.is_ok();
            // A removal sends `None` and then drops the sender: read the value
            // even when the channel closed, so the removal is not missed.
            let value = *self.rx.borrow_and_update();
            match value {
                None => return Change::Removed,
                Some(addr) if addr != self.addr => {
                    self.addr = addr;
                    return Change::Moved;
                }
                // Moved and back before we looked: keep the link as it is.
                Some(_) => {}
            }
            self.watching = alive;
        }
        std::future::pending().await
    }
}

/// Why a connected link stopped serving.
#[derive(Debug)]
enum Served {
    /// Every `PeerSender` is gone and the queue is empty.
    Drained,
    Lost(String),
}

async fn run_link(
    dialer: Dialer,
    id: NodeId,
    mut control: LinkControl,
    mut rx: mpsc::Receiver<Bytes>,
    cfg: NetConfig,
) {
    let mut backoff = Backoff::new(cfg.reconnect_backoff_min_ms, cfg.reconnect_backoff_max_ms);
    let mut batch: Vec<Bytes> = Vec::with_capacity(cfg.write_batch_frames_max);
    loop {
        let addr = control.addr;
        // A dial to a dead address can take a whole handshake timeout; a
        // removal or a move must not wait for it.
        let dialed = tokio::select! {
            dialed = dialer.connect_peer(addr, id) => dialed,
            change = control.changed() => match change {
                Change::Moved => {
                    backoff.reset();
                    continue;
                }
                Change::Removed => return,
            },
        };
        let conn = match dialed {
            Ok(conn) => conn,
            Err(e) => {
                debug!(%addr, error = %e, "dial failed");
                match pause(&mut rx, &mut control, backoff.next_delay()).await {
                    Pause::Retry => {}
                    Pause::Moved => backoff.reset(),
                    Pause::Stop => return,
                }
                continue;
            }
        };
        let up_at = Instant::now();
        info!(%addr, "peer link connected");
        // Watching the control around the writes too: a peer that stopped
        // reading must not keep a removed or moved link alive.
        let reason = tokio::select! {
            served = serve(&conn, &mut rx, &mut batch, cfg.write_batch_frames_max) => match served {
                Served::Drained => {
                    conn.close(close_code::SHUTDOWN, b"shutdown");
                    return;
                }
                Served::Lost(reason) => reason,
            },
            change = control.changed() => match change {
                Change::Moved => {
                    info!(from = %addr, to = %control.addr, "peer link moves to a new address");
                    conn.close(close_code::SHUTDOWN, b"peer address changed");
                    backoff.reset();
                    continue;
                }
                Change::Removed => {
                    info!(%addr, "peer removed; link stopped");
                    conn.close(close_code::SHUTDOWN, b"peer removed");
                    return;
                }
            },
        };
        conn.close(close_code::SHUTDOWN, b"link restart");
        warn!(%addr, %reason, "peer link disconnected");
        // A link that stayed up a while earned a quick retry; a flapping one backs off.
        if up_at.elapsed().as_millis() as u64 > cfg.reconnect_backoff_max_ms {
            backoff.reset();
        }
        match pause(&mut rx, &mut control, backoff.next_delay()).await {
            Pause::Retry => {}
            Pause::Moved => backoff.reset(),
            Pause::Stop => return,
        }
    }
}

/// Opens one uni stream on `conn` and writes queued frames to it in order.
async fn serve(
    conn: &quinn::Connection,
    rx: &mut mpsc::Receiver<Bytes>,
    batch: &mut Vec<Bytes>,
    batch_max: usize,
) -> Served {
    let mut stream = match conn.open_uni().await {
        Ok(stream) => stream,
        Err(e) => return Served::Lost(e.to_string()),
    };
    loop {
        tokio::select! {
            first = rx.recv() => {
                let Some(first) = first else {
                    return Served::Drained;
                };
                batch.clear();
                batch.push(first);
                while batch.len() < batch_max {
                    match rx.try_recv() {
                        Ok(frame) => batch.push(frame),
                        Err(_) => break,
                    }
                }
                if let Err(e) = stream.write_all_chunks(&mut batch[..]).await {
                    return Served::Lost(e.to_string());
                }
            }
            e = conn.closed() => return Served::Lost(e.to_string()),
        }
    }
}

#[derive(Debug)]
enum Pause {
    Retry,
    Moved,
    Stop,
}

/// Waits `delay` before a redial, keeping queued frames (a down peer fills
/// its queue and `try_send` answers `Full`). Stops early on a removal and
/// cuts the wait on a move; `Stop` too once all senders are gone and the
/// queue is empty.
async fn pause(
    rx: &mut mpsc::Receiver<Bytes>,
    control: &mut LinkControl,
    delay: Duration,
) -> Pause {
    tokio::select! {
        () = tokio::time::sleep(delay) => {
            if rx.is_closed() && rx.is_empty() {
                Pause::Stop
            } else {
                Pause::Retry
            }
        }
        change = control.changed() => match change {
            Change::Moved => Pause::Moved,
            Change::Removed => Pause::Stop,
        },
    }
}

/// Takes accepted peer connections and reads them into `inbound`. Admits
/// only ids in `members` (the current peer set) and closes the connection of
/// an id that leaves it.
pub(crate) async fn run_inbound<M: DeserializeOwned + Send + 'static>(
    node_id: NodeId,
    mut conns: mpsc::Receiver<(NodeId, quinn::Connection)>,
    mut members: watch::Receiver<BTreeSet<NodeId>>,
    inbound: mpsc::Sender<(NodeId, M)>,
    frame_bytes_max: usize,
) {
    // Only the newest connection of each peer is read; a restarted peer's
    // new connection supersedes its old one.
    let mut current: HashMap<NodeId, quinn::Connection> = HashMap::new();
    // False once every PeerSender is gone: the last set then stays in force.
    let mut watching = true;
    loop {
        tokio::select! {
            changed = members.changed(), if watching => {
                watching = changed.is_ok();
                let live = members.borrow_and_update().clone();
                current.retain(|&id, conn| {
                    if live.contains(&id) {
                        return true;
                    }
                    warn!(node = node_id, peer = id, "closing peer connection: no longer a configured peer");
                    conn.close(close_code::REFUSED, b"not a configured peer");
                    false
                });
            }
            next = conns.recv() => {
                let Some((id, conn)) = next else { return };
                if !members.borrow().contains(&id) {
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
                let reader = read_peer(id, conn, members.clone(), inbound.clone(), frame_bytes_max);
                tokio::spawn(reader.instrument(span));
            }
        }
    }
}

async fn read_peer<M: DeserializeOwned>(
    id: NodeId,
    conn: quinn::Connection,
    members: watch::Receiver<BTreeSet<NodeId>>,
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
                    // run_inbound closes a removed peer's connection, but only
                    // when it next runs; checking here makes the removal
                    // exact: nothing read after set_peers returned gets through.
                    if !members.borrow().contains(&id) {
                        info!("dropping a message: the sender is no longer a configured peer");
                        conn.close(close_code::REFUSED, b"not a configured peer");
                        return;
                    }
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
