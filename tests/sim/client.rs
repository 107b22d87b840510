//! Simulated clients, each a session like the real client's: register, then
//! pipeline appends with contiguous seqs and the floor (lowest unsettled
//! seq), resend every unsettled one in seq order after a timeout or a leader
//! change, and open a superseding session once one broke. In one seed of
//! `DEEP_EVERY`, client 0 pipelines deeply (`DEEP_WINDOW` in flight); the
//! others a few at a time (a deep pipeline costs many more steps). During
//! the faults a shallow client may restart without its session, leaving it
//! to the session table's eviction (`World::restart_client`).

use std::collections::BTreeMap;

use bytes::Bytes;
use paxlog::core::{NodeId, RequestId};

/// Client 0's pipeline depth: at least 128 in flight across leader changes.
pub const DEEP_WINDOW: u64 = 160;
/// One seed in this many has a deep client.
pub const DEEP_EVERY: u64 = 8;
/// The other clients' pipeline depth.
pub const SHALLOW_WINDOW: u64 = 3;

#[derive(Debug)]
pub struct Pending {
    pub payload: Bytes,
    /// When the current attempt gives up and is resent.
    pub deadline_ms: u64,
    pub resend: bool,
}

#[derive(Debug)]
pub struct Client {
    pub window: u64,
    /// The session id once registered (the registration's index).
    pub session: Option<u64>,
    /// A registration is in flight since this time.
    pub registering_ms: Option<u64>,
    /// The session broke (a seq failed for good): supersede it once the
    /// unsettled ones settled.
    pub broken: bool,
    pub next_seq: u64,
    /// Unsettled appends by seq.
    pub pending: BTreeMap<u64, Pending>,
    pub target: NodeId,
    /// Appends acknowledged after the heal.
    pub acked_after_heal: u64,
    /// Sessions this client opened.
    pub sessions_opened: u64,
    /// The bulk writer (`world/bulk.rs`).
    pub bulk: bool,
}

/// What a request id stood for.
#[derive(Clone, Debug)]
pub struct RequestInfo {
    /// The client, or for a tail the tailer (`world/tails.rs`).
    pub client: usize,
    /// `None` for a registration or a tail.
    pub key: Option<(u64, u64)>,
    pub payload: Bytes,
    /// A tail (`read_index`), not a proposal.
    pub tail: bool,
}

impl Client {
    pub fn new(window: u64, target: NodeId) -> Self {
        Client {
            window,
            session: None,
            registering_ms: None,
            broken: false,
            next_seq: 1,
            pending: BTreeMap::new(),
            target,
            acked_after_heal: 0,
            sessions_opened: 0,
            bulk: false,
        }
    }

    pub fn floor(&self) -> u64 {
        self.pending.keys().next().copied().unwrap_or(self.next_seq)
    }
}

pub fn request_id(client: usize, attempt: u64) -> RequestId {
    ((client as u64) << 40) | attempt
}
