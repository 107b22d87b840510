//! Every size bound that has to fit inside another, in one place.
//!
//! How they nest (not validated yet; the defaults are not all consistent,
//! see the notes on each field):
//!
//! ```text
//! value_bytes_max ≤ batch_bytes_max ≤ window_bytes_max
//!                   batch_entries_max ≤ window_entries_max
//! value_bytes_max ≤ catchup_bytes_max
//! value_bytes_max ≤ uncommitted_bytes_max
//! one Accept, Promise or Catchup message ≤ frame_bytes_max
//! client_payload_bytes_max() = frame_bytes_max − FRAME_OVERHEAD_BYTES
//! ```
//!
//! A run stops at the first value that reaches its bytes bound, so one
//! Accept carries up to `batch_bytes_max + value_bytes_max` bytes, and one
//! Promise or Catchup up to `catchup_bytes_max + value_bytes_max`.
//!
//! There are two batching layers, on purpose:
//! - the core's batch ([`Limits::batch_entries_max`], [`Limits::batch_bytes_max`])
//!   is one Accept message to a peer and one staged write (`Persist`);
//! - the node's writer thread (`src/node/writer.rs`, `MERGE_BATCHES_MAX` =
//!   256 batches, `MERGE_BYTES_MAX` = 16 MiB) merges the `Persist` batches
//!   that queued while the previous fsync ran into one synced write.
//!
//! The first bounds what one message and one round trip carry; the second is
//! group commit across batches, so a burst costs one fsync, not one per batch.

/// Bytes a frame carries besides the client's payload (request envelope,
/// ids, length prefix), with room to spare.
pub const FRAME_OVERHEAD_BYTES: usize = 1 << 10;

/// The size bounds of one replica (and of the frames around its messages).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// One encoded command. Beyond it proposals get `TooLarge`.
    /// Nests in `batch_bytes_max`, `catchup_bytes_max`,
    /// `uncommitted_bytes_max` and `client_payload_bytes_max()`.
    pub value_bytes_max: usize,
    /// Entries per Accept message and per staged write batch;
    /// `≤ window_entries_max`.
    pub batch_entries_max: usize,
    /// Value bytes per Accept message and per staged write batch (a run
    /// stops at the first value reaching it); `≤ window_bytes_max`.
    pub batch_bytes_max: usize,
    /// Per acceptor, entries sent and not yet acknowledged.
    pub window_entries_max: usize,
    /// Per acceptor, value bytes sent and not yet acknowledged.
    pub window_bytes_max: usize,
    /// Entries per Catchup or Promise message.
    pub catchup_entries_max: usize,
    /// Value bytes per Catchup or Promise message (a run stops at the first
    /// value reaching it). With the defaults, 4 MiB plus one value can
    /// exceed `frame_bytes_max`.
    pub catchup_bytes_max: usize,
    /// Value bytes the leader holds proposed and not yet chosen; beyond it
    /// proposals get `Busy`. At least `value_bytes_max`.
    pub uncommitted_bytes_max: usize,
    /// Clients remembered by the dedup table (least recently chosen evicted).
    pub dedup_clients_max: usize,
    /// `(client_id, seq)` pairs remembered per client (lowest evicted).
    pub dedup_window_per_client: usize,
    /// The transport's frame limit (`paxlog_net`'s default today); the node
    /// passes it to the network so both sides use this one number.
    pub frame_bytes_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            value_bytes_max: 1 << 20,
            batch_entries_max: 256,
            batch_bytes_max: 1 << 20,
            window_entries_max: 1024,
            window_bytes_max: 8 << 20,
            catchup_entries_max: 512,
            catchup_bytes_max: 4 << 20,
            uncommitted_bytes_max: 64 << 20,
            dedup_clients_max: 10_000,
            dedup_window_per_client: 64,
            frame_bytes_max: 4 << 20,
        }
    }
}

impl Limits {
    /// The largest client payload that fits in one frame with its envelope.
    pub fn client_payload_bytes_max(&self) -> usize {
        self.frame_bytes_max.saturating_sub(FRAME_OVERHEAD_BYTES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_payload_leaves_room_for_the_frame_overhead() {
        let limits = Limits::default();
        assert_eq!(limits.frame_bytes_max, 4 << 20);
        assert_eq!(limits.client_payload_bytes_max(), (4 << 20) - 1024);
    }
}
