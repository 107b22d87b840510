//! The simulated network: per-link blocking (symmetric, asymmetric and
//! partial partitions), drops, duplicates, random delays (hence reordering),
//! and the transport's frame limit. Two guarantees are checked, not assumed
//! (`check_frame`, `check_delivery`): no frame over the limit is delivered
//! (and no Promise or Catchup of entries over the core's chunk bound, which
//! is smaller), and nothing crosses a blocked link while it stays blocked.

use std::collections::BTreeSet;

use paxlog::core::{Message, NodeId};
use paxlog_net::frame::{encode, FrameError};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::invariants::Violation;

/// A peer message over the frame limit (or a chunked one over the chunk
/// bound) reached the network.
pub const NET_FRAME: &str = "net_frame";
/// The frame's u32 length prefix, which its limit does not count.
const FRAME_PREFIX_BYTES: usize = 4;
/// A message crossed a link while a partition blocked it.
pub const NET_PARTITION: &str = "net_partition";

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
    /// The frame limit the node hands its transport (`Limits::frame_bytes_max`).
    pub frame_bytes_max: usize,
    /// What the core's chunking keeps a Promise, or a Catchup without a
    /// session table, within (`catchup_bytes_max` plus the message overhead).
    pub chunk_bytes_max: usize,
}

/// A message the network framed.
#[derive(Clone, Copy, Debug)]
pub struct Framed {
    /// The frame's length (version byte and body, what the limits bound).
    pub len: usize,
    /// A Promise or a Catchup of entries: held to `Net::chunk_bytes_max`.
    pub chunked: bool,
    /// A Catchup carrying a session table (a node behind the trim point).
    pub trim_state: bool,
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
    /// Frames `message` as `PeerSender::try_send` does (`paxlog_net::frame::encode`
    /// with the configured limit); a frame over the limit is refused there and
    /// here, and the core must never build one. The transport's limit has
    /// room for a whole session table, far more than a run of entries may
    /// take, so a Promise or a Catchup of entries is also held to the chunk
    /// bound its budget implies.
    pub fn check_frame(
        &self,
        from: NodeId,
        to: NodeId,
        message: &Message,
    ) -> Result<Framed, Violation> {
        match encode(message, self.frame_bytes_max) {
            Ok(frame) => {
                let framed = Framed {
                    len: frame.len() - FRAME_PREFIX_BYTES,
                    chunked: matches!(
                        message,
                        Message::Promise { .. }
                            | Message::Catchup {
                                trim_state: None,
                                ..
                            }
                    ),
                    trim_state: matches!(
                        message,
                        Message::Catchup {
                            trim_state: Some(_),
                            ..
                        }
                    ),
                };
                if framed.chunked && framed.len > self.chunk_bytes_max {
                    return Err(Violation {
                        invariant: NET_FRAME,
                        detail: format!(
                            "{from}->{to}: a {} of {} bytes over the chunk bound of {}",
                            kind(message),
                            framed.len,
                            self.chunk_bytes_max
                        ),
                    });
                }
                Ok(framed)
            }
            Err(FrameError::TooLarge { len, max }) => Err(Violation {
                invariant: NET_FRAME,
                detail: format!(
                    "{from}->{to}: a frame of {len} bytes over the limit of {max}: {}",
                    kind(message)
                ),
            }),
            Err(e) => Err(Violation {
                invariant: NET_FRAME,
                detail: format!("{from}->{to}: {} does not frame: {e}", kind(message)),
            }),
        }
    }

    /// Whether the link `from -> to` is up right now: a message in flight
    /// when a partition starts is withheld if it arrives before the heal.
    pub fn deliverable(&self, from: NodeId, to: NodeId) -> bool {
        !self.blocked.contains(&(from, to))
    }

    /// Called for every message about to be handed to its receiver: a
    /// blocked link must have withheld it (see `deliverable`).
    pub fn check_delivery(&self, from: NodeId, to: NodeId, message: &Message) -> Option<Violation> {
        self.blocked.contains(&(from, to)).then(|| Violation {
            invariant: NET_PARTITION,
            detail: format!(
                "{} delivered {from}->{to} while the link is partitioned",
                kind(message)
            ),
        })
    }

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

/// The message's variant, for reports.
pub fn kind(message: &Message) -> String {
    let s = format!("{message:?}");
    s.split([' ', '{', '('])
        .next()
        .unwrap_or_default()
        .to_string()
}
