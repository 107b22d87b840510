//! Reads RocksDB's write-ahead log on our own, for the one question RocksDB
//! cannot answer when it finds the log corrupt before its tail: did a write
//! that had been synced lie past the damage?
//!
//! A thrifty acceptor writes accepts unsynced, so its log can hold many
//! writes past its last sync, and a power cut may keep a later page of them
//! and not an earlier one. That is damage "before the tail", but nothing
//! acknowledged was in it. Every unsynced batch starts with a
//! `meta/unsynced` put holding the sequence number its last synced write had
//! reached ([`Meta::Unsynced`]). If every batch past the recovered point
//! carries one at or below that point, no sync came after it: all that went
//! was unsynced, and the store is healthy.
//!
//! Format (RocksDB's `db/log_format.h`, logs not recycled): 32 KiB blocks;
//! each fragment has a 7-byte header (masked CRC32C of its type and payload,
//! u32 LE; payload length, u16 LE; type) and a record spans blocks as First,
//! Middle, Last fragments. A record is a write batch: its first sequence
//! number (u64 LE), its count (u32 LE), then its operations.

use std::path::{Path, PathBuf};

use crate::record::{self, Meta};

const BLOCK_BYTES: usize = 32 * 1024;
const HEADER_BYTES: usize = 7;
const FULL: u8 = 1;
const FIRST: u8 = 2;
const MIDDLE: u8 = 3;
const LAST: u8 = 4;
const BATCH_HEADER_BYTES: usize = 12;
/// A column-family put: the only operation a marker can be.
const CF_VALUE_TAG: u8 = 0x05;
const CRC_MASK_DELTA: u32 = 0xa282_ead8;
/// WAL bytes read at most: RocksDB keeps `max_total_wal_size` (128 MiB)
/// live, plus the file being written.
const WAL_BYTES_MAX: u64 = 512 << 20;
/// Bytes checksummed at most while looking past damage for intact
/// fragments (about a second of CRC32C).
const RESYNC_BYTES_MAX: usize = 1 << 30;

/// A write batch found intact in the log.
#[derive(Debug, PartialEq, Eq)]
pub struct Batch {
    /// RocksDB's sequence number of its first operation.
    pub seq: u64,
    /// Its `meta/unsynced` marker: the sequence number synced writes had
    /// reached when it was written; `None` for a synced batch.
    pub synced_before: Option<u64>,
    /// The log file, and where in it the record's first fragment starts.
    pub file: PathBuf,
    pub offset: usize,
}

/// The intact batches of every log file in `dir`, oldest first. Public for
/// the tests that tear a real node's unsynced writes (`tests/thrifty.rs`).
pub fn batches(dir: &Path) -> Result<Vec<Batch>, String> {
    let mut logs: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .map_err(|e| format!("list {}: {e}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter_map(|path| {
            let number = path
                .file_name()?
                .to_str()?
                .strip_suffix(".log")?
                .parse()
                .ok()?;
            Some((number, path))
        })
        .collect();
    logs.sort();
    let mut total = 0u64;
    let mut budget = RESYNC_BYTES_MAX;
    let mut found = Vec::new();
    for (_, path) in logs {
        let bytes = std::fs::read(&path).map_err(|e| format!("read {}: {e}", path.display()))?;
        total += bytes.len() as u64;
        if total > WAL_BYTES_MAX {
            return Err(format!("more than {WAL_BYTES_MAX} bytes of WAL"));
        }
        found.extend(
            records(&bytes, &mut budget)?
                .into_iter()
                .filter_map(|(offset, r)| batch(&r, &path, offset)),
        );
    }
    Ok(found)
}

/// Whether what a point-in-time recovery to `recovered_seq` dropped was
/// unsynced only: `Ok(batches dropped)`, or why that cannot be shown.
pub(super) fn dropped_unsynced_only(
    batches: &[Batch],
    recovered_seq: u64,
) -> Result<usize, String> {
    let dropped: Vec<&Batch> = batches.iter().filter(|b| b.seq > recovered_seq).collect();
    if dropped.is_empty() {
        return Err("no intact write past the damage shows it was unsynced".into());
    }
    match dropped
        .iter()
        .find(|b| b.synced_before.is_none_or(|s| s > recovered_seq))
    {
        None => Ok(dropped.len()),
        Some(b) => Err(format!(
            "a write past the damage (sequence {}) {}",
            b.seq,
            match b.synced_before {
                None => "was synced".to_string(),
                Some(s) =>
                    format!("followed a sync at sequence {s}, past the recovered {recovered_seq}"),
            }
        )),
    }
}

/// The intact records of one log file. Unlike RocksDB's reader, which
/// gives up on the rest of a block at a damaged fragment, this one looks for
/// the next intact fragment byte by byte: the writes past a tear are what
/// tell whether it was unsynced. A fragment counts only if its checksum
/// holds; `budget` bounds the bytes checksummed while looking.
fn records(bytes: &[u8], budget: &mut usize) -> Result<Vec<(usize, Vec<u8>)>, String> {
    let mut out = Vec::new();
    let mut partial: Option<(usize, Vec<u8>)> = None;
    for (number, block) in bytes.chunks(BLOCK_BYTES).enumerate() {
        let mut at = 0;
        let mut in_step = true;
        while at + HEADER_BYTES <= block.len() {
            let header = &block[at..at + HEADER_BYTES];
            let length = usize::from(u16::from_le_bytes([header[4], header[5]]));
            let kind = header[6];
            let end = at + HEADER_BYTES + length;
            let plausible = (FULL..=LAST).contains(&kind) || (in_step && kind > LAST);
            let intact = plausible
                && end <= block.len()
                && (in_step || take(budget, length)?)
                && crc32c::crc32c(&block[at + HEADER_BYTES - 1..end])
                    == unmask(u32::from_le_bytes([
                        header[0], header[1], header[2], header[3],
                    ]));
            if !intact {
                // Damage, padding or preallocated space: look further on.
                partial = None;
                in_step = false;
                at += 1;
                continue;
            }
            in_step = true;
            let data = &block[at + HEADER_BYTES..end];
            let offset = number * BLOCK_BYTES + at;
            match kind {
                FULL => {
                    partial = None;
                    out.push((offset, data.to_vec()));
                }
                FIRST => partial = Some((offset, data.to_vec())),
                MIDDLE => {
                    if let Some((_, p)) = &mut partial {
                        p.extend_from_slice(data);
                    }
                }
                LAST => {
                    if let Some((start, mut p)) = partial.take() {
                        p.extend_from_slice(data);
                        out.push((start, p));
                    }
                }
                // RocksDB's own records (compression type, predecessor WAL).
                _ => {}
            }
            at = end;
        }
    }
    Ok(out)
}

/// Spends `bytes` of the checksum budget; an error once it is gone.
fn take(budget: &mut usize, bytes: usize) -> Result<bool, String> {
    *budget = budget
        .checked_sub(bytes + 1)
        .ok_or("too much of the WAL is damaged to read past it")?;
    Ok(true)
}

fn unmask(masked: u32) -> u32 {
    let rotated = masked.wrapping_sub(CRC_MASK_DELTA);
    rotated.rotate_left(15)
}

fn batch(record: &[u8], file: &Path, offset: usize) -> Option<Batch> {
    let header = record.get(..BATCH_HEADER_BYTES)?;
    let seq = u64::from_le_bytes(header[..8].try_into().ok()?);
    Some(Batch {
        seq,
        synced_before: marker(&record[BATCH_HEADER_BYTES..]),
        file: file.to_path_buf(),
        offset,
    })
}

/// The `meta/unsynced` marker, if it is the batch's first operation.
fn marker(ops: &[u8]) -> Option<u64> {
    let (&tag, rest) = ops.split_first()?;
    if tag != CF_VALUE_TAG {
        return None;
    }
    let (_cf, rest) = varint(rest)?;
    let (key_len, rest) = varint(rest)?;
    let (key, rest) = rest.split_at_checked(key_len)?;
    let marker_key = Meta::Unsynced.key();
    if key != marker_key {
        return None;
    }
    let (value_len, rest) = varint(rest)?;
    let value = rest.get(..value_len)?;
    record::decode::<u64>(&marker_key, value).ok()
}

fn varint(bytes: &[u8]) -> Option<(usize, &[u8])> {
    let mut value = 0usize;
    for (i, &b) in bytes.iter().enumerate().take(5) {
        value |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, &bytes[i + 1..]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unmask_undoes_rocksdbs_mask() {
        let crc = crc32c::crc32c(b"\x01payload");
        let masked = crc.rotate_right(15).wrapping_add(CRC_MASK_DELTA);
        assert_eq!(unmask(masked), crc);
    }

    #[test]
    fn only_unsynced_batches_past_the_recovered_point_are_a_torn_tail() {
        let b = |seq, synced_before| Batch {
            seq,
            synced_before,
            file: PathBuf::new(),
            offset: 0,
        };
        assert_eq!(
            dropped_unsynced_only(&[b(5, None), b(9, Some(5)), b(11, Some(5))], 8),
            Ok(2)
        );
        let synced = dropped_unsynced_only(&[b(5, None), b(9, None)], 8);
        assert!(synced.is_err_and(|e| e.contains("was synced")));
        let after_sync = dropped_unsynced_only(&[b(9, Some(8)), b(12, Some(10))], 8);
        assert!(after_sync.is_err_and(|e| e.contains("followed a sync at sequence 10")));
        assert!(dropped_unsynced_only(&[b(5, None)], 8).is_err());
    }
}
