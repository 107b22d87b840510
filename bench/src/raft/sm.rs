//! The state machine: counts applied payloads (the benchmark measures the
//! log, not an application). Its snapshot is persisted, synced, in the meta
//! column family, so that a restarted node can resume after a purged prefix.

// openraft's storage traits return its (large) StorageError by value; the
// helpers here return what those traits need.
#![allow(clippy::result_large_err)]

use std::fmt;
use std::io::{self, Cursor};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use openraft::storage::RaftStateMachine;
use openraft::{
    EntryPayload, OptionalSend, RaftSnapshotBuilder, Snapshot, StorageIOError, StoredMembership,
};
use rocksdb::DB;
use serde::{Deserialize, Serialize};

use super::store::{decode, encode, get_meta, put_meta_synced};
use super::types::{Entry, LogId, Membership, SnapshotMeta, StorageError, TypeConfig};

const KEY_SNAPSHOT: &[u8] = b"snapshot";
/// A snapshot holds a few counters and the membership; anything larger is
/// not one of ours.
const SNAPSHOT_BYTES_MAX: usize = 64 << 10;

/// Everything the state machine holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmData {
    pub last_applied: Option<LogId>,
    pub membership: Membership,
    /// Client payloads applied (an entry holds a batch of them).
    pub applied_payloads: u64,
    pub applied_bytes: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

fn decode_data(bytes: &[u8]) -> Result<SmData, StorageError> {
    if bytes.len() > SNAPSHOT_BYTES_MAX {
        return Err(StorageIOError::read_snapshot(
            None,
            &io::Error::other(format!(
                "snapshot of {} bytes exceeds {SNAPSHOT_BYTES_MAX}",
                bytes.len()
            )),
        )
        .into());
    }
    decode(bytes)
}

/// What the state machine applied, readable while openraft owns it.
#[derive(Debug, Default)]
pub struct AppliedCounters {
    pub payloads: AtomicU64,
}

pub struct StateMachine {
    db: Arc<DB>,
    data: SmData,
    /// Invariant: `counters.payloads` == `data.applied_payloads` between calls.
    counters: Arc<AppliedCounters>,
}

impl fmt::Debug for StateMachine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateMachine")
            .field("data", &self.data)
            .finish_non_exhaustive()
    }
}

impl StateMachine {
    /// Restores the state of the last persisted snapshot, if any; openraft
    /// re-applies the log after it.
    pub fn open(db: Arc<DB>) -> Result<Self, StorageError> {
        let data = match get_meta::<StoredSnapshot>(&db, KEY_SNAPSHOT)? {
            Some(stored) => decode_data(&stored.data)?,
            None => SmData::default(),
        };
        let counters = Arc::new(AppliedCounters {
            payloads: AtomicU64::new(data.applied_payloads),
        });
        Ok(Self { db, data, counters })
    }

    pub fn counters(&self) -> Arc<AppliedCounters> {
        self.counters.clone()
    }

    #[cfg(test)]
    pub fn data(&self) -> &SmData {
        &self.data
    }

    fn publish(&self) {
        self.counters
            .payloads
            .store(self.data.applied_payloads, Ordering::Relaxed);
    }
}

async fn persist(db: &Arc<DB>, meta: &SnapshotMeta, data: &[u8]) -> Result<(), StorageError> {
    let stored = StoredSnapshot {
        meta: meta.clone(),
        data: data.to_vec(),
    };
    put_meta_synced(db, KEY_SNAPSHOT, encode(&stored)?).await
}

/// Builds a snapshot from a copy of the state taken when openraft asked.
pub struct SnapshotBuilder {
    db: Arc<DB>,
    data: SmData,
}

impl fmt::Debug for SnapshotBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotBuilder")
            .field("data", &self.data)
            .finish_non_exhaustive()
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let bytes = encode(&self.data)?;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let last_index = self.data.last_applied.map(|l| l.index).unwrap_or_default();
        let meta = SnapshotMeta {
            last_log_id: self.data.last_applied,
            last_membership: self.data.membership.clone(),
            snapshot_id: format!("{last_index}-{nanos}"),
        };
        persist(&self.db, &meta, &bytes).await?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, Membership), StorageError> {
        Ok((self.data.last_applied, self.data.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<u64>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries = entries.into_iter();
        let mut replies = Vec::with_capacity(entries.size_hint().0);
        for entry in entries {
            assert!(
                self.data.last_applied < Some(entry.log_id),
                "applied out of order"
            );
            self.data.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(payload) => {
                    self.data.applied_payloads += payload.0.len() as u64;
                    self.data.applied_bytes += payload.bytes() as u64;
                }
                EntryPayload::Membership(m) => {
                    self.data.membership = StoredMembership::new(Some(entry.log_id), m);
                }
            }
            replies.push(entry.log_id.index);
        }
        self.publish();
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            db: self.db.clone(),
            data: self.data.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let bytes = snapshot.into_inner();
        let data = decode_data(&bytes)?;
        if data.last_applied != meta.last_log_id {
            return Err(StorageIOError::read_snapshot(
                Some(meta.signature()),
                &io::Error::other("snapshot data disagrees with its metadata"),
            )
            .into());
        }
        persist(&self.db, meta, &bytes).await?;
        self.data = data;
        self.publish();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let stored: Option<StoredSnapshot> = get_meta(&self.db, KEY_SNAPSHOT)?;
        Ok(stored.map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}
