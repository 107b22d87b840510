//! Fuzzes a 3-node core cluster with arbitrary messages from authenticated
//! peers (a bug or version skew on one node, not a stranger), interleaved
//! with honest traffic: proposals, ticks, persisted writes and delivered
//! messages, reordered and lost. Generated messages use every variant,
//! ballots up to `u64::MAX` counters, huge and near indexes, and values up
//! to the size limit. After every step no node panicked or failed, every
//! node's `assert_invariants` holds, what it holds in memory stays under a
//! fixed cap, and one input never floods its output queues.
//!
//! CI runs 100,000 generated messages with a fresh seed (printed):
//! `cargo nextest run --cargo-profile ci -p paxlog-core --test peer_fuzz`
//!
//! One million, and replaying a seed:
//! `PAXLOG_FUZZ_MESSAGES=1000000 PAXLOG_FUZZ_SEED=S cargo nextest run
//! --cargo-profile ci -p paxlog-core --test peer_fuzz --no-capture`

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;
use paxlog_core::{
    Ballot, Command, Config, Envelope, Index, Message, NodeId, Persist, Proposal, ProposalCommand,
    Replica, Role, SessionTable, TrimState,
};
use paxlog_storage::{Accepted, Identity, MemStore, Store};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const NODES: u64 = 3;
/// Items a replica may hold (`Replica::held_items`): entries within
/// `PEER_INDEX_AHEAD_MAX` (2^16) of the chosen index, once in the mirror
/// and once in a candidate's reports, plus what the application has not
/// applied yet (the harness applies promptly).
const HELD_MAX: usize = 2 * (1 << 16) + 10_000;
/// Messages one input may queue: a leader's Accepts to two peers fill at
/// most their windows, plus a handful of answers.
const OUT_PER_STEP_MAX: usize = 2 * 1024 + 64;
/// Honest messages in flight; beyond it the simulated network drops.
const NET_MAX: usize = 4096;

struct Node {
    replica: Replica<MemStore>,
    store: MemStore,
    writes: VecDeque<Persist>,
}

struct World {
    nodes: Vec<Node>,
    net: Vec<(NodeId, NodeId, Envelope)>,
    rng: ChaCha8Rng,
    now_ms: u64,
    next_request: u64,
    seq: u64,
    value_bytes_max: usize,
    generated: u64,
    delivered: u64,
    chosen_max: Index,
    held_max: usize,
    leaders: u64,
    acknowledged: u64,
    storm: bool,
}

impl World {
    fn new(seed: u64) -> Self {
        let nodes = (1..=NODES)
            .map(|id| {
                let store = MemStore::new(Identity {
                    cluster_id: "fuzz".into(),
                    node_id: id,
                });
                let config = Config::new(id, (1..=NODES).collect());
                let replica = Replica::new(config, store.clone(), seed, 0).expect("new replica");
                Node {
                    replica,
                    store,
                    writes: VecDeque::new(),
                }
            })
            .collect();
        World {
            nodes,
            net: Vec::new(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            now_ms: 0,
            next_request: 1,
            seq: 0,
            value_bytes_max: Config::new(1, vec![1]).limits.value_bytes_max,
            generated: 0,
            delivered: 0,
            chosen_max: 0,
            held_max: 0,
            leaders: 0,
            acknowledged: 0,
            storm: true,
        }
    }

    fn node(&mut self, id: NodeId) -> &mut Node {
        &mut self.nodes[id as usize - 1]
    }

    /// Polls every output of `id` in the documented order, then checks it.
    fn drain(&mut self, id: NodeId) {
        let mut out = 0;
        let n = &mut self.nodes[id as usize - 1];
        while let Some(w) = n.replica.poll_write() {
            n.writes.push_back(w);
        }
        while let Some(m) = n.replica.poll_message() {
            // A member this test does not run (a configuration a faulty
            // peer's chosen values named) is a node the network cannot reach.
            let (to, envelope) = m.envelope();
            if (1..=NODES).contains(&to) {
                self.net.push((id, to, envelope));
            }
            out += 1;
        }
        while n.replica.poll_chosen().is_some() {}
        while let Some(reply) = n.replica.poll_reply() {
            self.acknowledged += u64::from(reply.result.is_ok());
        }
        let r = &n.replica;
        assert!(!r.is_failed(), "node {id} failed");
        r.assert_invariants();
        assert!(out <= OUT_PER_STEP_MAX, "node {id} queued {out} messages");
        let held = r.held_items();
        assert!(held <= HELD_MAX, "node {id} holds {held} items");
        self.held_max = self.held_max.max(held);
        self.chosen_max = self.chosen_max.max(r.chosen_index());
        while self.net.len() > NET_MAX {
            let k = self.rng.gen_range(0..self.net.len());
            self.net.swap_remove(k);
        }
    }

    /// One input. Storms of generated messages alternate with calm
    /// stretches, so honest leaders also get elected and choose entries.
    fn step(&mut self) {
        if self.rng.gen_ratio(1, 3_000) {
            self.storm = !self.storm;
        }
        let inject = if self.storm { 35 } else { 1 };
        if self.rng.gen_range(0..100) < inject {
            return self.inject();
        }
        let id = self.rng.gen_range(1..=NODES);
        match self.rng.gen_range(0..100) {
            0..=59 => self.deliver(),
            60..=74 => self.persist(id),
            75..=84 => {
                self.now_ms += self.rng.gen_range(1..80);
                let now = self.now_ms;
                for id in 1..=NODES {
                    self.node(id).replica.tick(now);
                    self.drain(id);
                }
            }
            85..=92 => self.propose(),
            93..=94 => {
                // Tails among the honest traffic: at the leader and at followers.
                let now = self.now_ms;
                let request = self.next_request;
                self.next_request += 1;
                self.node(id).replica.read_index(request, now);
                self.drain(id);
            }
            _ => {
                let n = self.node(id);
                let applied = n.replica.emitted_index();
                n.replica.set_applied(applied);
                self.drain(id);
            }
        }
    }

    fn deliver(&mut self) {
        if self.net.is_empty() {
            return;
        }
        let k = self.rng.gen_range(0..self.net.len());
        let (from, to, message) = if self.rng.gen_ratio(1, 20) {
            self.net[k].clone() // duplicated
        } else {
            self.net.swap_remove(k)
        };
        self.delivered += 1;
        let now = self.now_ms;
        self.node(to).replica.on_message(from, message, now);
        self.drain(to);
    }

    fn persist(&mut self, id: NodeId) {
        let now = self.now_ms;
        let n = self.node(id);
        while let Some(w) = n.writes.pop_front() {
            n.store.write(&w.batch).expect("memstore write");
            n.replica.on_persisted(w.ticket, now);
        }
        self.drain(id);
    }

    fn propose(&mut self) {
        let leader = (1..=NODES).find(|&id| self.node(id).replica.role() == Role::Leader);
        let id = leader.unwrap_or_else(|| self.rng.gen_range(1..=NODES));
        let command = match self.rng.gen_range(0..50) {
            0 => ProposalCommand::Trim(self.node(id).replica.chosen_index() / 2),
            1 => ProposalCommand::Barrier,
            2 => ProposalCommand::Register {
                supersedes: Some(self.rng.gen_range(0..8)),
            },
            _ => ProposalCommand::Append(self.payload()),
        };
        self.seq += 1;
        // Sessions are indexes: small ones may well be registered.
        let client_id = self.rng.gen_range(0..8);
        let proposal = Proposal {
            id: self.next_request,
            client_id,
            seq: self.seq % 16,
            floor: self.rng.gen_range(0..4),
            command,
            expected_ballot: None,
        };
        self.next_request += 1;
        let now = self.now_ms;
        self.node(id).replica.propose(proposal, now);
        self.drain(id);
    }

    /// Mostly small, now and then up to (and past) the value limit.
    fn payload(&mut self) -> Bytes {
        let len = match self.rng.gen_range(0..1000) {
            0 => self.value_bytes_max + self.rng.gen_range(0..64),
            1..=5 => self.rng.gen_range(0..=self.value_bytes_max),
            _ => self.rng.gen_range(0..64),
        };
        Bytes::from(vec![self.rng.gen::<u8>(); len])
    }

    fn inject(&mut self) {
        let to = self.rng.gen_range(1..=NODES);
        let from = match self.rng.gen_range(0..50) {
            0 => to,        // never from itself
            1 => NODES + 1, // nor from a stranger
            _ => loop {
                let f = self.rng.gen_range(1..=NODES);
                if f != to {
                    break f;
                }
            },
        };
        let message = self.arbitrary(from, to);
        self.generated += 1;
        let now = self.now_ms;
        // Sent as `from` would seal it: what a faulty but authenticated
        // peer's messages look like, so they reach the handlers.
        let envelope = match self.nodes.get(from as usize - 1) {
            Some(sender) => Envelope {
                epoch: sender.replica.membership().epoch,
                incarnation: sender.replica.incarnation(),
                message,
            },
            None => Envelope::from(message),
        };
        self.node(to).replica.on_message(from, envelope, now);
        self.drain(to);
    }

    /// A ballot near what `to` promised (so it gets read), or wild.
    fn ballot(&mut self, owner: NodeId, to: NodeId) -> Ballot {
        let promised = self.node(to).replica.status().ballot;
        let node = if self.rng.gen_ratio(9, 10) {
            owner
        } else {
            self.rng.gen_range(0..=NODES + 1)
        };
        let counter = match self.rng.gen_range(0..20) {
            0 => u64::MAX,
            1 => u64::MAX >> 1,
            2 => (u64::MAX >> 1) + 1,
            3 => self.rng.gen(),
            4 => 0,
            5..=9 => return Ballot::new(promised.counter, promised.node),
            _ => promised
                .counter
                .saturating_add(self.rng.gen_range(0..3))
                .saturating_sub(1),
        };
        Ballot::new(counter, node)
    }

    /// An index near `to`'s log, or far, or at the edges of `u64`.
    fn index(&mut self, to: NodeId) -> Index {
        let chosen = self.node(to).replica.chosen_index();
        match self.rng.gen_range(0..20) {
            0 => u64::MAX,
            1 => self.rng.gen(),
            2 => chosen + (1 << 16) + self.rng.gen_range(1..4), // just out of reach
            3 => chosen + (1 << 16) + self.rng.gen_range(0..5_000_000),
            4 => 0,
            _ => (chosen + self.rng.gen_range(0..12)).saturating_sub(4),
        }
    }

    /// A read round: small (plausible), or at the edges of `u64`.
    fn round(&mut self) -> u64 {
        match self.rng.gen_range(0..8) {
            0 => u64::MAX,
            1 => self.rng.gen(),
            _ => self.rng.gen_range(0..16),
        }
    }

    fn values(&mut self, to: NodeId) -> Vec<Bytes> {
        let n = match self.rng.gen_range(0..10) {
            0 => 0,
            1 => self.rng.gen_range(0..64),
            _ => self.rng.gen_range(1..4),
        };
        (0..n).map(|_| self.value(to)).collect()
    }

    fn value(&mut self, to: NodeId) -> Bytes {
        match self.rng.gen_range(0..20) {
            0 => Bytes::from(vec![0xff; self.rng.gen_range(0..16)]), // no command
            1 => Command::Trim {
                upto: self.index(to),
            }
            .encode(),
            2 => Command::Noop.encode(),
            3 => Command::Register {
                supersedes: Some(self.rng.gen_range(0..8)),
            }
            .encode(),
            _ => Command::Append {
                client_id: self.rng.gen_range(0..8),
                seq: self.rng.gen_range(0..8),
                floor: self.rng.gen_range(0..8),
                payload: self.payload(),
            }
            .encode(),
        }
    }

    fn arbitrary(&mut self, from: NodeId, to: NodeId) -> Message {
        let index = self.index(to);
        let chosen_index = self.index(to);
        match self.rng.gen_range(0..13) {
            0 => Message::Prepare {
                ballot: self.ballot(from, to),
                from_index: index,
            },
            1 => {
                let ballot = self.ballot(to, to);
                let k = self.rng.gen_range(0..6);
                let mut entries: Vec<(Index, Accepted)> = (0..k)
                    .map(|_| {
                        let i = self.index(to);
                        let a = Accepted {
                            ballot: self.ballot(from, to),
                            value: self.value(to),
                        };
                        (i, a)
                    })
                    .collect();
                if self.rng.gen_bool(0.7) {
                    entries.sort_by_key(|e| e.0);
                    entries.dedup_by_key(|e| e.0);
                }
                let next_index = self.rng.gen_bool(0.3).then(|| self.index(to));
                let trim_index = if self.rng.gen_bool(0.8) {
                    0
                } else {
                    self.index(to)
                };
                Message::Promise {
                    ballot,
                    from_index: index,
                    entries,
                    next_index,
                    chosen_index,
                    trim_index,
                }
            }
            2 => Message::Nack {
                ballot: self.ballot(to, to),
                promised: self.ballot(from, to),
                leader: self
                    .rng
                    .gen_bool(0.5)
                    .then(|| self.rng.gen_range(0..=NODES + 1)),
            },
            3 => Message::Accept {
                ballot: self.ballot(from, to),
                first_index: index,
                values: self.values(to),
                chosen_index,
                sync: self.rng.gen_bool(0.5),
            },
            4 => {
                let n = self.rng.gen_range(0..8);
                let indexes = (0..n).map(|_| self.index(to)).collect();
                Message::Accepted {
                    ballot: self.ballot(to, to),
                    indexes,
                    chosen_index,
                    synced: self.rng.gen_bool(0.5),
                }
            }
            5 => Message::Heartbeat {
                ballot: self.ballot(from, to),
                chosen_index,
                round: self.round(),
            },
            6 => Message::HeartbeatAck {
                ballot: self.ballot(to, to),
                chosen_index,
                round: self.round(),
            },
            7 => Message::PreVote {
                ballot: self.ballot(from, to),
            },
            8 => Message::PreVoteReply {
                ballot: self.ballot(to, to),
                granted: self.rng.gen(),
                promised: self.ballot(from, to),
            },
            9 => Message::CatchupRequest { from_index: index },
            10 => Message::ReadIndexRequest { id: self.round() },
            11 => Message::ReadIndexReply {
                id: self.round(),
                index: self.rng.gen_bool(0.8).then_some(index),
            },
            _ => {
                let trim_index = if self.rng.gen_bool(0.7) {
                    0
                } else {
                    self.index(to)
                };
                let trim_state = match self.rng.gen_range(0..4) {
                    0 => None,
                    1 => Some(Bytes::from(vec![0xff; self.rng.gen_range(0..64)])),
                    _ => Some(
                        TrimState::new(
                            trim_index,
                            &SessionTable::new(4, 64, 8),
                            &paxlog_core::Membership::seed(&[1, 2, 3]),
                            &paxlog_core::Holds::new(),
                        )
                        .encode(),
                    ),
                };
                Message::Catchup {
                    first_index: index,
                    values: self.values(to),
                    chosen_index,
                    trim_index,
                    trim_state,
                }
            }
        }
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    match v.parse() {
        Ok(n) => Some(n),
        Err(_) => panic!("{name}={v} is not a number"),
    }
}

#[test]
fn arbitrary_peer_messages_never_break_a_node() {
    let seed = env_u64("PAXLOG_FUZZ_SEED").unwrap_or_else(rand::random);
    let target = env_u64("PAXLOG_FUZZ_MESSAGES").unwrap_or(100_000);
    println!("PAXLOG_FUZZ_SEED={seed} PAXLOG_FUZZ_MESSAGES={target}");
    let started = Instant::now();
    let mut w = World::new(seed);
    let mut was_leader = [false; NODES as usize];
    while w.generated < target {
        w.step();
        for id in 1..=NODES {
            let leads = w.node(id).replica.role() == Role::Leader;
            if leads && !was_leader[id as usize - 1] {
                w.leaders += 1;
            }
            was_leader[id as usize - 1] = leads;
        }
    }
    println!(
        "seed {seed}: {} generated and {} honest messages delivered in {:.1} s; \
         highest chosen index {}, {} proposals acknowledged, most items held {}, \
         {} terms led",
        w.generated,
        w.delivered,
        started.elapsed().as_secs_f64(),
        w.chosen_max,
        w.acknowledged,
        w.held_max,
        w.leaders
    );
    assert!(w.acknowledged > 0, "honest traffic got nothing chosen");
}
