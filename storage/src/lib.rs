//! Durable acceptor state for paxlog.
//!
//! This crate knows the acceptor's durable records — the promised ballot, the
//! accepted `(ballot, value)` per index, the chosen index, the trim point, the
//! node's identity and the directory's incarnation — but none of the
//! protocol's rules. Values are opaque bytes: the core encodes its commands
//! before they reach a store.
//!
//! Two implementations keep one contract ([`Store`]):
//! - `RocksStore`: the real one, RocksDB on disk, every write synced
//!   (feature `rocksdb`, on by default).
//! - [`MemStore`]: for the deterministic simulation, with a way to simulate a
//!   crash that loses whatever was staged but not yet synced.
//!
//! The contract, checked by the conformance suite in `tests/conformance.rs`:
//! - [`Store::write`] applies a whole [`WriteBatch`] atomically and durably:
//!   when it returns `Ok`, the batch survives a crash or power loss; a batch is
//!   never visible in part.
//! - After any failed write the store is *failed* and refuses every later
//!   write with [`StoreError::Failed`] (fail-stop: never retry-then-acknowledge).
//! - Reads below the trim point fail with [`StoreError::Trimmed`] naming the
//!   first index still held.
//! - Every record carries a format version and a CRC32C checksum verified on
//!   read; a mismatch is [`StoreError::Corrupt`] naming the key, never garbage.
//! - Damaged voting state makes the store [`Health::Suspect`], durably, until
//!   [`Store::repair`] installs state rebuilt from peers.
//!
//! The on-disk format is described in [`record`] and in the crate's README.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

mod mem;
pub mod record;
#[cfg(feature = "rocksdb")]
mod rocks;

pub use mem::{MemStore, STAGED_BATCHES_MAX};
#[cfg(feature = "rocksdb")]
pub use rocks::wal_scan::{batches as wal_batches, Batch as WalBatch};
#[cfg(feature = "rocksdb")]
pub use rocks::RocksStore;

/// A cluster member's id. 0 is never a valid node id.
pub type NodeId = u64;

/// A log index. The first index is 1; 0 means "none".
pub type Index = u64;

/// A Paxos ballot, ordered lexicographically by `(counter, node)`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Ballot {
    pub counter: u64,
    pub node: NodeId,
}

impl Ballot {
    /// The ballot below every ballot a node can pick.
    pub const ZERO: Ballot = Ballot {
        counter: 0,
        node: 0,
    };

    pub const fn new(counter: u64, node: NodeId) -> Self {
        Ballot { counter, node }
    }
}

impl std::fmt::Display for Ballot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.counter, self.node)
    }
}

/// What an acceptor accepted at one index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    pub ballot: Ballot,
    /// Opaque to storage: the core's encoded command.
    pub value: Bytes,
}

/// Who a data directory belongs to. Checked on every open.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub cluster_id: String,
    pub node_id: NodeId,
}

/// The acceptor's scalar durable state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// Invariant: never decreases, across crashes (DESIGN.md invariant 4).
    /// Storage does not enforce it; the core asserts it before writing.
    pub promised: Ballot,
    /// Highest index known chosen; persisted atomically with the entries it covers.
    pub chosen_index: Index,
    /// Every index `<= trim_index` has been deleted; the first index held is
    /// `trim_index + 1`.
    pub trim_index: Index,
}

/// One atomic unit of durable change (synced unless written with
/// [`Store::write_unsynced`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteBatch {
    /// A new promised ballot.
    pub promise: Option<Ballot>,
    /// Accepted entries to store, each replacing whatever the index held.
    pub accepts: Vec<(Index, Accepted)>,
    /// A new chosen index.
    pub chosen_index: Option<Index>,
    /// Delete every index `<= trim_index` and remember the trim point.
    /// Ignored if not above the current trim point.
    pub trim_index: Option<Index>,
    /// Opaque state the core derived from the log (its session table),
    /// replacing the one stored before; written with the trim that deletes
    /// the entries it was derived from, so it survives them.
    pub trim_state: Option<Bytes>,
}

impl WriteBatch {
    pub fn is_empty(&self) -> bool {
        self.promise.is_none()
            && self.accepts.is_empty()
            && self.chosen_index.is_none()
            && self.trim_index.is_none()
            && self.trim_state.is_none()
    }

    /// Bytes of accepted values in the batch.
    pub fn value_bytes(&self) -> usize {
        self.accepts.iter().map(|(_, a)| a.value.len()).sum()
    }
}

/// Whether the store's voting state can be trusted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    Ok,
    /// The promise or accepted state may be lost or corrupt (for example the
    /// WAL was corrupt in the middle, or a record failed its checksum). The
    /// core must not vote until it has repaired its state from peers.
    ///
    /// The mark is durable: it survives restarts until [`Store::repair`]
    /// clears it. A safe repair (a suggestion; the rules live in the core):
    /// stay out of every vote (no promise, no accept replies); pick a ballot
    /// above every ballot seen and run Phase 1 with it against a majority of
    /// the *other* nodes, which makes them reject any older ballot that might
    /// still count on our lost vote; adopt, per index above the chosen index,
    /// the accepted value with the highest ballot among their promises; then
    /// call `repair` with that ballot as `promise` and those values as
    /// `accepts` (plus the chosen index learned), in one batch.
    Suspect {
        reason: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("index {index} is trimmed; the first index still held is {first}")]
    Trimmed { index: Index, first: Index },
    #[error("corrupt record at key {key}: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("store has failed after an earlier write or sync error and accepts no more writes")]
    Failed,
    #[error("data directory belongs to cluster {found_cluster:?} node {found_node}, not cluster {expected_cluster:?} node {expected_node}")]
    WrongIdentity {
        expected_cluster: String,
        expected_node: NodeId,
        found_cluster: String,
        found_node: NodeId,
    },
    #[error("data directory has format version {found}; this build reads version {supported}")]
    UnknownFormat { found: u16, supported: u16 },
    #[error("storage I/O error: {0}")]
    Io(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Bounds on a range read. Both are hard limits, except that a read always
/// returns at least one entry when one exists in range (so a single value
/// larger than `bytes_max` can still be read, and `entries_max == 0` acts as 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadLimit {
    pub entries_max: usize,
    pub bytes_max: usize,
}

/// The acceptor's durable memory. Implementations are internally synchronized
/// so a driver may write from one thread while the core reads from another.
pub trait Store: Send + Sync + std::fmt::Debug {
    fn identity(&self) -> &Identity;

    /// The data directory's incarnation id: never 0, created with the
    /// directory and the same across every reopen and restart after it.
    /// A new directory gets a new one, and so does a wiped one: a member of
    /// the cluster is `(node id, incarnation)`, so the core can tell a node
    /// that lost its promises from the one that gave them.
    ///
    /// It is not part of [`Identity`]: a directory opens as its node whatever
    /// its incarnation. A directory restored from a backup keeps the backup's
    /// incarnation but not the promises given since it was taken, and nothing
    /// here can tell; so a restore must be handled as a replacement (a wiped
    /// directory, a new member), never as the node restarting.
    fn incarnation(&self) -> u64;

    /// Whether the voting state can be trusted (see [`Health`]).
    fn health(&self) -> Health;

    /// The current scalar state, including the effect of every `Ok` write.
    fn metadata(&self) -> Metadata;

    /// Highest index holding an accepted entry (0 if none); never below the
    /// trim point.
    fn last_index(&self) -> Index;

    /// Applies `batch` atomically and syncs it. After an `Err`, the store is
    /// failed: this and every later write returns [`StoreError::Failed`] or
    /// the original error, and nothing more becomes durable.
    fn write(&self, batch: &WriteBatch) -> Result<()>;

    /// Like [`Store::write`] without the sync: reads see `batch` at once,
    /// and the next synced write makes it durable with everything written
    /// before it. A crash before that may lose it and any unsynced write
    /// after it, never a synced one: the store reopens at a prefix of its
    /// writes, or [`Health::Suspect`] if the crash damaged one in the middle.
    /// Only for state no message has claimed durable (an accept a leader
    /// does not count, `core::Config::thrifty`). An empty `batch` writes
    /// nothing; syncing one (`write`) syncs what came before.
    fn write_unsynced(&self, batch: &WriteBatch) -> Result<()>;

    /// Like [`Store::write`], and in the same atomic, synced write clears the
    /// [`Health::Suspect`] mark and deletes every accepted entry above the
    /// chosen index (the batch's, else the current one) before applying
    /// `batch`: the batch carries the voting state rebuilt from peers and
    /// replaces whatever, possibly damaged, was there (see [`Health::Suspect`]).
    fn repair(&self, batch: &WriteBatch) -> Result<()>;

    /// The accepted entry at `index`, `None` if the index holds none.
    /// Below the trim point: [`StoreError::Trimmed`].
    fn get(&self, index: Index) -> Result<Option<Accepted>>;

    /// Accepted entries with `from <= index <= to` in index order, skipping
    /// indexes that hold none, bounded by `limit`.
    /// `from` below the trim point: [`StoreError::Trimmed`].
    fn range(&self, from: Index, to: Index, limit: ReadLimit) -> Result<Vec<(Index, Accepted)>>;

    /// The last `trim_state` written (`None` if never). A damaged record is
    /// [`StoreError::Corrupt`].
    fn trim_state(&self) -> Result<Option<Bytes>>;
}

/// A shared store is still a store: the node's writer thread and the core
/// hold the same `Arc`.
impl<T: Store + ?Sized> Store for std::sync::Arc<T> {
    fn identity(&self) -> &Identity {
        (**self).identity()
    }
    fn incarnation(&self) -> u64 {
        (**self).incarnation()
    }
    fn health(&self) -> Health {
        (**self).health()
    }
    fn metadata(&self) -> Metadata {
        (**self).metadata()
    }
    fn last_index(&self) -> Index {
        (**self).last_index()
    }
    fn write(&self, batch: &WriteBatch) -> Result<()> {
        (**self).write(batch)
    }
    fn write_unsynced(&self, batch: &WriteBatch) -> Result<()> {
        (**self).write_unsynced(batch)
    }
    fn repair(&self, batch: &WriteBatch) -> Result<()> {
        (**self).repair(batch)
    }
    fn get(&self, index: Index) -> Result<Option<Accepted>> {
        (**self).get(index)
    }
    fn range(&self, from: Index, to: Index, limit: ReadLimit) -> Result<Vec<(Index, Accepted)>> {
        (**self).range(from, to, limit)
    }
    fn trim_state(&self) -> Result<Option<Bytes>> {
        (**self).trim_state()
    }
}
