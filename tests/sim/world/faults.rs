//! Fault injection: partitions (symmetric, asymmetric, partial and the
//! OmniPaxos topologies), crashes, disk failures, and application trims.

use paxlog::core::{NodeId, Proposal, ProposalCommand, Role};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::{Event, Scenario, World};
use crate::client::request_id;

impl World {
    pub(super) fn fault(&mut self) {
        if self.healed_at_ms.is_some() {
            return;
        }
        let nodes = self.members.clone();
        let n = nodes.len();
        let pick = |rng: &mut ChaCha8Rng| nodes[rng.gen_range(0..n)];
        match self.p.scenario {
            Scenario::Random => {
                let next = self.rng.gen_range(100..400);
                self.schedule(next, Event::Fault);
                match self.rng.gen_range(0..10) {
                    0 => {
                        let a = pick(&mut self.rng);
                        for &b in &nodes {
                            if a != b {
                                self.net.cut(a, b);
                            }
                        }
                        self.stats.partitions += 1;
                        self.trace(&format!("isolate {a}"));
                    }
                    1 => {
                        let (a, b) = (pick(&mut self.rng), pick(&mut self.rng));
                        if a != b {
                            self.net.blocked.insert((a, b));
                            self.stats.partitions += 1;
                            self.trace(&format!("block {a}->{b}"));
                        }
                    }
                    2 => {
                        let (a, b) = (pick(&mut self.rng), pick(&mut self.rng));
                        if a != b {
                            self.net.cut(a, b);
                            self.stats.partitions += 1;
                            self.trace(&format!("cut {a}-{b}"));
                        }
                    }
                    3 => self.apply_topology(Scenario::Chained),
                    4 => self.apply_topology(Scenario::QuorumLoss),
                    5 => {
                        self.net.heal();
                        self.trace("heal links");
                    }
                    6 => {
                        let live = self.live();
                        let a = live[self.rng.gen_range(0..live.len())];
                        if self.rng.gen_bool(0.35) {
                            self.nodes[&a].store.fail_next_write();
                            self.stats.disk_failures += 1;
                            self.trace(&format!("disk of node {a} will fail"));
                        } else {
                            let leader = live.iter().copied().find(|id| {
                                self.nodes[id]
                                    .replica
                                    .as_ref()
                                    .is_some_and(|r| r.status().role == Role::Leader)
                            });
                            let node = leader.unwrap_or(a);
                            self.publish_snapshot(node);
                            let at = self.rng.gen_range(20..80);
                            self.schedule(at, Event::Trim { node });
                        }
                    }
                    _ => {
                        let live = self.live();
                        if live.len() > 1 {
                            let a = live[self.rng.gen_range(0..live.len())];
                            self.crash_node(a);
                            let back = self.rng.gen_range(20..600);
                            self.schedule(back, Event::Restart { node: a });
                        }
                    }
                }
            }
            // The next Accept broadcast is cut by a crash (`world/stale.rs`).
            Scenario::StaleAccepted => {
                let next = self.rng.gen_range(300..700);
                self.schedule(next, Event::Fault);
                self.stale_armed = true;
            }
            Scenario::DeposedLeader => self.deposed_fault(),
            s => self.apply_topology(s),
        }
    }

    /// The application on `node` publishes a snapshot of its state at what it
    /// applied (a trim up to it follows, `propose_trim`).
    pub(super) fn publish_snapshot(&mut self, node: NodeId) {
        let now = self.now_ms;
        let applied = self.nodes[&node].applied;
        let Some(r) = self.nodes.get_mut(&node).and_then(|n| n.replica.as_mut()) else {
            return;
        };
        if applied == 0 || applied > r.status().chosen_index {
            return;
        }
        let crc32c = self.checkers.snapshots.publish(node, applied);
        self.next_attempt += 1;
        let id = request_id(0xFFFF, self.next_attempt);
        self.snapshot_reqs.insert(id);
        if self.quiet {
            self.quiet_waits.insert(id);
        }
        let command = ProposalCommand::Snapshot {
            index: applied,
            size_bytes: 8,
            crc32c,
            holder: node,
        };
        r.propose(untracked(id, command), now);
        self.stats.snapshots += 1;
        self.trace(&format!("propose snapshot {applied} at {node}"));
        self.drain(node);
    }

    /// The application on `node` trims the prefix up to the newest snapshot
    /// its node knows.
    pub(super) fn propose_trim(&mut self, node: NodeId) {
        let now = self.now_ms;
        let Some(r) = self.nodes.get_mut(&node).and_then(|n| n.replica.as_mut()) else {
            return;
        };
        let status = r.status();
        let chosen = status.chosen_index;
        let snapshot = status.snapshot.map_or(0, |s| s.index);
        // A slow reader on this node holds the log a little behind it, renews
        // its hold now and then, and sometimes lets it go (or stops renewing,
        // and the leader expires it).
        if !self.quiet {
            let applied = self.nodes[&node].applied;
            let name = format!("reader-{node}");
            let command = match self.rng.gen_range(0..6) {
                0 | 1 => Some(ProposalCommand::Hold {
                    name,
                    index: applied.saturating_sub(self.rng.gen_range(0..40)),
                    lease_ms: self.rng.gen_range(200..3_000),
                }),
                2 => Some(ProposalCommand::Release {
                    name,
                    renewed_at: None,
                }),
                _ => None,
            };
            if let Some(command) = command {
                self.next_attempt += 1;
                let id = request_id(0xFFFF, self.next_attempt);
                self.snapshot_reqs.insert(id);
                self.stats.holds += 1;
                let r = self.nodes.get_mut(&node).and_then(|n| n.replica.as_mut());
                if let Some(r) = r {
                    r.propose(untracked(id, command), now);
                }
            }
        }
        let Some(r) = self.nodes.get_mut(&node).and_then(|n| n.replica.as_mut()) else {
            return;
        };
        // Now and then a typo: a trim above everything chosen, or above the
        // newest snapshot, which the leader must refuse (it would cut what
        // nobody has applied, or what a node behind could not rebuild).
        let typo = if self.quiet {
            0
        } else {
            self.rng.gen_range(0..8)
        };
        let upto = match typo {
            1 => chosen + self.rng.gen_range(1..=1_000),
            2 if snapshot < chosen => self.rng.gen_range(snapshot + 1..=chosen),
            _ => snapshot,
        };
        let typo = upto != snapshot;
        if upto == 0 {
            return;
        }
        self.next_attempt += 1;
        // Not in `requests`: the reply is not an append's acknowledgement.
        let id = request_id(0xFFFF, self.next_attempt);
        if self.quiet {
            // The quiet phase waits for its answer (`world/settle.rs`).
            self.quiet_waits.insert(id);
        }
        if typo {
            self.typo_trims.insert(id, upto > chosen);
        }
        r.propose(untracked(id, ProposalCommand::Trim(upto)), now);
        self.stats.trims += 1;
        self.trace(&format!("propose trim {upto} at {node}"));
        self.drain(node);
    }

    /// The OmniPaxos paper's partial-connectivity scenarios, built around the
    /// current leader so they bite.
    fn apply_topology(&mut self, s: Scenario) {
        let nodes = self.members.clone();
        let leader = self.live().into_iter().find(|id| {
            self.nodes[id]
                .replica
                .as_ref()
                .is_some_and(|r| r.status().role == Role::Leader)
        });
        let leader = leader.unwrap_or(nodes[0]);
        let others: Vec<NodeId> = nodes.iter().copied().filter(|&x| x != leader).collect();
        let mut up = Vec::new();
        match s {
            Scenario::Chained => {
                // leader - others[0] - others[1] - ...: the leader keeps one link.
                up.push((leader, others[0]));
                for w in others.windows(2) {
                    up.push((w[0], w[1]));
                }
            }
            Scenario::QuorumLoss => {
                // Only a hub (not the leader) reaches everyone.
                let hub = others[0];
                for &x in &nodes {
                    if x != hub {
                        up.push((hub, x));
                    }
                }
            }
            Scenario::Constrained
            | Scenario::Random
            | Scenario::StaleAccepted
            | Scenario::DeposedLeader => {
                // The leader is cut off; one follower is cut from all but a quorum.
                let q = nodes.len() / 2 + 1;
                let hub = others[0];
                for (k, &a) in others.iter().enumerate() {
                    for &b in &others[k + 1..] {
                        if a != hub || others.iter().position(|&x| x == b).is_some_and(|p| p < q) {
                            up.push((a, b));
                        }
                    }
                }
            }
        }
        self.net.only(&nodes, &up);
        self.topology_at_ms = Some(self.now_ms);
        self.stats.partitions += 1;
        self.trace(&format!("topology {s:?} around leader {leader}: {up:?}"));
    }
}

/// A proposal outside any session.
fn untracked(id: u64, command: ProposalCommand) -> Proposal {
    Proposal {
        id,
        client_id: 0,
        seq: 0,
        floor: 0,
        command,
        expected_ballot: None,
    }
}
