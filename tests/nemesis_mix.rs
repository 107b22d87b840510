//! Every fault, mixed (issue 12): real `paxlog serve` processes, every peer
//! link through the harness's UDP proxy, every data directory on its own
//! loop-device disk whose unsynced writes a power cut discards. Two writers
//! pipeline appends while a subscription on every node and a tailer (the
//! linearizable tail, then a slice read from each node in turn) watch.
//! A seeded schedule runs every nemesis the cluster size allows, each once
//! and in a random order, and then (for a long run) random ones until the
//! time is up. Each fault is asserted to have happened (datagrams withheld,
//! a new leader seen, a process stopped or killed by signal 9, a power cut
//! performed), and each is followed by a heal that waits until every node
//! follows one leader again. Every phase ends on a condition (appends
//! acknowledged, a leader change), never a sleep. At the end: the history
//! checks of `common::history` (every node's read and raw log) and of
//! `common::observers` (subscriptions, reads and tails).
//!
//! `PAXLOG_MIX_SEED` replays a schedule (the proxies' randomness too);
//! `PAXLOG_MIX_SECS` makes a long run (the README's table comes from
//! `PAXLOG_MIX_SECS=600`, see README "How the guarantees are checked").

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::disk::{self, LoopDisk};
use common::history::{self, WriterHistory};
use common::observers::{self, Observers};
use common::proxy::{Network, Rule};
use common::workload::{wait_until, Writer, WriterShape};
use common::{nemesis, observe, TestCluster, WAIT_MAX};
use paxlog::core::Ballot;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

const PHASE_ACKS: usize = 5_000;
/// A long run's phases are shorter and it writes slower: the faults come
/// faster, and its log (which every restart replays, and the checks hold
/// in memory) stays under a million entries.
const LONG_PHASE_ACKS: usize = 1_000;
/// Tails each phase waits for as well: every fault is read through.
const PHASE_TAILS: usize = 2;
/// Room for a 10-minute run's log (sparse: only what is written is used).
const DISK_BYTES: u64 = 1 << 30;
const MAIN: WriterShape = WriterShape {
    batch: 512,
    window: 256,
};
const LONG: WriterShape = WriterShape {
    batch: 16,
    window: 4,
};
const WRITER_TIMEOUT: Duration = Duration::from_secs(10);

#[test]
fn three_nodes_survive_every_fault_mixed() {
    run(3);
}

#[test]
fn five_nodes_survive_every_fault_mixed() {
    run(5);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Nemesis {
    Flaky,
    IsolateLeader,
    SplitLeaderInMinority,
    Chain,
    DeafLeader,
    QuorumLoss,
    KillOne,
    KillAll,
    PauseLeader,
    PowerCutOne,
    PowerCutAll,
}

impl Nemesis {
    const ALL: [Nemesis; 11] = [
        Nemesis::Flaky,
        Nemesis::IsolateLeader,
        Nemesis::SplitLeaderInMinority,
        Nemesis::Chain,
        Nemesis::DeafLeader,
        Nemesis::QuorumLoss,
        Nemesis::KillOne,
        Nemesis::KillAll,
        Nemesis::PauseLeader,
        Nemesis::PowerCutOne,
        Nemesis::PowerCutAll,
    ];

    /// Those a cluster of `n` nodes can take (the quorum-loss topology
    /// needs five: with three, the leader keeps its quorum through the hub).
    fn available(n: u64) -> Vec<Nemesis> {
        Nemesis::ALL
            .into_iter()
            .filter(|&k| n >= 5 || k != Nemesis::QuorumLoss)
            .collect()
    }
}

/// Declared in drop order: the processes die first, then the proxies, the
/// disks, and the directory that holds the images.
struct Mix {
    cluster: TestCluster,
    net: Network,
    disks: BTreeMap<u64, LoopDisk>,
    dir: tempfile::TempDir,
    rng: rand_chacha::ChaCha8Rng,
    writers: Vec<Writer>,
    done: Vec<WriterHistory>,
    faults: BTreeMap<Nemesis, usize>,
    /// Every leader seen at a phase's end, to count leader changes.
    leaders: Vec<(u64, Ballot)>,
    observers: Option<Observers>,
    /// (acknowledged appends, tails answered) when the phase began.
    phase_start: (usize, usize),
    phase_acks: usize,
}

fn run(n: u64) {
    let started = Instant::now();
    let seed = match std::env::var("PAXLOG_MIX_SEED") {
        Ok(s) => s.parse().expect("PAXLOG_MIX_SEED is a u64"),
        Err(_) => rand::random(),
    };
    let long = std::env::var("PAXLOG_MIX_SECS")
        .ok()
        .map(|s| Duration::from_secs(s.parse().expect("PAXLOG_MIX_SECS is a number of seconds")));
    println!(
        "{} nodes, seed {seed} (PAXLOG_MIX_SEED), long run {long:?}",
        n
    );
    let mut mix = match long {
        Some(_) => Mix::start(n, seed, LONG, LONG_PHASE_ACKS),
        None => Mix::start(n, seed, MAIN, PHASE_ACKS),
    };
    mix.wait_acks("healthy");
    mix.end_phase();

    let mut schedule = Nemesis::available(n);
    schedule.shuffle(&mut mix.rng);
    let mut step = 0;
    loop {
        let nemesis = match schedule.get(step) {
            Some(&k) => k,
            None if long.is_some_and(|d| started.elapsed() < d) => {
                let kinds = Nemesis::available(n);
                kinds[mix.rng.gen_range(0..kinds.len())]
            }
            None => break,
        };
        step += 1;
        println!("{} step {step}: {nemesis:?}", observe::now());
        mix.inflict(nemesis);
        *mix.faults.entry(nemesis).or_default() += 1;
        mix.heal_phase();
    }

    let observed = mix.observers.take().expect("observers").finish();
    let Mix {
        mut cluster,
        writers,
        mut done,
        faults,
        leaders,
        net,
        disks,
        dir,
        ..
    } = mix;
    done.extend(writers.into_iter().map(Writer::finish));
    let final_history = history::check_cluster(&mut cluster, &done);
    let summary = observers::check(&observed, &final_history, &done);
    drop((cluster, net, disks, dir));
    report(n, seed, started.elapsed(), &faults, &leaders, &done);
    println!("{summary}");
    println!("anomalies: 0 (every check above would have failed the run)");
}

impl Mix {
    fn start(n: u64, seed: u64, shape: WriterShape, phase_acks: usize) -> Mix {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cluster = TestCluster::new(n);
        let mut disks = BTreeMap::new();
        if let Some(why) = disk::unavailable() {
            println!("power cuts are skipped: {why}");
        } else {
            for id in cluster.ids() {
                let disk = LoopDisk::create_sized(
                    dir.path().join(format!("node-{id}.img")),
                    dir.path().join(format!("node-{id}")),
                    DISK_BYTES,
                );
                let store = disk.mount_point().join("store");
                std::fs::create_dir(&store).expect("store directory");
                let data = cluster.data_dir(id);
                std::fs::create_dir_all(data.parent().expect("data parent")).expect("data parent");
                std::os::unix::fs::symlink(&store, &data).expect("link the data directory");
                disks.insert(id, disk);
            }
        }
        let net = Network::start(&cluster.addrs(), seed).expect("bind the proxies");
        for id in cluster.ids() {
            cluster.set_peer_via(id, net.dial_addrs(id));
            cluster.start_node(id);
        }
        cluster.wait_for_leader();
        let writers = ["a", "b"]
            .into_iter()
            .map(|name| Writer::start(name, cluster.client_with_timeout(WRITER_TIMEOUT), shape))
            .collect();
        let observers = Some(Observers::start(&cluster));
        Mix {
            cluster,
            net,
            disks,
            dir,
            rng: rand_chacha::ChaCha8Rng::seed_from_u64(seed),
            writers,
            done: Vec::new(),
            faults: BTreeMap::new(),
            leaders: Vec::new(),
            observers,
            phase_start: (0, 0),
            phase_acks,
        }
    }

    fn acked(&self) -> usize {
        self.writers.iter().map(|w| w.progress.acked()).sum()
    }

    fn tails(&self) -> usize {
        self.observers.as_ref().map_or(0, Observers::tails_answered)
    }

    fn wait_acks(&self, what: &str) {
        let (acked, tails) = self.phase_start;
        let n = self.phase_acks;
        wait_until(
            &format!("{n} appends acknowledged and {PHASE_TAILS} tails ({what})"),
            WAIT_MAX,
            || self.acked() >= acked + n && self.tails() >= tails + PHASE_TAILS,
        );
    }

    fn end_phase(&mut self) {
        self.leaders.push(observe::leader(&self.cluster));
        self.phase_start = (self.acked(), self.tails());
    }

    fn heal_phase(&mut self) {
        observe::converged(&self.cluster, observe::election_timeout());
        self.wait_acks("healed");
        self.end_phase();
    }

    fn some_node(&mut self) -> u64 {
        let ids = self.cluster.ids();
        ids[self.rng.gen_range(0..ids.len())]
    }

    fn follower_of(&mut self, leader: u64) -> u64 {
        let others: Vec<u64> = self
            .cluster
            .ids()
            .into_iter()
            .filter(|&id| id != leader)
            .collect();
        others[self.rng.gen_range(0..others.len())]
    }

    fn inflict(&mut self, kind: Nemesis) {
        let (leader, ballot) = observe::leader(&self.cluster);
        let what = format!("{kind:?}");
        match kind {
            Nemesis::Flaky => {
                let rule = Rule {
                    drop: 0.05,
                    duplicate: 0.05,
                    delay: Some((Duration::ZERO, Duration::from_millis(5))),
                    blocked: false,
                };
                let fault = nemesis::flaky(&self.net, rule);
                fault.wait_withheld(&self.net, 30);
                self.wait_acks(&what);
                let c = nemesis::heal(&self.net, fault).counts;
                assert!(
                    c.dropped > 0 && c.duplicated > 0 && c.delayed > 0,
                    "flaky links did nothing: {c:?}"
                );
            }
            Nemesis::IsolateLeader => {
                let fault = nemesis::isolate(&self.net, leader);
                self.cut_off_leader(fault, leader, ballot, &what);
            }
            Nemesis::SplitLeaderInMinority => {
                let mut minority = vec![leader];
                let size = (self.cluster.ids().len() - 1) / 2;
                while minority.len() < size {
                    let other = self.follower_of(leader);
                    if !minority.contains(&other) {
                        minority.push(other);
                    }
                }
                let fault = nemesis::split(&self.net, &minority);
                self.cut_off_leader(fault, leader, ballot, &what);
            }
            Nemesis::DeafLeader => {
                let fault = nemesis::deafen(&self.net, leader);
                self.cut_off_leader(fault, leader, ballot, &what);
            }
            Nemesis::Chain => {
                let follower = self.follower_of(leader);
                let fault = nemesis::chain(&self.net, leader, follower);
                fault.wait_withheld(&self.net, 10);
                // The cut follower's election timeout fires, twice.
                let quiet = 2 * observe::election_timeout();
                observe::silence(&self.cluster, follower, leader, quiet);
                self.wait_acks(&what);
                withheld(nemesis::heal(&self.net, fault));
            }
            Nemesis::QuorumLoss => {
                let hub = self.follower_of(leader);
                let fault = nemesis::hub(&self.net, hub);
                fault.wait_withheld(&self.net, 10);
                let (new, _) = observe::new_leader(&self.cluster, leader, ballot);
                assert_eq!(new, hub, "only the hub can gather a quorum");
                self.wait_acks(&what);
                withheld(nemesis::heal(&self.net, fault));
            }
            Nemesis::KillOne => {
                let victim = self.some_node();
                println!("{} SIGKILL node {victim}", observe::now());
                self.cluster.kill_node(victim);
                self.wait_acks(&what);
                self.cluster.start_node(victim);
            }
            Nemesis::KillAll => {
                println!("{} SIGKILL every node", observe::now());
                for id in self.cluster.ids() {
                    self.cluster.kill_node(id);
                }
                for id in self.cluster.ids() {
                    self.cluster.start_node(id);
                }
                self.wait_acks(&what);
            }
            Nemesis::PauseLeader => {
                println!("{} SIGSTOP node {leader}", observe::now());
                self.cluster.pause_node(leader);
                observe::new_leader(&self.cluster, leader, ballot);
                self.wait_acks(&what);
                self.cluster.resume_node(leader);
            }
            Nemesis::PowerCutOne => {
                let victim = self.some_node();
                self.power_cut(&[victim]);
                self.wait_acks(&what);
            }
            Nemesis::PowerCutAll => {
                let ids = self.cluster.ids();
                self.power_cut(&ids);
                self.wait_acks(&what);
            }
        }
    }

    /// The leader loses its quorum: another node takes over and the
    /// cluster goes on.
    fn cut_off_leader(&mut self, fault: nemesis::Fault, leader: u64, ballot: Ballot, what: &str) {
        fault.wait_withheld(&self.net, 10);
        let (new, _) = observe::new_leader(&self.cluster, leader, ballot);
        println!("{} node {new} leads after {what}", observe::now());
        self.wait_acks(what);
        withheld(nemesis::heal(&self.net, fault));
    }

    /// Each node in `ids` stops (SIGSTOP: it acknowledges nothing more),
    /// then its disk is copied as the device holds it, then it is killed
    /// and restarted on the copy. Stopping first keeps the model honest: a
    /// node never answers for a write its cut disk does not hold.
    fn power_cut(&mut self, ids: &[u64]) {
        if self.disks.is_empty() {
            println!("no loop devices here: SIGKILL instead of a power cut");
        } else {
            println!("{} power cut of nodes {ids:?}", observe::now());
        }
        for &id in ids {
            self.cluster.pause_node(id);
        }
        disk::power_cut(&mut self.cluster, &mut self.disks, self.dir.path(), ids);
    }
}

fn withheld(healed: nemesis::Healed) {
    assert!(
        healed.counts.dropped > 0,
        "{} withheld no datagram: {:?}",
        healed.name,
        healed.counts
    );
}

fn report(
    n: u64,
    seed: u64,
    took: Duration,
    faults: &BTreeMap<Nemesis, usize>,
    leaders: &[(u64, Ballot)],
    histories: &[WriterHistory],
) {
    let total: usize = faults.values().sum();
    let changes = leaders.windows(2).filter(|w| w[0] != w[1]).count();
    println!("| nodes | seed | took | faults | leader changes seen |");
    println!("| {n} | {seed} | {took:.0?} | {total} | {changes} |");
    println!("| fault | times |");
    for (kind, count) in faults {
        println!("| {kind:?} | {count} |");
    }
    for h in histories {
        let (ok, surely, maybe) = h.tally();
        println!(
            "writer {}: {ok} acknowledged, {surely} surely failed, {maybe} indeterminate",
            h.name
        );
    }
}

/// The observers' checks catch what they are for: each case below is a
/// fabricated run with one anomaly, which must fail the check; the same run
/// without it must pass.
mod checker {
    use std::collections::BTreeMap;
    use std::time::{Duration, Instant};

    use bytes::Bytes;
    use paxlog::proto::Entry;

    use crate::common::history::{Op, Outcome, WriterHistory};
    use crate::common::observers::{self, Observed, ReadOp, TailOp};

    fn entry(index: u64) -> Entry {
        Entry {
            index,
            payload: Bytes::from(format!("v{index}")),
        }
    }

    /// Index 3 is a no-op: user entries skip it.
    fn history() -> Vec<Entry> {
        [1, 2, 4, 5, 6].into_iter().map(entry).collect()
    }

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    /// One append acknowledged at 5, completed at 10 ms; one tail invoked
    /// at 20 ms answering `tail`; a subscription and a read as given.
    fn run(subscription: &[u64], read: &[u64], tail: u64) -> (Observed, Vec<WriterHistory>) {
        let t0 = Instant::now();
        let writers = vec![WriterHistory {
            name: "w",
            ops: vec![Op {
                value: Bytes::from_static(b"v5"),
                invoked: t0,
                completed: at(t0, 10),
                outcome: Outcome::Ok(5),
            }],
        }];
        let observed = Observed {
            subscriptions: BTreeMap::from([(1, subscription.iter().copied().map(entry).collect())]),
            tails: vec![TailOp {
                invoked: at(t0, 20),
                completed: at(t0, 30),
                index: tail,
            }],
            reads: vec![ReadOp {
                node: 2,
                from: 2,
                to: 5,
                entries: read.iter().copied().map(entry).collect(),
            }],
            failed: 0,
        };
        (observed, writers)
    }

    fn fails(subscription: &[u64], read: &[u64], tail: u64) -> bool {
        let (observed, writers) = run(subscription, read, tail);
        std::panic::catch_unwind(|| observers::check(&observed, &history(), &writers)).is_err()
    }

    #[test]
    fn a_clean_run_passes() {
        assert!(!fails(&[1, 2, 4], &[2, 4, 5], 5));
    }

    #[test]
    fn a_subscription_with_a_gap_fails() {
        assert!(fails(&[1, 4], &[2, 4, 5], 5));
    }

    #[test]
    fn a_subscription_that_goes_back_fails() {
        assert!(fails(&[1, 2, 4, 2], &[2, 4, 5], 5));
    }

    #[test]
    fn a_read_that_skips_an_index_fails() {
        assert!(fails(&[1, 2, 4], &[2, 5], 5));
    }

    #[test]
    fn a_tail_below_an_earlier_acknowledgement_fails() {
        assert!(fails(&[1, 2, 4], &[2, 4, 5], 4));
    }
}
