//! The deterministic simulation: replicas over `MemStore`, a seeded network,
//! crashes that lose in-flight writes, concurrent clients, and the checkers
//! run after every step. Everything is ordered (`BTreeMap`) and driven by one
//! seeded RNG, so a seed replays exactly.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;
use paxlog::core::{
    Command, Config, Envelope, Index, Message, Mutation, NodeId, OpError, Outbound, Persist,
    Replica, Role, TrimState, MESSAGE_OVERHEAD_BYTES,
};
use paxlog_storage::{Identity, MemStore, Store, WriteBatch};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::client::{Client, RequestInfo, DEEP_EVERY, DEEP_WINDOW, SHALLOW_WINDOW};

#[path = "world/bulk.rs"]
mod bulk;
#[path = "world/clients.rs"]
mod clients;
#[path = "world/deposed.rs"]
mod deposed;
#[path = "world/faults.rs"]
mod faults;
#[path = "world/reconfig.rs"]
mod reconfig;
#[path = "world/settle.rs"]
mod settle;
pub use reconfig::ReconfigStats;
pub use settle::{CATCH_UP, QUIET_MS, TRIM};
#[path = "world/stale.rs"]
mod stale;
#[path = "world/survivors.rs"]
mod survivors;
use survivors::Survivors;
#[path = "world/tails.rs"]
mod tails;
use super::inv_acked;
use super::invariants::{Checkers, Violation};
use super::net::{Fate, Net};

/// Time a topology gets to settle (a leader without quorum steps down, a new
/// one is elected) before progress is demanded.
const TOPOLOGY_SETTLE_MS: u64 = 2_000;
/// Mixed into the seed for the crash-survivors stream (`world/survivors.rs`).
const CRASH_STREAM: u64 = 0x5eed_0c4a_54ed_0001;

/// A client got nothing chosen after the heal.
pub const LIVENESS: &str = "liveness";

/// Encoded entry bytes per Promise or Catchup (`Limits::catchup_bytes_max`).
const CATCHUP_BYTES_MAX: usize = 1024;

/// What the core's chunking must keep every Promise, and every Catchup of
/// entries, within: their budget plus the core's `MESSAGE_OVERHEAD_BYTES`.
/// The network checks those against it, not against the transport's larger
/// limit, so the largest runs come close to a bound that means something.
pub const CHUNK_BYTES_MAX: usize = CATCHUP_BYTES_MAX + MESSAGE_OVERHEAD_BYTES;

/// The frame limit of the simulated transport: the chunk bound, unless a
/// Catchup carrying the whole session table at the sim's session bounds
/// (`TrimState::bytes_max`, plus the same overhead) needs more, as it does;
/// `Limits::check` and `Replica::new` refuse anything smaller.
pub fn frame_bytes_max() -> usize {
    let trim_state = TrimState::bytes_max(inv_acked::SESSIONS_MAX, inv_acked::SESSION_SEQS_MAX);
    CHUNK_BYTES_MAX.max(trim_state + MESSAGE_OVERHEAD_BYTES)
}

/// One encoded command at most (`Limits::value_bytes_max`).
const VALUE_BYTES_MAX: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// Random faults of every kind.
    Random,
    /// OmniPaxos paper topologies, held for the whole fault phase.
    Chained,
    QuorumLoss,
    Constrained,
    /// Leaders crash mid-broadcast and every Accepted is slow, so a node
    /// re-elected soon after hears Accepted of its previous ballot while it
    /// leads a higher one (see `world/stale.rs`).
    StaleAccepted,
    /// A leader's outbound links fail and everything sent to it is slow,
    /// so it takes tails after another was elected (see `world/deposed.rs`).
    DeposedLeader,
}

#[derive(Clone, Debug)]
pub struct Params {
    pub seed: u64,
    pub nodes: usize,
    pub clients: usize,
    pub fault_ms: u64,
    pub liveness_ms: u64,
    pub scenario: Scenario,
    pub mutation: Mutation,
    pub trace: bool,
    /// Nodes outside the seed configuration that reconfigurations add,
    /// promote and remove (`world/reconfig.rs`); 0: no reconfigurations.
    pub spares: usize,
    /// Leaders ask only a quorum to sync (`Config::thrifty`): three seeds
    /// in four, of either cluster size.
    pub thrifty: bool,
}

impl Params {
    pub fn new(seed: u64) -> Self {
        Params {
            seed,
            nodes: if seed.is_multiple_of(2) { 3 } else { 5 },
            clients: 3,
            fault_ms: 3_000,
            liveness_ms: 4_000,
            scenario: Scenario::Random,
            mutation: Mutation::None,
            trace: false,
            spares: (seed % 3) as usize,
            thrifty: !(seed / 2).is_multiple_of(4),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub drops: u64,
    pub dups: u64,
    pub reorders: u64,
    pub partitions: u64,
    pub crashes: u64,
    pub leader_changes: u64,
    pub chosen: u64,
    pub acked: u64,
    pub trims: u64,
    /// Trims proposed above the leader's chosen index and refused.
    pub trims_refused: u64,
    /// Trims proposed above the newest snapshot the proposer knew, refused.
    pub trims_refused_snapshot: u64,
    /// Snapshots the applications published.
    pub snapshots: u64,
    /// Snapshots installed by a node whose application was behind the trim point.
    pub snapshot_installs: u64,
    /// Retention holds set, renewed or released by the applications.
    pub holds: u64,
    /// Holds the leader released when their lease ran out.
    pub hold_expiries: u64,
    /// Highest trim point any node reached.
    pub trim_max: u64,
    /// Promises cut short by their bound (a later Prepare fetches the rest).
    pub promise_chunks: u64,
    pub catchups: u64,
    /// Restarts whose voting state was marked suspect (it must never vote again).
    pub suspects: u64,
    pub disk_failures: u64,
    /// Appends chosen but not effective (emitted with `hidden`): retries
    /// chosen twice, and pipelines cut by leader changes.
    pub duplicates: u64,
    /// Client sessions that broke (a seq refused for good) and were superseded.
    pub sessions_broken: u64,
    /// Clients that restarted without their session.
    pub client_restarts: u64,
    /// Sessions evicted from the session table (as the model in `inv_acked`
    /// folds the chosen log).
    pub sessions_evicted: u64,
    /// Appends acknowledged while a topology had been in place for a while
    /// (progress under partial connectivity).
    pub acked_degraded: u64,
    /// Messages a partition withheld (refused at send, or in flight when it
    /// started and arriving before the heal).
    pub withheld: u64,
    /// Node restarts (after a crash, a failed disk or at the heal).
    pub restarts: u64,
    /// Largest peer frame sent (bytes, version byte included).
    pub frame_max: u64,
    /// Largest Promise or Catchup of entries sent (held to `CHUNK_BYTES_MAX`).
    pub chunk_frame_max: u64,
    /// Catchups sent with a session table, and the largest of them.
    pub trim_state_frames: u64,
    pub trim_state_frame_max: u64,
    /// Large appends the bulk writer issued (new seqs, not resends).
    pub bulk: u64,
    /// Accepted of an older ballot delivered to the same node leading a newer one.
    pub stale_accepted: u64,
    /// Batches written unsynced (`Config::thrifty`), and those of them a
    /// crash took back before a sync.
    pub unsynced_writes: u64,
    pub unsynced_lost: u64,
    /// Unsynced batches a crash left on disk (`world/survivors.rs`).
    pub unsynced_kept: u64,
    /// The seed's leaders were thrifty (`Params::thrifty`).
    pub thrifty: bool,
    /// What the tailers asked and were answered (`world/tails.rs`).
    pub tails: tails::TailStats,
    /// Simulated ms the quiet phase took until every node caught up.
    pub settle_ms: u64,
    /// Nodes whose final trim point differs from what the chosen Trim
    /// commands and its applied index imply (reported, see `world/settle.rs`).
    pub trim_diverged: u64,
    /// The trim point every node agreed on at the end (0: none).
    pub trim_final: u64,
    /// What `trim_diverged` counted, node by node.
    pub trim_notes: Vec<String>,
    /// The operator's membership steps (`world/reconfig.rs`).
    pub reconfig: reconfig::ReconfigStats,
}

#[derive(Debug)]
pub struct Outcome {
    pub seed: u64,
    pub steps: u64,
    pub hash: u64,
    pub violations: Vec<Violation>,
    pub stats: Stats,
}

#[derive(Debug)]
enum Event {
    Deliver {
        from: NodeId,
        to: NodeId,
        message: Message,
        /// The sender's configuration epoch and incarnation (`Envelope`).
        config_epoch: u64,
        incarnation: u64,
    },
    Persist {
        node: NodeId,
        epoch: u64,
    },
    Tick {
        node: NodeId,
        epoch: u64,
    },
    Client {
        client: usize,
    },
    /// A tailer's next tail, or one at `to` only (`world/tails.rs`).
    Tail {
        tailer: usize,
        to: Option<NodeId>,
    },
    Fault,
    Restart {
        node: NodeId,
    },
    /// Crash `node` if it is still the same incarnation.
    Crash {
        node: NodeId,
        epoch: u64,
    },
    Heal,
    /// The operator's next membership step (`world/reconfig.rs`).
    Reconfig,
    /// The application on `node` trims up to the newest snapshot it knows.
    Trim {
        node: NodeId,
    },
}

#[derive(Debug)]
struct Node {
    store: MemStore,
    replica: Option<Replica<MemStore>>,
    /// Persist batches handed out and not yet written: lost on a crash.
    pending: VecDeque<Persist>,
    /// Batches written unsynced since the last sync: lost or kept by a crash
    /// (`world/survivors.rs`), made durable (for the checkers too) by the
    /// next synced write.
    unsynced: Vec<WriteBatch>,
    persist_scheduled: bool,
    epoch: u64,
    applied: Index,
    /// The configuration epoch last traced.
    config_epoch: u64,
}

impl Node {
    /// A power loss of the store: of what was written unsynced, the batches
    /// `survivors` picks stay (durable now) and the rest go. Returns the
    /// batches that stayed.
    fn crash_store(&mut self, survivors: Survivors) -> Vec<WriteBatch> {
        let kept = survivors.pick(self.unsynced.len());
        self.store.crash_keeping(|position| kept[position]);
        std::mem::take(&mut self.unsynced)
            .into_iter()
            .zip(kept)
            .filter_map(|(batch, kept)| kept.then_some(batch))
            .collect()
    }
}

pub struct World {
    p: Params,
    /// fsync latency bound for this seed.
    persist_max_ms: u64,
    /// Per client step during the faults: the client restarts without its
    /// session (`world/clients.rs`).
    client_restart_per_mille: u32,
    now_ms: u64,
    rng: ChaCha8Rng,
    /// Which unsynced batches each power loss keeps (`world/survivors.rs`).
    crash_rng: ChaCha8Rng,
    events: BTreeMap<(u64, u64), Event>,
    next_event: u64,
    nodes: BTreeMap<NodeId, Node>,
    /// Every node: the seed's and the spares.
    members: Vec<NodeId>,
    /// The seed configuration (`Config::members`).
    seed: Vec<NodeId>,
    /// Reconfiguration requests in flight at some node, and what they got.
    reconfig: reconfig::Reconfigs,
    net: Net,
    /// Latest scheduled delivery per directed link, to count reorders.
    last_delivery: BTreeMap<(NodeId, NodeId), u64>,
    clients: Vec<Client>,
    tailers: tails::Tailers,
    requests: BTreeMap<u64, RequestInfo>,
    next_attempt: u64,
    checkers: Checkers,
    stats: Stats,
    steps: u64,
    hash: u64,
    healed_at_ms: Option<u64>,
    topology_at_ms: Option<u64>,
    last_leader: Option<paxlog::core::Ballot>,
    /// Clients and the bulk writer are silent: the quiet phase.
    quiet: bool,
    /// Chosen Trim commands, index → `upto`, as the nodes emitted them.
    trims_chosen: BTreeMap<Index, Index>,
    /// The trim proposed at the start of the quiet phase (request id), until it is answered.
    quiet_waits: BTreeSet<u64>,
    /// Trims proposed above the proposer's chosen index, awaiting their answer.
    /// (True: above the chosen index; false: only above the newest snapshot.)
    typo_trims: BTreeMap<u64, bool>,
    /// Snapshot publications and hold changes awaiting their answer (ignored).
    snapshot_reqs: BTreeSet<u64>,
    /// `StaleAccepted`: the next leader's Accept broadcast is cut by a crash;
    /// the leader crashing mid-broadcast.
    stale_armed: bool,
    crashing: Option<NodeId>,
    /// `DeposedLeader`: the leader whose outbound links are blocked.
    cut_off: Option<NodeId>,
}

fn fnv(hash: &mut u64, bytes: &[u8]) {
    for &b in bytes {
        *hash ^= u64::from(b);
        *hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
}

impl World {
    pub fn new(p: Params) -> Self {
        let thrifty = p.thrifty;
        let seed: Vec<NodeId> = (1..=p.nodes as NodeId).collect();
        let spares = if p.scenario == Scenario::Random {
            p.spares
        } else {
            0
        };
        let members: Vec<NodeId> = (1..=(p.nodes + spares) as NodeId).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
        let crash_rng = ChaCha8Rng::seed_from_u64(p.seed ^ CRASH_STREAM);
        let mut nodes = BTreeMap::new();
        for &id in &members {
            let store = MemStore::new(Identity {
                cluster_id: "sim".into(),
                node_id: id,
            });
            nodes.insert(
                id,
                Node {
                    store,
                    replica: None,
                    pending: VecDeque::new(),
                    unsynced: Vec::new(),
                    persist_scheduled: false,
                    epoch: 0,
                    applied: 0,
                    config_epoch: 0,
                },
            );
        }
        let random = p.scenario == Scenario::Random;
        let net = Net {
            blocked: Default::default(),
            drop_per_mille: if random { rng.gen_range(0..=80) } else { 10 },
            dup_per_mille: if random { rng.gen_range(0..=50) } else { 10 },
            delay_max_ms: rng.gen_range(2..=20),
            straggle_per_mille: if random { rng.gen_range(0..=10) } else { 0 },
            straggle_max_ms: 800,
            frame_bytes_max: frame_bytes_max(),
            chunk_bytes_max: CHUNK_BYTES_MAX,
        };
        let persist_max_ms = rng.gen_range(2..=30);
        let client_restart_per_mille = if random { rng.gen_range(0..=20) } else { 0 };
        let mut clients: Vec<Client> = (0..p.clients)
            .map(|c| {
                let deep = c == 0 && p.seed.is_multiple_of(DEEP_EVERY);
                let window = if deep { DEEP_WINDOW } else { SHALLOW_WINDOW };
                Client::new(window, members[c % members.len()])
            })
            .collect();
        let mut bulk = Client::new(SHALLOW_WINDOW, members[p.clients % members.len()]);
        bulk.bulk = true;
        clients.push(bulk);
        let checkers = Checkers::new(&seed);
        let mut w = World {
            p,
            persist_max_ms,
            client_restart_per_mille,
            now_ms: 0,
            rng,
            crash_rng,
            events: BTreeMap::new(),
            next_event: 0,
            nodes,
            members,
            seed,
            reconfig: reconfig::Reconfigs {
                suspects_allowed: true,
                ..Default::default()
            },
            net,
            last_delivery: BTreeMap::new(),
            clients,
            tailers: Default::default(),
            requests: BTreeMap::new(),
            next_attempt: 0,
            checkers,
            stats: Stats {
                thrifty,
                ..Stats::default()
            },
            steps: 0,
            hash: 0xcbf2_9ce4_8422_2325,
            healed_at_ms: None,
            topology_at_ms: None,
            last_leader: None,
            quiet: false,
            trims_chosen: BTreeMap::new(),
            quiet_waits: BTreeSet::new(),
            typo_trims: BTreeMap::new(),
            snapshot_reqs: BTreeSet::new(),
            stale_armed: false,
            crashing: None,
            cut_off: None,
        };
        for id in w.members.clone() {
            w.start_node(id);
        }
        for c in 0..w.clients.len() {
            let at = w.rng.gen_range(0..50);
            w.schedule(at, Event::Client { client: c });
        }
        w.start_tailers();
        let first_fault = if w.p.scenario == Scenario::Random {
            w.rng.gen_range(100..400)
        } else {
            1_000
        };
        w.schedule(first_fault, Event::Fault);
        if spares > 0 {
            let first_change = w.rng.gen_range(200..600);
            w.schedule(first_change, Event::Reconfig);
            // Two voters with one of them suspect for good can never change
            // again (no quorum to remove it): a run that goes down to two
            // voters has no suspect restart.
            w.reconfig.voters_min = if w.p.seed % 4 == 1 { 2 } else { 3 };
            w.reconfig.suspects_allowed = w.reconfig.voters_min > 2;
        }
        let fault_ms = w.p.fault_ms;
        w.schedule(fault_ms, Event::Heal);
        w
    }

    fn config(&self, id: NodeId) -> Config {
        // A spare's cluster file lists it too, as a real joiner's does: its
        // seed differs from the others', which the log must overrule.
        let mut seed = self.seed.clone();
        if !seed.contains(&id) {
            seed.push(id);
        }
        let mut c = Config::new(id, seed);
        c.limits.batch_entries_max = 8;
        c.limits.batch_bytes_max = 512;
        c.limits.window_entries_max = 32;
        c.limits.window_bytes_max = 2048;
        c.limits.catchup_entries_max = 16;
        c.limits.catchup_bytes_max = CATCHUP_BYTES_MAX;
        c.limits.uncommitted_bytes_max = 16 << 10;
        c.limits.value_bytes_max = VALUE_BYTES_MAX;
        // Small enough that runs which open many sessions evict (see
        // `inv_acked::SESSIONS_MAX`), and that the session table a Catchup
        // may carry needs only a modest frame (`frame_bytes_max`).
        c.limits.sessions_max = inv_acked::SESSIONS_MAX;
        c.limits.session_seqs_max = inv_acked::SESSION_SEQS_MAX;
        c.limits.session_window = inv_acked::WINDOW;
        c.limits.frame_bytes_max = frame_bytes_max();
        c.mutation = self.p.mutation;
        c.thrifty = self.p.thrifty;
        c
    }

    fn schedule(&mut self, delay_ms: u64, event: Event) {
        self.next_event += 1;
        self.events
            .insert((self.now_ms + delay_ms, self.next_event), event);
    }

    fn trace(&mut self, what: &str) {
        fnv(&mut self.hash, &self.now_ms.to_le_bytes());
        fnv(&mut self.hash, what.as_bytes());
        if self.p.trace {
            eprintln!("{:>6} {what}", self.now_ms);
        }
    }

    /// Prints in trace mode without touching the hash (messages are hashed as bytes).
    fn note(&self, what: &str) {
        eprintln!("{:>6} {what}", self.now_ms);
    }

    fn start_node(&mut self, id: NodeId) {
        let config = self.config(id);
        let seed = self.rng.gen();
        let now = self.now_ms;
        self.power_loss(id);
        let node = self.nodes.get_mut(&id).expect("member");
        self.checkers.on_store_restart(id, &node.store);
        if !self.checkers.found.is_empty() {
            // Recovering over a prefix already known wrong may panic in the
            // core, and a panic would discard the checker's report.
            return;
        }
        let mut replica =
            Replica::new(config, node.store.clone(), seed, now).expect("recover from MemStore");
        replica.set_applied(node.applied);
        node.epoch += 1;
        self.stats.restarts += 1;
        let epoch = node.epoch;
        let status = replica.status();
        node.replica = Some(replica);
        self.checkers.on_restart(id, &status);
        let at = self.rng.gen_range(0..10);
        self.schedule(at, Event::Tick { node: id, epoch });
        self.trace(&format!("start node {id}"));
    }

    /// `id`'s store loses power: the unsynced batches it keeps are durable
    /// from now on, for the checkers too.
    fn power_loss(&mut self, id: NodeId) {
        let survivors = self.survivors();
        let node = self.nodes.get_mut(&id).expect("member");
        let unsynced = node.unsynced.len() as u64;
        let kept = node.crash_store(survivors);
        self.stats.unsynced_lost += unsynced - kept.len() as u64;
        self.stats.unsynced_kept += kept.len() as u64;
        for batch in &kept {
            self.checkers.on_durable_write(id, batch);
        }
    }

    fn crash_node(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).expect("member");
        if node.replica.is_none() {
            return;
        }
        node.replica = None;
        node.pending.clear();
        node.persist_scheduled = false;
        self.power_loss(id);
        self.stats.crashes += 1;
        if self.crashing == Some(id) {
            self.crashing = None;
        }
        self.trace(&format!("crash node {id}"));
    }

    fn live(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.replica.is_some())
            .map(|(&id, _)| id)
            .collect()
    }

    /// When the faults and the liveness phase are over and the quiet phase
    /// starts: a deep pipeline drains at the sim's small windows, so it gets
    /// more time.
    fn run_end_ms(&self) -> u64 {
        let deep = self.clients.iter().any(|c| c.window > SHALLOW_WINDOW);
        self.p.fault_ms + self.p.liveness_ms * if deep { 3 } else { 1 }
    }

    pub fn run(mut self) -> Outcome {
        let end = self.run_end_ms();
        self.run_until(end);
        if self.checkers.found.is_empty() && self.healed_at_ms.is_some() {
            self.settle();
        }
        self.finish();
        self.reconfig_totals();
        self.stats.sessions_evicted = self.checkers.acked.evicted;
        Outcome {
            seed: self.p.seed,
            steps: self.steps,
            hash: self.hash,
            violations: self.checkers.found,
            stats: self.stats,
        }
    }

    /// Runs events up to simulated time `end` (or the first violation);
    /// later events stay queued.
    fn run_until(&mut self, end: u64) {
        while let Some(entry) = self.events.first_entry() {
            if entry.key().0 > end {
                break;
            }
            let ((at, _), event) = entry.remove_entry();
            self.now_ms = at;
            self.steps += 1;
            self.step(event);
            if !self.checkers.found.is_empty() && !self.p.trace {
                break;
            }
        }
    }

    fn step(&mut self, event: Event) {
        match event {
            Event::Deliver {
                from,
                to,
                message,
                config_epoch,
                incarnation,
            } => {
                // A partition that started while this was in flight withholds it.
                if !self.net.deliverable(from, to) {
                    self.stats.withheld += 1;
                    return;
                }
                if let Some(v) = self.net.check_delivery(from, to, &message) {
                    self.checkers.found.push(v);
                    return;
                }
                self.note_stale_accepted(to, &message);
                let bytes = postcard::to_allocvec(&message).unwrap_or_default();
                fnv(&mut self.hash, &bytes);
                if self.p.trace {
                    self.note(&format!("deliver {from}->{to} {message:?}"));
                }
                let now = self.now_ms;
                let Some(r) = self.nodes.get_mut(&to).and_then(|n| n.replica.as_mut()) else {
                    return;
                };
                let envelope = Envelope {
                    epoch: config_epoch,
                    incarnation,
                    message,
                };
                r.on_message(from, envelope, now);
                self.drain(to);
            }
            Event::Persist { node: id, epoch } => {
                let node = self.nodes.get_mut(&id).expect("member");
                if node.epoch != epoch || node.replica.is_none() {
                    return;
                }
                node.persist_scheduled = false;
                let Some(persist) = node.pending.pop_front() else {
                    return;
                };
                let result = if persist.sync {
                    node.store.write(&persist.batch)
                } else {
                    node.store.write_unsynced(&persist.batch)
                };
                self.trace(&format!(
                    "persist node {id} ticket {}",
                    persist.ticket.get()
                ));
                let now = self.now_ms;
                let node = self.nodes.get_mut(&id).expect("member");
                let r = node.replica.as_mut().expect("live");
                match result {
                    Ok(()) if !persist.sync => {
                        node.unsynced.push(persist.batch);
                        self.stats.unsynced_writes += 1;
                        r.on_persisted(persist.ticket, now);
                    }
                    Ok(()) => {
                        for batch in std::mem::take(&mut node.unsynced) {
                            self.checkers.on_durable_write(id, &batch);
                        }
                        self.checkers.on_durable_write(id, &persist.batch);
                        r.on_persisted(persist.ticket, now);
                    }
                    Err(_) => {
                        r.on_storage_failed();
                        self.trace(&format!("storage failed on node {id}"));
                        let back = self.rng.gen_range(50..500);
                        self.schedule(back, Event::Restart { node: id });
                    }
                }
                self.drain(id);
            }
            Event::Tick { node: id, epoch } => {
                let now = self.now_ms;
                let node = self.nodes.get_mut(&id).expect("member");
                if node.epoch != epoch {
                    return;
                }
                let Some(r) = node.replica.as_mut() else {
                    return;
                };
                r.tick(now);
                self.schedule(10, Event::Tick { node: id, epoch });
                self.drain(id);
            }
            Event::Client { .. } if self.quiet => {}
            Event::Client { client } => self.client_step(client),
            Event::Tail { .. } if self.quiet => {}
            Event::Tail { tailer, to } => self.tail_step(tailer, to),
            Event::Crash { node, epoch } => {
                if self.nodes[&node].epoch == epoch && self.healed_at_ms.is_none() {
                    self.crash_node(node);
                    let back = self.rng.gen_range(1..100);
                    self.schedule(back, Event::Restart { node });
                }
            }
            Event::Fault => self.fault(),
            Event::Reconfig => self.reconfig_step(),
            Event::Trim { node } => self.propose_trim(node),
            Event::Restart { node } => {
                let failed = self.nodes[&node]
                    .replica
                    .as_ref()
                    .is_some_and(|r| r.is_failed());
                if failed {
                    self.crash_node(node);
                }
                // At most one node per run comes back with damaged voting state.
                let down = self.nodes[&node].replica.is_none();
                if down
                    && self.stats.suspects == 0
                    && self.reconfig.suspects_allowed
                    && self.rng.gen_range(0..8) == 0
                {
                    self.nodes[&node].store.mark_suspect("simulated corruption");
                    self.stats.suspects += 1;
                    self.trace(&format!("node {node} restarts suspect"));
                }
                if self.nodes[&node].replica.is_none() {
                    self.start_node(node);
                    self.drain(node);
                }
            }
            Event::Heal => {
                self.net.heal();
                self.net.drop_per_mille = 0;
                self.net.dup_per_mille = 0;
                self.net.straggle_per_mille = 0;
                self.healed_at_ms = Some(self.now_ms);
                self.crashing = None;
                self.trace("heal");
                for id in self.members.clone() {
                    if self.nodes[&id].replica.is_none() {
                        self.start_node(id);
                        self.drain(id);
                    }
                }
            }
        }
    }

    /// Polls every output of `id` until all are empty.
    fn drain(&mut self, id: NodeId) {
        loop {
            let mut progressed = false;
            let node = self.nodes.get_mut(&id).expect("member");
            let Some(r) = node.replica.as_mut() else {
                return;
            };
            while let Some(w) = r.poll_write() {
                node.pending.push_back(w);
                progressed = true;
            }
            let mut out = Vec::new();
            while let Some(m) = r.poll_message() {
                out.push(m);
            }
            let mut chosen = Vec::new();
            while let Some(c) = r.poll_chosen() {
                chosen.push(c);
            }
            let mut replies = Vec::new();
            while let Some(rep) = r.poll_reply() {
                replies.push(rep);
            }
            let offered: Vec<_> = std::iter::from_fn(|| r.poll_snapshot()).collect();
            let status = r.status();
            if self.p.trace && status.membership.epoch != node.config_epoch {
                node.config_epoch = status.membership.epoch;
                let line = format!("node {id} configuration {}", status.membership);
                eprintln!("{:>6} {line}", self.now_ms);
            }
            if let Some(last) = chosen.last() {
                r.set_applied(last.index);
            }
            self.stats.trim_max = self.stats.trim_max.max(status.trim_index);
            if !node.pending.is_empty() && !node.persist_scheduled {
                node.persist_scheduled = true;
                let epoch = node.epoch;
                let delay = self.rng.gen_range(1..=self.persist_max_ms);
                self.schedule(delay, Event::Persist { node: id, epoch });
            }
            progressed |=
                !out.is_empty() || !chosen.is_empty() || !replies.is_empty() || !offered.is_empty();
            for c in chosen {
                if c.hidden.is_some() {
                    self.stats.duplicates += 1;
                }
                if let Command::Trim { upto } = c.command {
                    // As folded where the Trim is chosen: the first emission's.
                    let snapshots = &self.checkers.snapshots;
                    let cut = upto
                        .min(snapshots.trim_bound(c.index))
                        .min(snapshots.hold_bound().unwrap_or(Index::MAX));
                    self.trims_chosen.entry(c.index).or_insert(cut);
                }
                let applied = self.nodes[&id].applied;
                self.checkers.on_chosen_output(id, applied, &c);
                self.nodes.get_mut(&id).expect("member").applied = c.index;
                self.stats.chosen = self.stats.chosen.max(c.index);
                if self.p.trace {
                    self.note(&format!("chosen node {id} {c:?}"));
                }
            }
            // The application loads the snapshot (a node behind the trim point).
            for meta in offered {
                self.checkers
                    .snapshots
                    .on_install(id, &meta, &mut self.checkers.found);
                let node = self.nodes.get_mut(&id).expect("member");
                node.applied = meta.index;
                if let Some(r) = node.replica.as_mut() {
                    r.on_snapshot_installed(meta.index);
                }
                self.stats.snapshot_installs += 1;
                self.trace(&format!("node {id} installed snapshot {meta:?}"));
            }
            for m in out {
                self.send(id, m);
            }
            for rep in replies {
                self.quiet_waits.remove(&rep.id);
                if let Some(above_chosen) = self.typo_trims.remove(&rep.id) {
                    // Proposed at the leader, above its chosen index or its
                    // newest snapshot: refused, and saying which.
                    match (&rep.result, above_chosen) {
                        (Err(OpError::TrimAboveChosen { .. }), true) => {
                            self.stats.trims_refused += 1
                        }
                        (Err(OpError::TrimAboveSnapshot { .. }), false) => {
                            self.stats.trims_refused_snapshot += 1
                        }
                        (
                            Ok(_)
                            | Err(OpError::TrimAboveChosen { .. })
                            | Err(OpError::TrimAboveSnapshot { .. }),
                            _,
                        ) => self.checkers.found.push(Violation {
                            invariant: settle::TRIM,
                            detail: format!(
                                "node {id} answered {:?} to a trim above its {}",
                                rep.result,
                                if above_chosen {
                                    "chosen index"
                                } else {
                                    "newest snapshot"
                                }
                            ),
                        }),
                        (Err(_), _) => {}
                    }
                    continue;
                }
                if self.snapshot_reqs.remove(&rep.id) {
                    self.trace(&format!("snapshot at {id}: {:?}", rep.result));
                    continue;
                }
                if self.on_reconfig_reply(rep.id, &rep.result) {
                    continue;
                }
                self.on_reply(id, rep.id, rep.result);
            }
            let epoch = self.nodes[&id].epoch;
            self.checkers.on_status(&status, epoch);
            if status.role == Role::Leader && self.last_leader != Some(status.ballot) {
                self.last_leader = Some(status.ballot);
                self.stats.leader_changes += 1;
                self.trace(&format!("leader {id} ballot {}", status.ballot));
                self.redirect_pending(id);
                self.tail_new_leader(status.ballot);
                // Crash fresh leaders now and then, before their writes settle.
                if self.healed_at_ms.is_none()
                    && self.p.scenario == Scenario::Random
                    && self.rng.gen_range(0..5) == 0
                {
                    let at = self.rng.gen_range(0..6);
                    self.schedule(at, Event::Crash { node: id, epoch });
                }
            }
            if !progressed {
                return;
            }
        }
    }

    fn send(&mut self, from: NodeId, out: Outbound) {
        let (to, config_epoch, incarnation) = (out.to, out.epoch, out.incarnation);
        let message = out.message;
        match self.net.check_frame(from, to, &message) {
            Ok(framed) => {
                let len = framed.len as u64;
                self.stats.frame_max = self.stats.frame_max.max(len);
                if framed.chunked {
                    self.stats.chunk_frame_max = self.stats.chunk_frame_max.max(len);
                }
                if framed.trim_state {
                    self.stats.trim_state_frames += 1;
                    self.stats.trim_state_frame_max = self.stats.trim_state_frame_max.max(len);
                }
            }
            Err(v) => {
                // Not delivered: the transport refuses it (`SendError::Frame`).
                self.checkers.found.push(v);
                return;
            }
        }
        // `StaleAccepted`: a leader crashing mid-broadcast sends nothing more.
        if self.crashing == Some(from) {
            return;
        }
        let slow = self.stale_scenario_send(from, &message) + self.deposed_scenario_delay(to);
        match &message {
            Message::Accept {
                ballot,
                first_index,
                values,
                ..
            } => {
                for (k, v) in values.iter().enumerate() {
                    self.checkers
                        .on_proposal(*ballot, first_index + k as Index, v);
                }
            }
            // An unsynced answer is no vote: a crash may take it back.
            Message::Accepted {
                ballot,
                indexes,
                synced: true,
                ..
            } => {
                self.checkers.on_vote(from, "Accepted", *ballot);
                self.checkers.on_accepted(from, *ballot, indexes);
            }
            Message::Promise {
                ballot, next_index, ..
            } => {
                self.checkers.on_vote(from, "Promise", *ballot);
                if next_index.is_some() {
                    self.stats.promise_chunks += 1;
                }
            }
            Message::Catchup { values, .. } if !values.is_empty() => self.stats.catchups += 1,
            _ => {}
        }
        match self.net.fate(from, to, &mut self.rng) {
            Fate::Blocked => self.stats.withheld += 1,
            Fate::Dropped => self.stats.drops += 1,
            Fate::Deliver(delays) => {
                if delays.len() > 1 {
                    self.stats.dups += 1;
                }
                for d in delays {
                    let d = d + slow;
                    let at = self.now_ms + d;
                    let last = self.last_delivery.entry((from, to)).or_default();
                    if at < *last {
                        self.stats.reorders += 1;
                    }
                    *last = (*last).max(at);
                    self.schedule(
                        d,
                        Event::Deliver {
                            from,
                            to,
                            message: message.clone(),
                            config_epoch,
                            incarnation,
                        },
                    );
                }
            }
        }
    }

    fn finish(&mut self) {
        if !self.checkers.found.is_empty() || self.healed_at_ms.is_none() {
            return;
        }
        // Liveness: after the heal every client got a fresh append chosen.
        for c in &self.clients {
            if c.acked_after_heal == 0 {
                self.checkers.found.push(Violation {
                    invariant: LIVENESS,
                    detail: format!(
                        "client with session {:?} got nothing chosen after the heal",
                        c.session
                    ),
                });
            }
        }
        // Exactly-once on the raw log: what every store holds as chosen, not
        // only what some node happened to emit before the run ended.
        let raw: Vec<(Index, Bytes)> = self
            .nodes
            .values()
            .flat_map(|node| raw_chosen(&node.store))
            .collect();
        for (index, value) in raw {
            self.checkers.on_raw_chosen(index, &value);
        }
        if !self.checkers.found.is_empty() {
            return;
        }
        // Invariant 3, second half: acknowledged appends are readable.
        let acks: Vec<(Index, Bytes)> = self.checkers.acked.acked_payloads();
        let members = self.checkers.agreement.governing().latest().clone();
        for (&id, node) in &self.nodes {
            let Some(r) = node.replica.as_ref() else {
                continue;
            };
            let status = r.status();
            // A node the history removed learns nothing more: one that had
            // skipped to the trim point may never learn the snapshot that
            // lets it emit again (seed 3235), and reads stop at what it emitted.
            let member = members.is_member(id);
            for (index, value) in &acks {
                if *index > status.chosen_index || *index <= status.trim_index {
                    continue;
                }
                let limit = paxlog_storage::ReadLimit {
                    entries_max: 1,
                    bytes_max: usize::MAX,
                };
                // Through the reader's path: hidden appends are left out.
                let run = r.read_user_entries(*index, *index, limit).ok();
                if !member && run.as_ref().is_some_and(|v| *index > v.emitted_index) {
                    continue;
                }
                let got = run.and_then(|v| v.entries.into_iter().next());
                let ok = got
                    .as_ref()
                    .is_some_and(|(i, payload)| *i == *index && payload == value);
                if !ok {
                    self.checkers.found.push(Violation {
                        invariant: inv_acked::NAME,
                        detail: format!(
                            "node {id}: acknowledged index {index} reads back as {got:?}"
                        ),
                    });
                }
            }
        }
    }
}

/// The chosen entries `store` holds above its trim point.
fn raw_chosen(store: &MemStore) -> Vec<(Index, Bytes)> {
    let meta = store.metadata();
    let limit = paxlog_storage::ReadLimit {
        entries_max: usize::MAX,
        bytes_max: usize::MAX,
    };
    store
        .range(meta.trim_index + 1, meta.chosen_index, limit)
        .map(|v| v.into_iter().map(|(i, a)| (i, a.value)).collect())
        .unwrap_or_default()
}
