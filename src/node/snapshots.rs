//! The snapshot files a node holds: the application's snapshots, uploaded
//! in chunks and served in chunks (`Request::SnapshotWrite`, `SnapshotSeal`,
//! `SnapshotRead`). The log knows each published snapshot by index, size and
//! CRC-32C (`core::snapshot`); this directory only stores bytes.
//!
//! Layout under `<data_dir>/snapshots/`:
//! - `upload-<index>.part`: an upload in progress. A chunk is appended only
//!   at the file's current length, so an interrupted upload resumes where
//!   the file ends and nothing is ever written twice;
//! - `snapshot-<index>-<crc32c>.snap`: sealed: its length and CRC-32C were
//!   checked, it was synced, then renamed into place (and the directory
//!   synced), so a reader never sees a partial snapshot.
//!
//! Bounded: one upload per index; a sealed snapshot older than the newest
//! one the log knows is deleted (`prune`).

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use paxlog_storage::Index;
use serde::{Deserialize, Serialize};

use crate::core::OpError;

/// Bytes of snapshot data per request, either way.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;

/// A sealed snapshot file this node holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldSnapshot {
    pub index: Index,
    pub size_bytes: u64,
    pub crc32c: u32,
}

#[derive(Debug)]
pub(crate) struct SnapshotDir {
    dir: PathBuf,
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> OpError {
    OpError::SnapshotUnavailable(format!("{what} {}: {e}", path.display()))
}

impl SnapshotDir {
    pub(crate) fn open(data_dir: &Path) -> std::io::Result<SnapshotDir> {
        let dir = data_dir.join("snapshots");
        fs::create_dir_all(&dir)?;
        Ok(SnapshotDir { dir })
    }

    fn upload_path(&self, index: Index) -> PathBuf {
        self.dir.join(format!("upload-{index}.part"))
    }

    fn sealed_path(&self, index: Index, crc32c: u32) -> PathBuf {
        self.dir.join(format!("snapshot-{index}-{crc32c:08x}.snap"))
    }

    /// Appends `data` to the upload of `index` if `offset` is where it ends
    /// (0 starts it again); answers where the upload ends now, which is
    /// where the uploader goes on.
    pub(crate) fn write_chunk(
        &self,
        index: Index,
        offset: u64,
        data: &[u8],
    ) -> Result<u64, OpError> {
        if data.len() > SNAPSHOT_CHUNK_BYTES {
            return Err(OpError::BadRequest(format!(
                "a snapshot chunk of {} bytes is over the limit of {SNAPSHOT_CHUNK_BYTES}",
                data.len()
            )));
        }
        let path = self.upload_path(index);
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| io_error("cannot open", &path, e))?;
        if offset == 0 {
            file.set_len(0)
                .map_err(|e| io_error("cannot truncate", &path, e))?;
        }
        let len = file
            .metadata()
            .map_err(|e| io_error("cannot stat", &path, e))?
            .len();
        if offset != len {
            return Ok(len);
        }
        file.write_all(data)
            .map_err(|e| io_error("cannot write", &path, e))?;
        Ok(len + data.len() as u64)
    }

    /// Checks the upload of `index` against `size_bytes` and `crc32c` and
    /// makes it visible, durably. A mismatch discards the upload.
    pub(crate) fn seal(&self, index: Index, size_bytes: u64, crc32c: u32) -> Result<(), OpError> {
        let sealed = self.sealed_path(index, crc32c);
        if sealed.exists() {
            return Ok(());
        }
        let path = self.upload_path(index);
        let (len, crc) = checksum(&path)?;
        if (len, crc) != (size_bytes, crc32c) {
            let _ = fs::remove_file(&path);
            return Err(OpError::BadRequest(format!(
                "snapshot {index}: the upload has {len} bytes with CRC-32C {crc:08x}, the \
                 publisher says {size_bytes} bytes with {crc32c:08x}; discarded, upload it again"
            )));
        }
        File::open(&path)
            .and_then(|f| f.sync_all())
            .map_err(|e| io_error("cannot sync", &path, e))?;
        fs::rename(&path, &sealed).map_err(|e| io_error("cannot rename", &path, e))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_error("cannot sync", &self.dir, e))?;
        Ok(())
    }

    /// Up to `len` bytes of the sealed snapshot from `offset`, and its size.
    pub(crate) fn read_chunk(
        &self,
        index: Index,
        crc32c: u32,
        offset: u64,
        len: usize,
    ) -> Result<(Bytes, u64), OpError> {
        let path = self.sealed_path(index, crc32c);
        let mut file = File::open(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => OpError::SnapshotUnavailable(format!(
                "this node does not hold the snapshot at index {index} (CRC-32C {crc32c:08x})"
            )),
            _ => io_error("cannot open", &path, e),
        })?;
        let size = file
            .metadata()
            .map_err(|e| io_error("cannot stat", &path, e))?
            .len();
        let want = len.min(SNAPSHOT_CHUNK_BYTES) as u64;
        let take = want.min(size.saturating_sub(offset));
        let mut data = vec![0u8; take as usize];
        file.seek(SeekFrom::Start(offset))
            .and_then(|_| file.read_exact(&mut data))
            .map_err(|e| io_error("cannot read", &path, e))?;
        Ok((Bytes::from(data), size))
    }

    /// The sealed snapshots, oldest first.
    pub(crate) fn list(&self) -> Vec<HeldSnapshot> {
        let mut held: Vec<HeldSnapshot> = fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                let (index, crc) = name
                    .strip_prefix("snapshot-")?
                    .strip_suffix(".snap")?
                    .split_once('-')?;
                Some(HeldSnapshot {
                    index: index.parse().ok()?,
                    crc32c: u32::from_str_radix(crc, 16).ok()?,
                    size_bytes: entry.metadata().ok()?.len(),
                })
            })
            .collect();
        held.sort_by_key(|h| (h.index, h.crc32c));
        held
    }

    /// Prunes below `newest` off the caller's thread, once per new `newest`
    /// (`pruned` is the last one done).
    pub(crate) fn prune_behind(dir: &Arc<SnapshotDir>, newest: Index, pruned: &mut Index) {
        if newest > *pruned {
            *pruned = newest;
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || dir.prune(newest));
        }
    }

    /// Deletes sealed snapshots and uploads below `newest`, the index of the
    /// newest snapshot the log knows: no trim point can need them.
    pub(crate) fn prune(&self, newest: Index) {
        for held in self.list().into_iter().filter(|h| h.index < newest) {
            let path = self.sealed_path(held.index, held.crc32c);
            if let Err(error) = fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), %error, "cannot delete an old snapshot");
            }
        }
        let uploads = fs::read_dir(&self.dir).into_iter().flatten().flatten();
        for entry in uploads {
            let name = entry.file_name();
            let index = name.to_str().and_then(|n| {
                n.strip_prefix("upload-")?
                    .strip_suffix(".part")?
                    .parse()
                    .ok()
            });
            if index.is_some_and(|i: Index| i < newest) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

/// The length and CRC-32C of a file, read in chunks.
pub fn checksum(path: &Path) -> Result<(u64, u32), OpError> {
    let mut file = File::open(path).map_err(|e| io_error("cannot open", path, e))?;
    let mut buf = vec![0u8; 256 << 10];
    let (mut len, mut crc) = (0u64, 0u32);
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| io_error("cannot read", path, e))?;
        if n == 0 {
            return Ok((len, crc));
        }
        crc = crc32c::crc32c_append(crc, &buf[..n]);
        len += n as u64;
    }
}
