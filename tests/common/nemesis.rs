//! Network faults as functions over the proxied [`Network`]: each sets the
//! rules of one topology and returns a [`Fault`] that remembers which
//! directed pairs it cut and their counters at the start, so a test can
//! assert that the fault really withheld datagrams (a fault that withheld
//! nothing proves nothing about the code under it).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::proxy::{Counts, Network, NodeId, Pair, Rule};
use super::TestCluster;

/// A fault in force; [`heal`] ends it.
#[derive(Debug)]
pub struct Fault {
    pub name: String,
    /// The directed pairs whose datagrams it withholds (or disturbs).
    pub pairs: Vec<Pair>,
    before: BTreeMap<Pair, Counts>,
}

impl Fault {
    fn apply(net: &Network, name: String, pairs: Vec<Pair>, rule: Rule) -> Fault {
        let before = net.counts();
        for &(from, to) in &pairs {
            net.set(from, to, rule);
        }
        println!("{} nemesis: {name}", super::observe::now());
        Fault {
            name,
            pairs,
            before,
        }
    }

    /// Waits until the fault has withheld `n` datagrams: it has really hit
    /// the traffic it is meant to disturb. Heartbeats alone cross every link
    /// 20 times a second, so a few seconds is plenty.
    pub fn wait_withheld(&self, net: &Network, n: u64) {
        super::workload::wait_until(
            &format!("{} to withhold {n} datagrams", self.name),
            Duration::from_secs(10),
            || self.counts(net).dropped >= n,
        );
    }

    /// What the proxies did to this fault's pairs since it began.
    pub fn counts(&self, net: &Network) -> Counts {
        let now = net.counts();
        self.pairs
            .iter()
            .map(|pair| now[pair] - self.before[pair])
            .sum()
    }
}

/// What a healed fault did, for the test's assertions and its report.
#[derive(Debug)]
pub struct Healed {
    pub name: String,
    pub counts: Counts,
}

/// Three real nodes (or `n`) with every peer link through a proxy; returns
/// once a leader is elected. Declare the network after the cluster so it
/// outlives the nodes (it is dropped first otherwise, which is also fine).
pub fn start_proxied(n: u64, seed: u64) -> (TestCluster, Network) {
    let mut cluster = TestCluster::new(n);
    let net = Network::start(&cluster.addrs(), seed).expect("bind the proxies");
    for id in cluster.ids() {
        let via: BTreeMap<NodeId, SocketAddr> = net.dial_addrs(id);
        cluster.set_peer_via(id, via);
        cluster.start_node(id);
    }
    cluster.wait_for_leader();
    (cluster, net)
}

/// `node` hears no one and no one hears it.
pub fn isolate(net: &Network, node: NodeId) -> Fault {
    let pairs = net
        .nodes()
        .into_iter()
        .filter(|&other| other != node)
        .flat_map(|other| [(node, other), (other, node)])
        .collect();
    Fault::apply(net, format!("isolate {node}"), pairs, Rule::blocked())
}

/// `minority` and the rest cannot hear each other; each side talks within.
pub fn split(net: &Network, minority: &[NodeId]) -> Fault {
    let majority: Vec<NodeId> = net
        .nodes()
        .into_iter()
        .filter(|n| !minority.contains(n))
        .collect();
    let pairs = minority
        .iter()
        .flat_map(|&a| majority.iter().flat_map(move |&b| [(a, b), (b, a)]))
        .collect();
    Fault::apply(
        net,
        format!("split {minority:?} | {majority:?}"),
        pairs,
        Rule::blocked(),
    )
}

/// `a` and `b` cannot hear each other; every other node hears both (with
/// three nodes: the chain a - third - b).
pub fn chain(net: &Network, a: NodeId, b: NodeId) -> Fault {
    Fault::apply(
        net,
        format!("chain: {a} and {b} cut, the others hear both"),
        vec![(a, b), (b, a)],
        Rule::blocked(),
    )
}

/// The OmniPaxos paper's quorum-loss topology: only links that touch
/// `hub` work; every other pair of nodes is cut both ways. The leader (not
/// the hub) keeps one peer and loses its quorum; only the hub can gather one.
pub fn hub(net: &Network, hub: NodeId) -> Fault {
    let nodes = net.nodes();
    let pairs = nodes
        .iter()
        .flat_map(|&a| nodes.iter().map(move |&b| (a, b)))
        .filter(|&(a, b)| a != b && a != hub && b != hub)
        .collect();
    Fault::apply(
        net,
        format!("quorum loss: only links through {hub} work"),
        pairs,
        Rule::blocked(),
    )
}

/// `node` can still send, but hears nothing from anyone.
pub fn deafen(net: &Network, node: NodeId) -> Fault {
    let pairs = net
        .nodes()
        .into_iter()
        .filter(|&other| other != node)
        .map(|other| (other, node))
        .collect();
    Fault::apply(
        net,
        format!("one-way loss: {node} sends, hears nothing"),
        pairs,
        Rule::blocked(),
    )
}

/// Every link lossy, duplicating and reordering with `rule`.
pub fn flaky(net: &Network, rule: Rule) -> Fault {
    let nodes = net.nodes();
    let pairs = nodes
        .iter()
        .flat_map(|&a| nodes.iter().filter(move |&&b| b != a).map(move |&b| (a, b)))
        .collect();
    Fault::apply(net, format!("flaky links: {rule:?}"), pairs, rule)
}

/// Every link back to forwarding everything; what `fault` did meanwhile.
pub fn heal(net: &Network, fault: Fault) -> Healed {
    net.heal();
    let counts = fault.counts(net);
    println!(
        "{} healed {}: {counts:?}",
        super::observe::now(),
        fault.name
    );
    Healed {
        name: fault.name,
        counts,
    }
}
