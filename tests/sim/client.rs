//! Simulated clients: each appends `(client_id, seq)` one at a time and
//! retries the same pair after a timeout, a redirect or an indeterminate
//! answer, so the dedup path is exercised.

use bytes::Bytes;
use paxlog::core::{NodeId, RequestId};

#[derive(Debug)]
pub struct Pending {
    pub seq: u64,
    pub payload: Bytes,
    /// When the current attempt gives up and retries.
    pub deadline_ms: u64,
    /// When this append was first issued.
    pub started_ms: u64,
    pub resend: bool,
}

#[derive(Debug)]
pub struct Client {
    pub id: u64,
    pub seq: u64,
    pub target: NodeId,
    pub pending: Option<Pending>,
    /// Appends acknowledged that were issued at or after the heal.
    pub acked_after_heal: u64,
}

/// What a request id stood for.
#[derive(Clone, Debug)]
pub struct RequestInfo {
    pub client: usize,
    pub client_id: u64,
    pub seq: u64,
    pub payload: Bytes,
}

impl Client {
    pub fn new(id: u64, target: NodeId) -> Self {
        Client {
            id,
            seq: 0,
            target,
            pending: None,
            acked_after_heal: 0,
        }
    }
}

pub fn request_id(client: usize, attempt: u64) -> RequestId {
    ((client as u64) << 40) | attempt
}
