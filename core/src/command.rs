//! The replicated command: what one chosen index holds.

use bytes::Bytes;
use paxlog_storage::{Index, NodeId};

use super::membership::{Change, Membership};
use serde::{Deserialize, Serialize};

/// A log command. Postcard-encoded into `Accepted.value`; the encoding is
/// what acceptors store and compare, so it must be deterministic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Fills a hole found while taking over; readers skip it.
    Noop,
    /// Effective only as its session's next seq (see `sessions`).
    Append {
        client_id: u64,
        seq: u64,
        /// The client's lowest seq not yet acknowledged when it sent this.
        floor: u64,
        payload: Bytes,
    },
    /// Opens the session whose id is this command's index; closes
    /// `supersedes` (the same client's previous session) for new seqs.
    Register { supersedes: Option<u64> },
    /// The application no longer needs indexes `<= upto`.
    Trim { upto: Index },
    /// One membership step, effective only if the configuration is still at
    /// `expect_epoch` where it is chosen (see `membership`). `next` is the
    /// whole configuration it makes, as the proposing leader computed it from
    /// the configuration at `expect_epoch`: folding takes it as is, so a node
    /// whose seed differs (one that joined later) still ends up identical.
    Reconfigure {
        expect_epoch: u64,
        change: Change,
        next: Membership,
    },
    /// The application published a snapshot of its state at `index`, held
    /// by `holder` (see `snapshot`); bounds every later trim.
    Snapshot {
        index: Index,
        size_bytes: u64,
        crc32c: u32,
        holder: NodeId,
    },
    /// Sets or renews retention hold `name`: no trim passes `index` while it
    /// lives (see `holds`).
    Hold {
        name: String,
        index: Index,
        lease_ms: u64,
    },
    /// Releases hold `name`; with `renewed_at`, only if it was not renewed
    /// since that index (a leader expiring it).
    Release {
        name: String,
        renewed_at: Option<Index>,
    },
}

impl Command {
    pub fn encode(&self) -> Bytes {
        // Encoding into a Vec cannot fail for these plain types.
        Bytes::from(postcard::to_allocvec(self).unwrap_or_default())
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(bytes)
    }
}
