//! Opening a RocksDB data directory: ownership checks, format migration, WAL
//! recovery, and the verification of voting state that decides [`Health`].

use std::path::Path;

use rocksdb::{
    ColumnFamily, ColumnFamilyDescriptor, DBRecoveryMode, Direction, ErrorKind, IteratorMode,
    Options, ReadOptions, WriteOptions, DB,
};

use super::wal_scan;
use crate::record::{self, Meta, ENTRIES_CF, FORMAT_MIGRATED, FORMAT_VERSION, META_CF};
use crate::{Ballot, Health, Identity, Index, Metadata, Result, StoreError};

/// How many distinct problems a suspect reason lists before summarizing.
const REASONS_MAX: usize = 4;

/// What a read-only look at a directory found, before anything is written.
pub(super) struct Probe {
    /// `None`: the directory holds no records at all (never initialized, or
    /// the first open died before its first sync).
    pub identity: Option<Identity>,
    /// The directory's format: [`FORMAT_VERSION`], or [`FORMAT_MIGRATED`]
    /// for one the read-write open must migrate. Meaningless without an
    /// identity.
    pub format: u16,
    /// `None`: no `meta/incarnation` record, as in a directory never
    /// initialized or one initialized by a build that predates incarnations.
    pub incarnation: Option<u64>,
}

/// The state loaded and verified by a read-write open.
pub(super) struct Loaded {
    pub meta: Metadata,
    pub last_index: Index,
    pub health: Health,
    /// Set when this open found new damage and no `meta/suspect` mark exists
    /// yet: the reason to record, so a restart cannot forget it. An existing
    /// mark is kept as it is (the first reason stands).
    pub mark: Option<String>,
}

fn io(e: rocksdb::Error) -> StoreError {
    StoreError::Io(e.into_string())
}

/// Options for the data directory.
///
/// WAL recovery mode: `TolerateCorruptedTailRecords`. A torn last record is a
/// write whose sync never returned, so nobody was told it happened and
/// dropping it is safe. Corruption anywhere before the tail means records we
/// acknowledged are damaged: this mode refuses to open then, so we find out.
/// The one exception is read past the damage by [`wal_scan`]: when every
/// write after it was unsynced and followed the last sync (a thrifty
/// acceptor's accepts, torn by a power cut), the open is healthy.
/// `PointInTime` would instead stop replay at the first bad record and quietly
/// drop every later acknowledged write, a promise among them: exactly how one
/// index gets two values. We use `PointInTime` only as the fallback that opens
/// such a directory in [`Health::Suspect`] mode.
pub(super) fn options(mode: DBRecoveryMode) -> Options {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.set_wal_recovery_mode(mode);
    opts.set_paranoid_checks(true);
    opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
    opts.create_missing_column_families(true);
    // The meta column family holds few live bytes but is written by every
    // batch, so its unflushed records pin WAL files whose entries were
    // flushed long ago: past this total RocksDB flushes it (a few records)
    // and the files go. Two of the entries' 64 MiB memtables' worth.
    opts.set_max_total_wal_size(128 << 20);
    // Bound RocksDB's own info logs.
    opts.set_keep_log_file_num(4);
    opts.set_max_log_file_size(16 << 20);
    opts
}

/// A few small records rewritten on every batch: a small memtable flushes
/// often (releasing WAL files), and compression would buy nothing.
fn meta_options() -> Options {
    let mut opts = Options::default();
    opts.set_write_buffer_size(4 << 20);
    opts.set_compression_type(rocksdb::DBCompressionType::None);
    opts
}

fn descriptors(mode: DBRecoveryMode) -> Vec<ColumnFamilyDescriptor> {
    vec![
        ColumnFamilyDescriptor::new(ENTRIES_CF, options(mode)),
        ColumnFamilyDescriptor::new(META_CF, meta_options()),
    ]
}

/// The handle of a column family the open created; its absence is a bug in
/// this file, reported as an error rather than a panic.
pub(super) fn cf<'a>(db: &'a DB, name: &str) -> Result<&'a ColumnFamily> {
    db.cf_handle(name)
        .ok_or_else(|| StoreError::Io(format!("column family {name} is not open")))
}

fn is_corruption(e: &rocksdb::Error) -> bool {
    e.kind() == ErrorKind::Corruption
}

/// Whether `dir` already holds a RocksDB database.
pub(super) fn exists(dir: &Path) -> bool {
    dir.join("CURRENT").exists()
}

/// Reads the identity and format of an existing directory without changing
/// anything in it: a read-only open writes no file (not even RocksDB's info
/// log; `tests/rocks_disk.rs` compares every byte before and after).
pub(super) fn probe(dir: &Path) -> Result<Probe> {
    let families =
        DB::list_cf(&options(DBRecoveryMode::TolerateCorruptedTailRecords), dir).map_err(io)?;
    let has_meta = families.iter().any(|f| f == META_CF);
    let open = |mode| {
        let mut opts = options(mode);
        opts.create_if_missing(false);
        let names: &[&str] = if has_meta {
            &[ENTRIES_CF, META_CF]
        } else {
            &[ENTRIES_CF]
        };
        DB::open_cf_for_read_only(&opts, dir, names, false)
    };
    let db = match open(DBRecoveryMode::TolerateCorruptedTailRecords) {
        Ok(db) => db,
        // The read-write open will report it as Suspect; the ownership
        // check must still happen first.
        Err(e) if is_corruption(&e) => open(DBRecoveryMode::PointInTime).map_err(io)?,
        Err(e) => return Err(io(e)),
    };
    // Format 2 keeps the scalars in the meta column family. A directory
    // without them there is format 1, or one whose migration was cut off
    // after the column family was created and before the records moved.
    let entries = cf(&db, ENTRIES_CF)?;
    let meta_cf = if has_meta {
        Some(cf(&db, META_CF)?)
    } else {
        None
    };
    let format_key = Meta::Format.key();
    let mut found = None;
    for (family, format) in [(meta_cf, FORMAT_VERSION), (Some(entries), FORMAT_MIGRATED)] {
        let Some(family) = family else { continue };
        if let Some(raw) = db.get_pinned_cf(family, format_key).map_err(io)? {
            found = Some((family, format, raw.to_vec()));
            break;
        }
    }
    let Some((family, expected, raw)) = found else {
        let empty = [Some(entries), meta_cf]
            .into_iter()
            .flatten()
            .all(|family| db.iterator_cf(family, IteratorMode::Start).next().is_none());
        if empty {
            return Ok(Probe {
                identity: None,
                format: FORMAT_VERSION,
                incarnation: None,
            });
        }
        return Err(StoreError::Corrupt {
            key: Meta::Format.name().to_string(),
            reason: "missing, but the directory holds other records".to_string(),
        });
    };
    if let Some(found) = record::version(&raw) {
        if found != record::RECORD_VERSION {
            return Err(StoreError::UnknownFormat {
                found,
                supported: FORMAT_VERSION,
            });
        }
    }
    let format: u16 = record::decode(&format_key, &raw)?;
    if format != expected {
        return Err(StoreError::UnknownFormat {
            found: format,
            supported: FORMAT_VERSION,
        });
    }
    let identity = match read_meta_in::<Identity>(&db, family, Meta::Identity)? {
        Some(identity) => identity,
        None => {
            return Err(StoreError::Corrupt {
                key: Meta::Identity.name().to_string(),
                reason: "missing, but the format record is present".to_string(),
            })
        }
    };
    // Read here, before the read-write open, so a damaged record refuses the
    // open without changing a byte, like a damaged identity does.
    let incarnation = match read_meta_in::<u64>(&db, family, Meta::Incarnation)? {
        Some(0) => {
            return Err(StoreError::Corrupt {
                key: Meta::Incarnation.name().to_string(),
                reason: "incarnation 0, which is never written".to_string(),
            })
        }
        found => found,
    };
    Ok(Probe {
        identity: Some(identity),
        format,
        incarnation,
    })
}

/// Moves a format-1 directory's scalars into the meta column family and
/// records format 2, in one synced write: a crash leaves either format whole.
/// Records move byte for byte, so damage found before stays found after.
pub(super) fn migrate(db: &DB, dir: &Path) -> Result<()> {
    let entries = cf(db, ENTRIES_CF)?;
    let meta_cf = cf(db, META_CF)?;
    let mut batch = rocksdb::WriteBatch::default();
    for meta in Meta::ALL {
        let key = meta.key();
        let raw = db
            .get_pinned_cf(entries, key)
            .map_err(|e| read_failure(meta, e))?;
        let Some(raw) = raw else { continue };
        if meta == Meta::Format {
            batch.put_cf(meta_cf, key, record::encode(&key, &FORMAT_VERSION));
        } else {
            batch.put_cf(meta_cf, key, &raw[..]);
        }
        batch.delete_cf(entries, key);
    }
    let mut opts = WriteOptions::default();
    opts.set_sync(true);
    db.write_opt(batch, &opts).map_err(io)?;
    tracing::info!(dir = %dir.display(), from = FORMAT_MIGRATED, to = FORMAT_VERSION,
        "migrated the data directory's format");
    Ok(())
}

/// A new incarnation id from the OS's random source.
pub(super) fn new_incarnation() -> Result<u64> {
    let mut bytes = [0u8; 8];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| StoreError::Io(format!("no OS randomness for an incarnation id: {e}")))?;
    // 0 is never an incarnation; mapping it to 1 costs nothing measurable.
    Ok(u64::from_le_bytes(bytes).max(1))
}

/// Whether `dir` takes `O_DIRECT` writes. Some file systems (tmpfs before
/// Linux 6.6, some FUSE ones) refuse them, and RocksDB would then fail its
/// first flush, stopping the node.
fn direct_io_supported(dir: &Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    let probe = dir.join("DIRECT_IO_PROBE");
    let opened = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(nix::fcntl::OFlag::O_DIRECT.bits())
        .open(&probe);
    let _ = std::fs::remove_file(&probe);
    opened.is_ok()
}

/// Tables go through the page cache unless the operator sets
/// `PAXLOG_TABLE_DIRECT_IO=on`: direct writes were +28 % appends/s at 64 x
/// 4 KiB on one VM's disk and -40 % on another's (bench/README, "Direct I/O
/// for tables"), so the default is RocksDB's own.
const TABLE_DIRECT_IO_ENV: &str = "PAXLOG_TABLE_DIRECT_IO";

fn table_direct_io(dir: &Path) -> Result<bool> {
    match std::env::var(TABLE_DIRECT_IO_ENV) {
        Err(std::env::VarError::NotPresent) => Ok(false),
        Ok(v) if v == "off" => Ok(false),
        Ok(v) if v == "on" => {
            let supported = direct_io_supported(dir);
            if !supported {
                tracing::warn!(dir = %dir.display(),
                    "{TABLE_DIRECT_IO_ENV}=on, but the file system refuses O_DIRECT; tables go through the page cache");
            }
            Ok(supported)
        }
        Ok(v) => Err(StoreError::Io(format!(
            "{TABLE_DIRECT_IO_ENV} must be on or off, not {v:?}"
        ))),
        Err(e) => Err(StoreError::Io(format!("{TABLE_DIRECT_IO_ENV}: {e}"))),
    }
}

/// Opens read-write. A corrupt WAL (not just a torn tail) still opens, at the
/// last consistent point, with the reason it is suspect.
pub(super) fn open_rw(dir: &Path) -> Result<(DB, Option<String>)> {
    // With direct I/O (opt-in) flushes and compactions skip the kernel's copy
    // of each table; the WAL stays buffered and synced either way.
    let direct = table_direct_io(dir)?;
    if direct {
        tracing::info!(dir = %dir.display(), "tables are written with O_DIRECT");
    }
    let open = |mode| {
        let mut opts = options(mode);
        opts.set_use_direct_io_for_flush_and_compaction(direct);
        DB::open_cf_descriptors(&opts, dir, descriptors(mode))
    };
    match open(DBRecoveryMode::TolerateCorruptedTailRecords) {
        Ok(db) => Ok((db, None)),
        Err(e) if is_corruption(&e) => {
            // Read before the recovery below rewrites the log.
            let scanned = wal_scan::batches(dir);
            let db = open(DBRecoveryMode::PointInTime).map_err(io)?;
            let recovered = db.latest_sequence_number();
            let verdict =
                scanned.and_then(|batches| wal_scan::dropped_unsynced_only(&batches, recovered));
            match verdict {
                Ok(dropped) => {
                    tracing::warn!(dir = %dir.display(), dropped, recovered_seq = recovered,
                        error = %e.into_string(),
                        "write-ahead log torn past its last sync; dropped the unsynced writes after the damage");
                    Ok((db, None))
                }
                Err(why) => {
                    let reason = format!(
                        "write-ahead log corrupt before its tail ({}; {why}); recovered to the last consistent point",
                        e.into_string()
                    );
                    tracing::error!(dir = %dir.display(), %reason, "opening data directory as suspect");
                    Ok((db, Some(reason)))
                }
            }
        }
        Err(e) => Err(io(e)),
    }
}

/// Collects why the voting state cannot be trusted.
#[derive(Default)]
struct Reasons {
    first: Vec<String>,
    more: usize,
}

impl Reasons {
    fn push(&mut self, reason: String) {
        if self.first.len() < REASONS_MAX {
            self.first.push(reason);
        } else {
            self.more += 1;
        }
    }

    fn into_health(self) -> Health {
        if self.first.is_empty() {
            return Health::Ok;
        }
        let mut reason = self.first.join("; ");
        if self.more > 0 {
            reason.push_str(&format!("; and {} more", self.more));
        }
        Health::Suspect { reason }
    }
}

pub(super) fn read_meta<T: serde::de::DeserializeOwned>(db: &DB, meta: Meta) -> Result<Option<T>> {
    read_meta_in(db, cf(db, META_CF)?, meta)
}

fn read_meta_in<T: serde::de::DeserializeOwned>(
    db: &DB,
    family: &ColumnFamily,
    meta: Meta,
) -> Result<Option<T>> {
    let key = meta.key();
    match db.get_pinned_cf(family, key) {
        Ok(Some(raw)) => record::decode(&key, &raw).map(Some),
        Ok(None) => Ok(None),
        Err(e) => Err(read_failure(meta, e)),
    }
}

fn read_failure(meta: Meta, e: rocksdb::Error) -> StoreError {
    if is_corruption(&e) {
        StoreError::Corrupt {
            key: meta.name().to_string(),
            reason: e.into_string(),
        }
    } else {
        io(e)
    }
}

/// Loads the scalar state and verifies every record the acceptor votes with:
/// the promise and each accepted entry above the chosen index. Entries at or
/// below the chosen index are verified when read (they can be re-fetched from
/// peers and are not voting state).
pub(super) fn load(db: &DB, recovery: Option<String>) -> Result<Loaded> {
    let mut reasons = Reasons::default();
    if let Some(reason) = recovery {
        reasons.push(reason);
    }
    let marked = match read_meta::<String>(db, Meta::Suspect) {
        Ok(Some(reason)) => {
            reasons.push(format!("not yet repaired: {reason}"));
            true
        }
        Ok(None) => false,
        // Damaged, but present: still a mark.
        Err(e) => {
            reasons.push(e.to_string());
            true
        }
    };
    // Suspect anyway, so Ballot::ZERO cannot lead to a vote.
    let promised = match read_meta::<Ballot>(db, Meta::Promised) {
        Ok(b) => b.unwrap_or(Ballot::ZERO),
        Err(e) => {
            reasons.push(e.to_string());
            Ballot::ZERO
        }
    };
    // `None` below: the record exists but is unreadable (already a reason).
    let chosen = match read_meta::<Index>(db, Meta::ChosenIndex) {
        Ok(c) => Some(c.unwrap_or(0)),
        Err(e) => {
            reasons.push(e.to_string());
            None
        }
    };
    let trim = match read_meta::<Index>(db, Meta::TrimIndex) {
        Ok(t) => Some(t.unwrap_or(0)),
        Err(e) => {
            reasons.push(e.to_string());
            None
        }
    };
    // Best guess for an unreadable trim point: everything below the first
    // entry held. The store is suspect already.
    let trim_index = match trim {
        Some(t) => t,
        None => first_accepted(db)?.map_or(chosen.unwrap_or(0), |first| first.saturating_sub(1)),
    };
    let chosen_index = chosen.unwrap_or(trim_index);

    let mut last_index = trim_index;
    let mut read = ReadOptions::default();
    read.set_verify_checksums(true);
    read.set_iterate_upper_bound(record::accepted_end_key().to_vec());
    let start = record::accepted_key(chosen_index.saturating_add(1));
    for item in db.iterator_opt(IteratorMode::From(&start, Direction::Forward), read) {
        let (key, value) = match item {
            Ok(kv) => kv,
            Err(e) if is_corruption(&e) => {
                reasons.push(format!(
                    "accepted entries above {chosen_index}: {}",
                    e.into_string()
                ));
                break;
            }
            Err(e) => return Err(io(e)),
        };
        let Some(index) = record::accepted_index(&key) else {
            reasons.push(format!("malformed key {}", record::key_name(&key)));
            continue;
        };
        last_index = last_index.max(index);
        if let Err(e) = record::decode::<crate::Accepted>(&key, &value) {
            reasons.push(e.to_string());
        }
    }
    if let Some(last) = last_accepted(db)? {
        last_index = last_index.max(last);
    }
    let health = reasons.into_health();
    let mark = match &health {
        Health::Suspect { reason } if !marked => Some(reason.clone()),
        _ => None,
    };
    Ok(Loaded {
        meta: Metadata {
            promised,
            chosen_index,
            trim_index,
        },
        last_index,
        health,
        mark,
    })
}

fn first_accepted(db: &DB) -> Result<Option<Index>> {
    let start = record::accepted_key(0);
    match db
        .iterator(IteratorMode::From(&start, Direction::Forward))
        .next()
    {
        Some(Ok((key, _))) => Ok(record::accepted_index(&key)),
        Some(Err(e)) => Err(io(e)),
        None => Ok(None),
    }
}

pub(super) fn last_accepted(db: &DB) -> Result<Option<Index>> {
    let end = record::accepted_end_key();
    match db
        .iterator(IteratorMode::From(&end, Direction::Reverse))
        .next()
    {
        Some(Ok((key, _))) => Ok(record::accepted_index(&key)),
        Some(Err(e)) => Err(io(e)),
        None => Ok(None),
    }
}
