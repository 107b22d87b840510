//! Partitions of real `paxlog serve` processes (issue 12): three nodes, every
//! peer link through the harness's UDP proxy (tests/common/proxy.rs),
//! clients straight to the nodes. Two writers pipeline appends (window 256)
//! through phases, each ended by a condition (appends acknowledged, a leader
//! change or a silence seen in the nodes' status), never by a sleep:
//! healthy; flaky links (loss, duplicates, reordering); the leader isolated,
//! with a third writer pinned to it; healed; a chain (the leader and one
//! follower cut, the third node hears both); healed; one-way loss (the
//! leader sends, hears nothing); healed. Asserted: every fault withheld
//! datagrams; isolating the leader made another node lead; the isolated
//! leader acknowledged nothing invoked one election timeout into its
//! isolation; and at the end, on every node's read and every node's raw
//! RocksDB log, each acknowledged value exactly at its index, no append
//! that surely failed, each writer's appends in order.
//!
//! The seed of the proxies' randomness is printed (`PAXLOG_PROXY_SEED`).

mod common;

use std::time::{Duration, Instant};

use common::history::{self, Op, Outcome, WriterHistory};
use common::nemesis::{self, Healed};
use common::observe;
use common::proxy::{self, Network, Rule};
use common::workload::{wait_until, Writer, WriterShape};
use common::{TestCluster, WAIT_MAX};

/// Acknowledged appends each phase waits for; `PAXLOG_PARTITION_PHASE_ACKS`
/// sets another number for longer runs (then the run's time is not bounded).
const PHASE_ACKS: usize = 10_000;

fn phase_acks() -> Option<usize> {
    std::env::var("PAXLOG_PARTITION_PHASE_ACKS")
        .ok()
        .map(|n| n.parse().expect("PAXLOG_PARTITION_PHASE_ACKS is a number"))
}
const MAIN: WriterShape = WriterShape {
    batch: 1024,
    window: 256,
};
const MAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// One append at a time and a short timeout, so the pinned writer invokes
/// appends often while its node is cut off (a failed append breaks its
/// session, and every later append first tries to open a new one, which
/// takes up to a timeout more), and each invocation time is exact.
const PINNED: WriterShape = WriterShape {
    batch: 1,
    window: 1,
};
const PINNED_TIMEOUT: Duration = Duration::from_secs(1);
const PINNED_ACKS: usize = 16;
const PINNED_NAMES: [&str; 3] = ["p1", "p2", "p3"];

/// One phase's figures, for the report.
struct Phase {
    name: String,
    took: Duration,
    acked: usize,
    healed: Option<Healed>,
    /// Who led (and at what ballot) when the phase ended.
    leader: (u64, paxlog::core::Ballot),
}

struct Run<'a> {
    cluster: &'a TestCluster,
    net: &'a Network,
    writers: Vec<Writer>,
    /// Histories of writers already finished.
    done: Vec<WriterHistory>,
    phases: Vec<Phase>,
    phase_start: (Instant, usize),
    leader_changes: usize,
}

impl Run<'_> {
    fn acked(&self) -> usize {
        self.writers
            .iter()
            .map(|w| w.progress.acked())
            .sum::<usize>()
            + self.done.iter().map(|h| h.acked().count()).sum::<usize>()
    }

    fn wait_acks(&self, what: &str) {
        let n = phase_acks().unwrap_or(PHASE_ACKS);
        wait_until(
            &format!("{n} appends acknowledged ({what})"),
            WAIT_MAX,
            || self.acked() >= self.phase_start.1 + n,
        );
    }

    fn end_phase(&mut self, name: impl Into<String>, healed: Option<Healed>) {
        let acked = self.acked();
        let took = self.phase_start.0.elapsed();
        self.phases.push(Phase {
            name: name.into(),
            took,
            acked: acked - self.phase_start.1,
            healed,
            leader: observe::leader(self.cluster),
        });
        self.phase_start = (Instant::now(), acked);
    }

    /// Healed: every node is back with the leader, and the cluster serves.
    fn heal_phase(&mut self) {
        observe::converged(self.cluster, observe::election_timeout());
        self.wait_acks("healed");
        self.end_phase("healed", None);
    }

    /// A writer pinned to the current leader, which has acknowledged
    /// appends; retried when leadership moves meanwhile.
    fn pin_to_leader(&mut self) -> (u64, paxlog::core::Ballot, Writer) {
        for name in PINNED_NAMES {
            let (leader, ballot) = observe::leader(self.cluster);
            let client = self.cluster.client_for_node(leader, PINNED_TIMEOUT);
            let pinned = Writer::start(name, client, PINNED);
            wait_until(
                "the pinned writer's first acknowledgements",
                WAIT_MAX,
                || pinned.progress.acked() >= PINNED_ACKS || pinned.progress.failed() > 0,
            );
            if pinned.progress.failed() == 0 && observe::leader(self.cluster) == (leader, ballot) {
                return (leader, ballot, pinned);
            }
            println!("leadership moved while pinning writer {name} to node {leader}; again");
            self.done.push(pinned.finish());
        }
        panic!("leadership kept moving in a healthy cluster");
    }
}

#[test]
fn acknowledged_appends_survive_partitions_of_real_nodes() {
    let started = Instant::now();
    let (mut cluster, net) = nemesis::start_proxied(3, proxy::seed_from_env());
    let writers = ["a", "b"]
        .into_iter()
        .map(|name| Writer::start(name, cluster.client_with_timeout(MAIN_TIMEOUT), MAIN))
        .collect();
    let mut run = Run {
        cluster: &cluster,
        net: &net,
        writers,
        done: Vec::new(),
        phases: Vec::new(),
        phase_start: (Instant::now(), 0),
        leader_changes: 0,
    };

    run.wait_acks("healthy");
    run.end_phase("healthy", None);

    let fault = nemesis::flaky(
        &net,
        Rule {
            drop: 0.02,
            duplicate: 0.02,
            delay: Some((Duration::ZERO, Duration::from_millis(4))),
            blocked: false,
        },
    );
    fault.wait_withheld(&net, 30);
    run.wait_acks("flaky links");
    let healed = nemesis::heal(&net, fault);
    let c = healed.counts;
    assert!(
        c.dropped > 0 && c.duplicated > 0 && c.delayed > 0,
        "flaky links did nothing: {c:?}"
    );
    run.end_phase("flaky links", Some(healed));

    isolate_the_leader(&mut run);
    run.heal_phase();

    let (leader, _) = observe::leader(&cluster);
    let follower = cluster.ids().into_iter().find(|&id| id != leader);
    let follower = follower.expect("three nodes");
    let fault = nemesis::chain(&net, leader, follower);
    fault.wait_withheld(&net, 10);
    // Long enough for the cut follower's election timeout to fire, twice.
    observe::silence(&cluster, follower, leader, 2 * observe::election_timeout());
    run.wait_acks("chain");
    let healed = withheld(nemesis::heal(&net, fault));
    run.end_phase(healed.name.clone(), Some(healed));
    run.heal_phase();

    let (leader, ballot) = observe::leader(&cluster);
    let fault = nemesis::deafen(&net, leader);
    fault.wait_withheld(&net, 10);
    observe::new_leader(&cluster, leader, ballot);
    run.leader_changes += 1;
    run.wait_acks("one-way loss");
    let healed = withheld(nemesis::heal(&net, fault));
    run.end_phase(healed.name.clone(), Some(healed));
    run.heal_phase();

    let Run {
        writers,
        mut done,
        phases,
        leader_changes,
        ..
    } = run;
    done.extend(writers.into_iter().map(Writer::finish));
    report(&phases, leader_changes, &done);
    history::check_cluster(&mut cluster, &done);
    let took = started.elapsed();
    println!("partition run took {took:?}");
    if phase_acks().is_none() {
        assert!(took < Duration::from_secs(100), "the run took {took:?}");
    }
}

/// The leader isolated: another node takes over, the cluster goes on, and
/// a writer pinned to the old leader gets no acknowledgement for what it
/// invokes once an election timeout has passed.
fn isolate_the_leader(run: &mut Run) {
    let (old, ballot, pinned) = run.pin_to_leader();
    let fault = nemesis::isolate(run.net, old);
    let isolated_at = Instant::now();
    fault.wait_withheld(run.net, 10);
    let (new, _) = observe::new_leader(run.cluster, old, ballot);
    run.leader_changes += 1;
    println!(
        "{} node {new} leads after node {old} was isolated",
        observe::now()
    );
    run.wait_acks("leader isolated");
    let late = isolated_at + observe::election_timeout();
    wait_until(
        "the pinned writer to finish a batch invoked an election timeout into the isolation",
        WAIT_MAX,
        || {
            pinned
                .progress
                .last_batch_started()
                .is_some_and(|t| t >= late)
        },
    );
    // Finished before the heal: whatever it was told, the isolated node told it.
    let pinned = pinned.finish();
    println!("{} the pinned writer stopped", observe::now());
    let healed = withheld(nemesis::heal(run.net, fault));
    let before = pinned
        .ops
        .iter()
        .filter(|op| op.completed <= isolated_at && matches!(op.outcome, Outcome::Ok(_)))
        .count();
    assert!(
        before > 0,
        "the pinned writer had node {old} acknowledge nothing before"
    );
    let after: Vec<&Op> = pinned.ops.iter().filter(|op| op.invoked >= late).collect();
    assert!(
        !after.is_empty(),
        "the pinned writer invoked nothing late enough"
    );
    let acked: Vec<&&Op> = after
        .iter()
        .filter(|op| matches!(op.outcome, Outcome::Ok(_)))
        .collect();
    assert!(
        acked.is_empty(),
        "isolated node {old} acknowledged {} of {} appends invoked an election timeout into \
         its isolation, e.g. {:?}",
        acked.len(),
        after.len(),
        acked.first()
    );
    let slowest = pinned.ops.iter().map(|op| op.completed - op.invoked).max();
    println!(
        "pinned writer: {before} acknowledged by node {old} before its isolation, {} invoked \
         late in it, none acknowledged; slowest batch {slowest:?}",
        after.len()
    );
    run.done.push(pinned);
    run.end_phase(healed.name.clone(), Some(healed));
}

fn withheld(healed: Healed) -> Healed {
    assert!(
        healed.counts.dropped > 0,
        "{} withheld no datagram: {:?}",
        healed.name,
        healed.counts
    );
    healed
}

fn report(phases: &[Phase], leader_changes: usize, histories: &[WriterHistory]) {
    for p in phases {
        let faults = p
            .healed
            .as_ref()
            .map(|h| {
                let c = h.counts;
                format!(
                    "; datagrams dropped {}, duplicated {}, delayed {}, forwarded {}",
                    c.dropped, c.duplicated, c.delayed, c.forwarded
                )
            })
            .unwrap_or_default();
        let (leader, ballot) = p.leader;
        println!(
            "{}: {} acknowledged in {:?}{faults}; node {leader} leads at {}.{}",
            p.name, p.acked, p.took, ballot.counter, ballot.node
        );
    }
    let mut ballots: Vec<_> = phases.iter().map(|p| p.leader.1).collect();
    ballots.dedup();
    println!(
        "leader changes forced: {leader_changes}; leading ballots seen at phase ends: {}",
        ballots.len()
    );
    for h in histories {
        let (ok, surely, maybe) = h.tally();
        println!(
            "writer {}: {ok} acknowledged, {surely} surely failed, {maybe} indeterminate",
            h.name
        );
    }
}
