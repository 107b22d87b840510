//! The driver: the one task that owns the [`Replica`]. It takes a burst of
//! inputs (peer messages, client commands, durable-write notices, ticks), then
//! drains the core's outputs in the order its calling protocol asks for:
//! writes, messages, chosen entries, replies.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use paxlog_net::{NodeEndpoint, PeerReceiver, PeerSender};
use paxlog_storage::{Index, NodeId, Store};
use tokio::sync::{mpsc, oneshot, watch};

use super::config::{NodeConfig, NodeError};
use super::dropped::{message_kind, note_dropped};
use super::read::read;
use super::request::Command;
use super::snapshots::SnapshotDir;
use super::status::node_status;
use super::telemetry::Telemetry;
use super::writer::{LoopWriter, Staged, WriteDone};
use crate::core::{self, Envelope, OpError, Replica};

/// How often the loop calls `Replica::tick`.
pub const TICK_INTERVAL_MS: u64 = 10;
/// Inputs taken in one burst before outputs are drained (batching without starving).
const BURST_INPUTS_MAX: usize = 1024;

pub(super) struct Driver<S: Store + 'static> {
    node_id: NodeId,
    replica: Replica<Arc<S>>,
    /// Set when a follower syncs in the loop (`FollowerSync::Loop`).
    loop_writer: Option<LoopWriter<S>>,
    /// Invariant: the batches handed to the writer thread whose notice has
    /// not come back; the loop syncs a batch itself only when it is 0, so
    /// tickets become durable in order.
    writes_in_flight: usize,
    started: Instant,
    peer_tx: PeerSender<Envelope>,
    write_tx: mpsc::Sender<Staged>,
    /// Joined on stop: RocksDB must be closed before the process exits, or its
    /// static teardown races the still-running writer ("pthread lock: Invalid argument").
    writer: Option<std::thread::JoinHandle<()>>,
    chosen_tx: watch::Sender<Index>,
    /// Invariant: holds exactly the proposals the core has not replied to yet.
    replies: BTreeMap<core::RequestId, oneshot::Sender<Result<Index, OpError>>>,
    next_request: core::RequestId,
    telemetry: Telemetry,
    /// How members are dialed, and the epoch whose members the peer links
    /// follow now.
    config: NodeConfig,
    peers_epoch: u64,
    /// Older snapshot files go once the log knows a newer one.
    snapshots: Arc<SnapshotDir>,
    snapshot_pruned: Index,
}

/// The loop's inputs, created by `start` before the driver exists.
pub(super) struct Inputs {
    pub peer_rx: PeerReceiver<Envelope>,
    pub client_rx: mpsc::Receiver<Command>,
    pub done_rx: mpsc::UnboundedReceiver<WriteDone>,
    pub shutdown: watch::Receiver<bool>,
}

impl<S: Store + 'static> Driver<S> {
    // Each is one piece `start` made for the loop; a struct would only rename them.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        replica: Replica<Arc<S>>,
        loop_writer: Option<LoopWriter<S>>,
        started: Instant,
        peer_tx: PeerSender<Envelope>,
        write_tx: mpsc::Sender<Staged>,
        writer: std::thread::JoinHandle<()>,
        chosen_tx: watch::Sender<Index>,
        config: NodeConfig,
        snapshots: Arc<SnapshotDir>,
        telemetry: Telemetry,
    ) -> Self {
        let peers_epoch = replica.membership().epoch;
        let node_id = config.node_id;
        Driver {
            node_id,
            replica,
            loop_writer,
            writes_in_flight: 0,
            started,
            peer_tx,
            write_tx,
            writer: Some(writer),
            chosen_tx,
            replies: BTreeMap::new(),
            next_request: 1,
            telemetry,
            config,
            peers_epoch,
            snapshots,
            snapshot_pruned: 0,
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Runs until shutdown or a fatal error, then stops the acceptor, the
    /// endpoint and the writer thread, in that order.
    pub(super) async fn run(
        mut self,
        inputs: Inputs,
        // Held so the endpoint (and its peer links) lives exactly as long as the loop.
        endpoint: Arc<NodeEndpoint>,
        acceptor: tokio::task::JoinHandle<()>,
    ) -> Result<(), NodeError> {
        let result = self.run_loop(inputs).await;
        // The acceptor holds the other handle to the endpoint.
        acceptor.abort();
        let _ = acceptor.await;
        match Arc::try_unwrap(endpoint) {
            Ok(endpoint) => endpoint.shutdown().await,
            Err(_) => tracing::warn!(node = self.node_id, "endpoint still shared at stop"),
        }
        // Closing the channel ends the writer after its current write.
        let (closed, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut self.write_tx, closed));
        if let Some(writer) = self.writer.take() {
            let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        }
        result
    }

    async fn run_loop(&mut self, inputs: Inputs) -> Result<(), NodeError> {
        let Inputs {
            mut peer_rx,
            mut client_rx,
            mut done_rx,
            mut shutdown,
        } = inputs;
        let mut ticker = tokio::time::interval(Duration::from_millis(TICK_INTERVAL_MS));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let burst = metrics::histogram!("paxlog_loop_burst_seconds");
        let result = loop {
            let woke_at;
            tokio::select! {
                _ = shutdown.changed() => break Ok(()),
                done = done_rx.recv() => match done {
                    Some(done) => {
                        woke_at = Instant::now();
                        if let Err(e) = self.on_write_done(done) {
                            break Err(e);
                        }
                        while let Ok(done) = done_rx.try_recv() {
                            if let Err(e) = self.on_write_done(done) {
                                return self.fail(e);
                            }
                        }
                    }
                    None => break Err(NodeError::Fatal("writer thread stopped".into())),
                },
                Some((from, envelope)) = peer_rx.recv() => {
                    woke_at = Instant::now();
                    let now = self.now_ms();
                    self.on_peer_message(from, envelope, now);
                    for _ in 0..BURST_INPUTS_MAX {
                        match peer_rx.try_recv() {
                            Some((from, envelope)) => self.on_peer_message(from, envelope, now),
                            None => break,
                        }
                    }
                }
                Some(command) = client_rx.recv() => {
                    woke_at = Instant::now();
                    self.on_command(command);
                    for _ in 0..BURST_INPUTS_MAX {
                        match client_rx.try_recv() {
                            Ok(command) => self.on_command(command),
                            Err(_) => break,
                        }
                    }
                }
                _ = ticker.tick() => {
                    woke_at = Instant::now();
                    let now = self.now_ms();
                    self.replica.tick(now);
                    if self.telemetry.export_due() {
                        let appends = self.replica.appends_proposed();
                        self.telemetry.export(&self.replica.status(), appends);
                    }
                }
            }
            if let Err(e) = self.drain().await {
                break Err(e);
            }
            burst.record(woke_at.elapsed().as_secs_f64());
        };
        match result {
            Ok(()) => {
                self.fail_pending(OpError::ShuttingDown);
                tracing::info!(node = self.node_id, "node stopped");
                Ok(())
            }
            Err(e) => self.fail(e),
        }
    }

    fn fail(&mut self, error: NodeError) -> Result<(), NodeError> {
        self.replica.on_storage_failed();
        self.fail_pending(OpError::Failed(error.to_string()));
        tracing::error!(node = self.node_id, %error, "node stopped after a fatal error");
        Err(error)
    }

    fn on_peer_message(&mut self, from: NodeId, envelope: Envelope, now: u64) {
        self.telemetry.on_received(from, &envelope.message);
        self.replica.on_message(from, envelope, now);
    }

    fn fail_pending(&mut self, error: OpError) {
        self.telemetry.on_replies_dropped();
        for (_, reply) in std::mem::take(&mut self.replies) {
            // The core may have sent these out: only the core knows; on stop
            // every pending one is indeterminate unless we are merely shutting down
            // before proposing, which the core does not tell apart.
            let _ = reply.send(Err(match &error {
                OpError::ShuttingDown => OpError::Indeterminate,
                other => other.clone(),
            }));
        }
    }

    fn on_write_done(&mut self, done: WriteDone) -> Result<(), NodeError> {
        match done {
            WriteDone::Durable { tickets, synced_at } => {
                metrics::histogram!("paxlog_write_notice_seconds")
                    .record(synced_at.elapsed().as_secs_f64());
                let now = self.now_ms();
                self.writes_in_flight -= tickets.len();
                for ticket in tickets {
                    self.replica.on_persisted(ticket, now);
                }
                Ok(())
            }
            WriteDone::Failed(error) => Err(NodeError::Fatal(error.to_string())),
        }
    }

    fn on_command(&mut self, command: Command) {
        let now = self.now_ms();
        match command {
            Command::Propose {
                client_id,
                seq,
                floor,
                command,
                expected_ballot,
                reply,
            } => {
                // The id keys the reply table, so only the driver can assign it.
                let id = self.next_request;
                self.next_request += 1;
                self.replies.insert(id, reply);
                self.telemetry.on_propose(id);
                let proposal = core::Proposal {
                    id,
                    client_id,
                    seq,
                    floor,
                    command,
                    expected_ballot,
                };
                self.replica.propose(proposal, now);
            }
            Command::ReadIndex { reply } => {
                let id = self.next_request;
                self.next_request += 1;
                self.replies.insert(id, reply);
                self.replica.read_index(id, now);
            }
            Command::Read {
                from,
                to,
                entries_max,
                reply,
            } => {
                let _ = reply.send(read(&self.replica, from, to, entries_max));
            }
            Command::Status { reply } => {
                let mut status = node_status(self.replica.status(), now);
                self.telemetry.fill(&mut status);
                let _ = reply.send(status);
            }
        }
    }

    async fn drain(&mut self) -> Result<(), NodeError> {
        while let Some(persist) = self.replica.poll_write() {
            let in_loop = self.writes_in_flight == 0 && self.replica.role() == core::Role::Follower;
            if let Some(writer) = self.loop_writer.as_ref().filter(|_| in_loop) {
                writer
                    .write(&persist.batch, persist.sync)
                    .map_err(|e| NodeError::Fatal(e.to_string()))?;
                let now = self.now_ms();
                self.replica.on_persisted(persist.ticket, now);
                continue;
            }
            self.writes_in_flight += 1;
            if self.write_tx.send(Staged::now(persist)).await.is_err() {
                return Err(NodeError::Fatal("writer thread stopped".into()));
            }
        }
        while let Some(out) = self.replica.poll_message() {
            let kind = message_kind(&out.message);
            self.telemetry.on_sent(out.to, &out.message);
            let (to, envelope) = out.envelope();
            if let Err(error) = self.peer_tx.try_send(to, envelope) {
                note_dropped(self.node_id, to, kind, &error);
            }
        }
        let mut emitted = None;
        let (mut entries, mut duplicates) = (0, 0);
        while let Some(entry) = self.replica.poll_chosen() {
            entries += 1;
            duplicates += u64::from(entry.hidden.is_some());
            emitted = Some(entry.index);
        }
        if entries > 0 {
            self.telemetry.on_chosen(entries, duplicates);
        }
        // The node applies nothing itself: a snapshot is installed at once
        // (the application's own snapshot files are fetched by its client).
        while let Some(meta) = self.replica.poll_snapshot() {
            self.replica.on_snapshot_installed(meta.index);
        }
        let newest = self.replica.snapshot().map_or(0, |s| s.index);
        SnapshotDir::prune_behind(&self.snapshots, newest, &mut self.snapshot_pruned);
        if let Some(index) = emitted {
            // The node applies nothing itself: readers go through the core.
            self.replica.set_applied(index);
            self.chosen_tx.send_replace(index);
        }
        while let Some(reply) = self.replica.poll_reply() {
            self.telemetry.on_reply(reply.id, &reply.result);
            if let Some(tx) = self.replies.remove(&reply.id) {
                let _ = tx.send(reply.result);
            }
        }
        self.maybe_follow_members();
        self.telemetry.on_role(
            self.replica.role(),
            self.replica.leader(),
            self.replica.promised(),
        );
        Ok(())
    }
}

impl<S: Store + 'static> Driver<S> {
    /// After a configuration change the peer links follow its members: new
    /// ones are dialed and accepted, departed ones dropped.
    fn maybe_follow_members(&mut self) {
        let membership = self.replica.membership();
        if membership.epoch == self.peers_epoch {
            return;
        }
        self.peers_epoch = membership.epoch;
        metrics::gauge!("paxlog_configuration_epoch").set(membership.epoch as f64);
        metrics::counter!("paxlog_configuration_changes_total").increment(1);
        if let Some(why) = self.replica.not_voting() {
            tracing::warn!(
                node = self.node_id,
                epoch = membership.epoch,
                "this node does not vote: {why}"
            );
        }
        let addrs = self.config.dial_addrs_for(membership);
        if let Err(error) = self.peer_tx.set_peers(addrs) {
            tracing::error!(node = self.node_id, %error, "cannot follow the new members");
        }
    }
}
