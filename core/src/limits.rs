//! Every size bound that has to fit inside another, in one place.
//!
//! How they nest (checked by `Config` validation at start-up, so a replica
//! never runs with bounds that cannot hold):
//!
//! ```text
//! frame_bytes_max                      the transport's hard limit
//! ├─ message_bytes_max()               = frame_bytes_max − MESSAGE_OVERHEAD_BYTES:
//! │  │                                   the entries of one Accept, Promise or Catchup
//! │  ├─ value_bytes_max + ENTRY_OVERHEAD_BYTES   one largest entry fits alone
//! │  ├─ batch_bytes_max                 Accept runs (then ≤ window_bytes_max)
//! │  ├─ catchup_bytes_max               Promise and Catchup runs
//! │  └─ TrimState::bytes_max(sessions_max, session_seqs_max)
//! │                                      the session table sent to a node behind a trim
//! └─ client_payload_bytes_max()        = frame_bytes_max − FRAME_OVERHEAD_BYTES
//! value_bytes_max ≤ uncommitted_bytes_max
//! batch_entries_max ≤ window_entries_max
//! session_window ≤ session_seqs_max
//! ```
//!
//! A run of entries (one Accept, Promise or Catchup) is bounded by its
//! *encoded* size: each entry costs [`Limits::entry_bytes`] (its value plus
//! [`ENTRY_OVERHEAD_BYTES`], an upper bound of what postcard adds), the run
//! stops before the entry that would pass its budget, and always carries at
//! least one entry. Since a largest entry fits `message_bytes_max()` alone,
//! and every budget is at most that, every such message fits a frame.
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

/// Bytes of a framed peer message besides its entries: the frame's version
/// byte, the enum tag, ballot, indexes, optional next index and the entry
/// count, each a varint of at most 10 bytes (under 100 in all), with room.
pub const MESSAGE_OVERHEAD_BYTES: usize = 256;

/// Encoded bytes of one entry besides its value: at most an index, a ballot
/// (counter and node) and the value's length, each a varint of at most 10
/// bytes. An Accept or Catchup entry (the value and its length) costs less.
pub const ENTRY_OVERHEAD_BYTES: usize = 40;

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
    /// Encoded bytes per Accept message (see [`Limits::entry_bytes`]); a
    /// staged write batch is flushed once its value bytes reach it;
    /// `≤ message_bytes_max()`.
    pub batch_bytes_max: usize,
    /// Per acceptor, entries sent and not yet acknowledged.
    pub window_entries_max: usize,
    /// Per acceptor, value bytes sent and not yet acknowledged.
    pub window_bytes_max: usize,
    /// Entries per Catchup or Promise message.
    pub catchup_entries_max: usize,
    /// Encoded bytes per Catchup or Promise message (see
    /// [`Limits::entry_bytes`]); `≤ message_bytes_max()`.
    pub catchup_bytes_max: usize,
    /// Value bytes the leader holds proposed and not yet chosen; beyond it
    /// proposals get `Busy`. At least `value_bytes_max`.
    pub uncommitted_bytes_max: usize,
    /// Sessions the session table keeps (least recently used evicted: its
    /// client then gets `SessionExpired`, never a second append).
    pub sessions_max: usize,
    /// Seqs the session table remembers in all sessions together.
    pub session_seqs_max: usize,
    /// Seqs one session may have at or above its floor: the deepest a
    /// client may pipeline. Beyond, an append is `Busy`.
    pub session_window: u64,
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
            // A lagging follower learns this many per round trip to a busy
            // leader. `tests/catchup.rs` on release nodes (2 cores): 512
            // caught up in 3.3–4.9 s, 4,096 in 2.5–2.7 s; the byte budget
            // below still bounds a reply of large values.
            catchup_entries_max: 4096,
            // Three largest entries per message, under the frame's 4 MiB
            // with room for its overhead (4 MiB plus one value over, as it
            // was, made messages no frame takes).
            catchup_bytes_max: 7 << 19,
            uncommitted_bytes_max: 64 << 20,
            // 8,192 sessions × 40 B + 131,072 seqs × 10 B ≈ 1.6 MB of trim
            // state at most: well inside one message.
            sessions_max: 8_192,
            session_seqs_max: 1 << 17,
            session_window: 1024,
            frame_bytes_max: 4 << 20,
        }
    }
}

impl Limits {
    /// The largest client payload that fits in one frame with its envelope.
    pub fn client_payload_bytes_max(&self) -> usize {
        self.frame_bytes_max.saturating_sub(FRAME_OVERHEAD_BYTES)
    }

    /// Encoded bytes the entries of one Accept, Promise or Catchup may take:
    /// the one budget every run of entries sent to a peer is held to.
    pub fn message_bytes_max(&self) -> usize {
        self.frame_bytes_max.saturating_sub(MESSAGE_OVERHEAD_BYTES)
    }

    /// What one entry with a value of `value_len` bytes costs in a message:
    /// an upper bound of its encoded size.
    pub fn entry_bytes(value_len: usize) -> usize {
        value_len.saturating_add(ENTRY_OVERHEAD_BYTES)
    }

    /// The budget of one Promise or Catchup.
    pub(crate) fn catchup_budget(&self) -> usize {
        self.catchup_bytes_max.min(self.message_bytes_max())
    }

    /// The budget of one Accept.
    pub(crate) fn batch_budget(&self) -> usize {
        self.batch_bytes_max.min(self.message_bytes_max())
    }

    /// Whether the bounds nest as the module documentation says; the error
    /// names the first one that does not.
    pub fn check(&self) -> Result<(), String> {
        let bounds = [
            ("window_entries_max", self.window_entries_max),
            ("window_bytes_max", self.window_bytes_max),
            ("batch_entries_max", self.batch_entries_max),
            ("batch_bytes_max", self.batch_bytes_max),
            ("value_bytes_max", self.value_bytes_max),
            ("catchup_entries_max", self.catchup_entries_max),
            ("catchup_bytes_max", self.catchup_bytes_max),
        ];
        if let Some((name, _)) = bounds.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{name} must be positive (every bound must be)"));
        }
        let frame = self.frame_bytes_max;
        if frame <= MESSAGE_OVERHEAD_BYTES || frame > u32::MAX as usize {
            return Err(format!(
                "frame_bytes_max ({frame}) must be in {}..={}",
                MESSAGE_OVERHEAD_BYTES + 1,
                u32::MAX
            ));
        }
        let message = self.message_bytes_max();
        let entry = Self::entry_bytes(self.value_bytes_max);
        if entry > message {
            return Err(format!(
                "value_bytes_max ({}) + {ENTRY_OVERHEAD_BYTES} bytes of entry overhead = {entry} \
                 must fit message_bytes_max() = frame_bytes_max ({frame}) − \
                 {MESSAGE_OVERHEAD_BYTES} = {message}",
                self.value_bytes_max
            ));
        }
        for (name, value) in [
            ("batch_bytes_max", self.batch_bytes_max),
            ("catchup_bytes_max", self.catchup_bytes_max),
        ] {
            if value > message {
                return Err(format!(
                    "{name} ({value}) must be at most message_bytes_max() = \
                     frame_bytes_max ({frame}) − {MESSAGE_OVERHEAD_BYTES} = {message}"
                ));
            }
        }
        if self.session_window == 0 || self.session_window > self.session_seqs_max as u64 {
            return Err(format!(
                "session_window ({}) must be in 1..=session_seqs_max ({})",
                self.session_window, self.session_seqs_max
            ));
        }
        let state = crate::TrimState::bytes_max(self.sessions_max, self.session_seqs_max);
        if self.sessions_max == 0 || state > message {
            return Err(format!(
                "sessions_max ({}) and session_seqs_max ({}) make a session table of up to \
                 {state} bytes, which must be positive and fit message_bytes_max() = {message}",
                self.sessions_max, self.session_seqs_max
            ));
        }
        if self.value_bytes_max > self.uncommitted_bytes_max {
            return Err(format!(
                "value_bytes_max ({}) must be at most uncommitted_bytes_max ({}), \
                 or the largest value is always Busy",
                self.value_bytes_max, self.uncommitted_bytes_max
            ));
        }
        Ok(())
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

    #[test]
    fn the_defaults_nest() {
        let limits = Limits::default();
        assert_eq!(limits.check(), Ok(()));
        assert!(3 * Limits::entry_bytes(limits.value_bytes_max) <= limits.catchup_budget());
    }

    #[test]
    fn a_catchup_budget_of_the_whole_frame_is_refused_by_name() {
        let limits = Limits {
            catchup_bytes_max: 4 << 20,
            ..Limits::default()
        };
        let err = limits
            .check()
            .expect_err("4 MiB leaves no room for the envelope");
        assert!(err.starts_with("catchup_bytes_max"), "{err}");
    }

    #[test]
    fn a_value_that_cannot_travel_alone_is_refused_by_name() {
        let limits = Limits {
            value_bytes_max: 4 << 20,
            ..Limits::default()
        };
        let err = limits
            .check()
            .expect_err("a largest value must fit a frame");
        assert!(err.starts_with("value_bytes_max"), "{err}");
    }

    #[test]
    fn entry_overhead_bounds_what_postcard_adds() {
        use paxlog_storage::{Accepted, Ballot};
        let entry = (
            u64::MAX,
            Accepted {
                ballot: Ballot::new(u64::MAX, u64::MAX),
                value: bytes::Bytes::from(vec![0u8; 1 << 20]),
            },
        );
        let size = postcard::experimental::serialized_size(&entry).expect("size");
        assert!(size <= Limits::entry_bytes(1 << 20), "{size}");
    }
}
