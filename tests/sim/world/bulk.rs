//! The bulk writer: large appends (values up to `value_bytes_max`) so that
//! Accept, Promise and Catchup runs fill their byte budgets and their frames
//! come close to the chunk bound, which the network checks. It is a session
//! client like the others (`world/clients.rs`: it registers, sends
//! contiguous seqs with its floor, resends what is unsettled), so
//! `inv_acked` checks its acknowledgements too; only slower (one new append
//! per step, a step every `STEP_MS`), with large values, and it never
//! restarts without its session.

use std::ops::Range;

use bytes::Bytes;
use paxlog::core::Command;
use rand::Rng;

use super::{World, VALUE_BYTES_MAX};

/// Time between two steps of the bulk writer, in simulated ms.
pub(super) const STEP_MS: Range<u64> = 100..300;

impl World {
    /// The payload of the bulk writer's next append (seq `next_seq`).
    pub(super) fn bulk_payload(&mut self, c: usize) -> Bytes {
        let client = &self.clients[c];
        let seq = client.next_seq;
        // The largest payload whose encoded command still fits the value
        // limit: it is sent with a floor of at most its seq, and its length
        // prefix takes at most 2 bytes below 16 KiB.
        let widest = Command::Append {
            client_id: client.session.unwrap_or(u64::MAX),
            seq,
            floor: seq,
            payload: Bytes::new(),
        };
        let payload_max = VALUE_BYTES_MAX - widest.encode().len() - 2;
        let mut payload = format!("bulk{seq}n{}:", client.sessions_opened).into_bytes();
        let len = self.rng.gen_range(payload_max / 2..=payload_max);
        payload.resize(len.max(payload.len()), b'.');
        self.stats.bulk += 1;
        self.trace(&format!("bulk append {seq} of {len} bytes"));
        Bytes::from(payload)
    }
}
