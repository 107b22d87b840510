//! The simulated network: per-link blocking (symmetric, asymmetric and
//! partial partitions), drops, duplicates, random delays (hence reordering).

use std::collections::BTreeSet;

use paxlog::core::NodeId;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

#[derive(Debug, Default)]
pub struct Net {
    /// Directed links that drop everything.
    pub blocked: BTreeSet<(NodeId, NodeId)>,
    pub drop_per_mille: u32,
    pub dup_per_mille: u32,
    pub delay_max_ms: u64,
    /// Stragglers: a few messages arrive very late (stale ballots in flight).
    pub straggle_per_mille: u32,
    pub straggle_max_ms: u64,
}

/// What the network does with one message.
#[derive(Debug, PartialEq, Eq)]
pub enum Fate {
    Blocked,
    Dropped,
    /// Delivery delays; two when duplicated.
    Deliver(Vec<u64>),
}

impl Net {
    pub fn fate(&self, from: NodeId, to: NodeId, rng: &mut ChaCha8Rng) -> Fate {
        if self.blocked.contains(&(from, to)) {
            return Fate::Blocked;
        }
        if rng.gen_range(0..1000) < self.drop_per_mille {
            return Fate::Dropped;
        }
        let mut delays = vec![rng.gen_range(1..=self.delay_max_ms.max(1))];
        if rng.gen_range(0..1000) < self.straggle_per_mille {
            delays[0] += rng.gen_range(0..=self.straggle_max_ms);
        }
        if rng.gen_range(0..1000) < self.dup_per_mille {
            delays.push(rng.gen_range(1..=self.delay_max_ms.max(1) * 2));
        }
        Fate::Deliver(delays)
    }

    pub fn heal(&mut self) {
        self.blocked.clear();
    }

    pub fn cut(&mut self, a: NodeId, b: NodeId) {
        self.blocked.insert((a, b));
        self.blocked.insert((b, a));
    }

    /// Only the listed undirected links stay up.
    pub fn only(&mut self, nodes: &[NodeId], up: &[(NodeId, NodeId)]) {
        self.heal();
        for &a in nodes {
            for &b in nodes {
                if a != b && !up.contains(&(a, b)) && !up.contains(&(b, a)) {
                    self.blocked.insert((a, b));
                }
            }
        }
    }
}
