//! On-disk record encoding shared by every store that persists bytes.
//!
//! Keys are a one-byte kind followed by big-endian fields, so RocksDB's
//! bytewise order is index order:
//! - `[0x00, tag]`: scalar metadata (`meta/<name>`), in the column family
//!   [`META_CF`],
//! - `[0x01, index u64 BE]`: the accepted entry at `index` (`accepted/<index>`),
//!   in the default column family.
//!
//! The scalars have their own column family because they are rewritten on
//! every batch: among the entries, each flushed file would span the whole key
//! range, and every compaction would rewrite the whole level below instead of
//! moving files that an append-only key space never overlaps (format 1 did).
//!
//! Values are `[record version u16 BE][CRC32C u32 BE][postcard payload]`. The
//! checksum covers the key and then the payload, so a value that turns up
//! under the wrong key fails its check just like a flipped bit does.

use serde::{de::DeserializeOwned, Serialize};

use crate::{Index, StoreError};

/// The data directory format this build writes, recorded once per directory
/// in `meta/format`. Format 1 (every record in the default column family) is
/// migrated to it on open; see [`FORMAT_MIGRATED`].
pub const FORMAT_VERSION: u16 = 2;

/// The older directory format a read-write open migrates in place.
pub const FORMAT_MIGRATED: u16 = 1;

/// The version of a record's encoding, carried by every record header. Format
/// 2 moved records between column families without changing their encoding.
pub const RECORD_VERSION: u16 = 1;

/// The column family of the `meta/` records.
pub const META_CF: &str = "meta";

/// The column family of the accepted entries: RocksDB's default one, which
/// is where format 1 kept every record.
pub const ENTRIES_CF: &str = "default";

/// Bytes before the payload: version (2) + checksum (4).
pub const HEADER_BYTES: usize = 6;

const KIND_META: u8 = 0x00;
const KIND_ACCEPTED: u8 = 0x01;

/// The scalar records under `meta/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Meta {
    /// Format version of the directory (payload: `u16`).
    Format,
    /// Owner of the directory (payload: [`crate::Identity`]).
    Identity,
    /// Promised ballot (payload: [`crate::Ballot`]).
    Promised,
    /// Chosen index (payload: `u64`).
    ChosenIndex,
    /// Trim point (payload: `u64`).
    TrimIndex,
    /// Present while the voting state awaits repair (payload: reason `String`).
    Suspect,
    /// The core's state derived from the log, kept across trims (payload: bytes).
    TrimState,
    /// The directory's incarnation id (payload: nonzero `u64`), created with
    /// it. A build that predates it ignores it, so the format version stays.
    Incarnation,
    /// The first operation of every batch written unsynced (payload: the
    /// RocksDB sequence number every synced write had reached): lets an open
    /// that finds the WAL torn tell unsynced writes past the damage from
    /// synced ones (`rocks/wal_scan.rs`). Older builds never read it.
    Unsynced,
}

impl Meta {
    pub const ALL: [Meta; 9] = [
        Meta::Format,
        Meta::Identity,
        Meta::Promised,
        Meta::ChosenIndex,
        Meta::TrimIndex,
        Meta::Suspect,
        Meta::TrimState,
        Meta::Incarnation,
        Meta::Unsynced,
    ];

    fn tag(self) -> u8 {
        match self {
            Meta::Format => 1,
            Meta::Identity => 2,
            Meta::Promised => 3,
            Meta::ChosenIndex => 4,
            Meta::TrimIndex => 5,
            Meta::Suspect => 6,
            Meta::TrimState => 7,
            Meta::Incarnation => 8,
            Meta::Unsynced => 9,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Meta::Format => "meta/format",
            Meta::Identity => "meta/identity",
            Meta::Promised => "meta/promised",
            Meta::ChosenIndex => "meta/chosen_index",
            Meta::TrimIndex => "meta/trim_index",
            Meta::Suspect => "meta/suspect",
            Meta::TrimState => "meta/trim_state",
            Meta::Incarnation => "meta/incarnation",
            Meta::Unsynced => "meta/unsynced",
        }
    }

    pub fn key(self) -> [u8; 2] {
        [KIND_META, self.tag()]
    }
}

/// The column family that holds `key` in the current format.
pub fn column_family(key: &[u8]) -> &'static str {
    match key.first() {
        Some(&KIND_META) => META_CF,
        _ => ENTRIES_CF,
    }
}

/// Key of the accepted entry at `index`.
pub fn accepted_key(index: Index) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = KIND_ACCEPTED;
    key[1..].copy_from_slice(&index.to_be_bytes());
    key
}

/// The first key after every accepted entry: the exclusive end of ranges that
/// must reach `Index::MAX`.
pub fn accepted_end_key() -> [u8; 1] {
    [KIND_ACCEPTED + 1]
}

/// Exclusive end key for "every index `<= index`".
pub fn accepted_key_after(index: Index) -> Vec<u8> {
    match index.checked_add(1) {
        Some(next) => accepted_key(next).to_vec(),
        None => accepted_end_key().to_vec(),
    }
}

/// The index of an accepted-entry key, `None` if `key` is not one.
pub fn accepted_index(key: &[u8]) -> Option<Index> {
    match key {
        [KIND_ACCEPTED, rest @ ..] => rest.try_into().ok().map(Index::from_be_bytes),
        _ => None,
    }
}

/// A readable name for any key, for errors.
pub fn key_name(key: &[u8]) -> String {
    if let Some(index) = accepted_index(key) {
        return format!("accepted/{index}");
    }
    Meta::ALL
        .iter()
        .find(|m| m.key() == key)
        .map(|m| m.name().to_string())
        .unwrap_or_else(|| format!("unknown/{}", hex(key)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn checksum(key: &[u8], payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(key), payload)
}

/// Encodes `value` as the record stored under `key`.
pub fn encode<T: Serialize>(key: &[u8], value: &T) -> Vec<u8> {
    let mut out = vec![0u8; HEADER_BYTES];
    // Serializing our own plain data types into a Vec cannot fail.
    let out_payload =
        postcard::to_extend(value, Vec::new()).expect("postcard encodes plain data into a Vec");
    out[0..2].copy_from_slice(&RECORD_VERSION.to_be_bytes());
    out[2..6].copy_from_slice(&checksum(key, &out_payload).to_be_bytes());
    out.extend_from_slice(&out_payload);
    out
}

/// A record's header, readable before its checksum is trusted.
pub fn version(raw: &[u8]) -> Option<u16> {
    raw.get(0..2).map(|v| u16::from_be_bytes([v[0], v[1]]))
}

/// Verifies and decodes the record stored under `key`.
///
/// Any failure is [`StoreError::Corrupt`] naming the key: a short value, an
/// unknown version, a checksum mismatch, or a payload that does not decode
/// completely.
pub fn decode<T: DeserializeOwned>(key: &[u8], raw: &[u8]) -> Result<T, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        key: key_name(key),
        reason,
    };
    if raw.len() < HEADER_BYTES {
        return Err(corrupt(format!(
            "record is {} bytes, shorter than its {HEADER_BYTES}-byte header",
            raw.len()
        )));
    }
    let found_version = u16::from_be_bytes([raw[0], raw[1]]);
    if found_version != RECORD_VERSION {
        return Err(corrupt(format!(
            "record version {found_version}, expected {RECORD_VERSION}"
        )));
    }
    let stored = u32::from_be_bytes([raw[2], raw[3], raw[4], raw[5]]);
    let payload = &raw[HEADER_BYTES..];
    let computed = checksum(key, payload);
    if stored != computed {
        return Err(corrupt(format!(
            "checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
        )));
    }
    let (value, rest) = postcard::take_from_bytes::<T>(payload)
        .map_err(|e| corrupt(format!("payload does not decode: {e}")))?;
    if !rest.is_empty() {
        return Err(corrupt(format!(
            "{} trailing bytes after the payload",
            rest.len()
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Accepted, Ballot};
    use bytes::Bytes;

    #[test]
    fn accepted_keys_sort_by_index() {
        let indexes = [0u64, 1, 255, 256, 1 << 40, u64::MAX];
        for pair in indexes.windows(2) {
            assert!(accepted_key(pair[0]) < accepted_key(pair[1]));
        }
        assert!(accepted_key(u64::MAX).as_slice() < accepted_end_key().as_slice());
        assert!(Meta::Suspect.key().as_slice() < accepted_key(0).as_slice());
        assert_eq!(accepted_index(&accepted_key(42)), Some(42));
        assert_eq!(accepted_index(&Meta::Promised.key()), None);
    }

    #[test]
    fn every_meta_key_is_distinct_and_named_in_errors() {
        for (i, a) in Meta::ALL.iter().enumerate() {
            assert_eq!(key_name(&a.key()), a.name());
            for b in &Meta::ALL[i + 1..] {
                assert_ne!(a.key(), b.key(), "{a:?} and {b:?}");
            }
        }
        assert_eq!(key_name(&Meta::Incarnation.key()), "meta/incarnation");
    }

    #[test]
    fn round_trip_and_every_flipped_bit_is_detected() {
        let key = accepted_key(42);
        let value = Accepted {
            ballot: Ballot::new(7, 2),
            value: Bytes::from_static(b"hello"),
        };
        let raw = encode(&key, &value);
        assert_eq!(
            decode::<Accepted>(&key, &raw).expect("intact record decodes"),
            value
        );
        for byte in 0..raw.len() {
            for bit in 0..8 {
                let mut bad = raw.clone();
                bad[byte] ^= 1 << bit;
                match decode::<Accepted>(&key, &bad) {
                    Err(StoreError::Corrupt { key, .. }) => assert_eq!(key, "accepted/42"),
                    other => panic!("flip of byte {byte} bit {bit} gave {other:?}"),
                }
            }
        }
    }

    #[test]
    fn record_under_wrong_key_is_corrupt() {
        let raw = encode(&Meta::ChosenIndex.key(), &5u64);
        match decode::<u64>(&Meta::TrimIndex.key(), &raw) {
            Err(StoreError::Corrupt { key, reason }) => {
                assert_eq!(key, "meta/trim_index");
                assert!(reason.contains("checksum"), "{reason}");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn short_and_truncated_records_are_corrupt() {
        let key = Meta::Promised.key();
        let raw = encode(&key, &Ballot::new(3, 1));
        for len in 0..raw.len() {
            assert!(matches!(
                decode::<Ballot>(&key, &raw[..len]),
                Err(StoreError::Corrupt { .. })
            ));
        }
    }
}
