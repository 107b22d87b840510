//! The replicated command: what one chosen index holds.

use bytes::Bytes;
use paxlog_storage::Index;
use serde::{Deserialize, Serialize};

/// A log command. Postcard-encoded into `Accepted.value`; the encoding is
/// what acceptors store and compare, so it must be deterministic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Fills a hole found while taking over; readers skip it.
    Noop,
    Append {
        client_id: u64,
        seq: u64,
        payload: Bytes,
    },
    /// The application no longer needs indexes `<= upto`.
    Trim { upto: Index },
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
