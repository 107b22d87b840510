//! Snapshots through the client: publishing one (upload to a holder in
//! chunks, seal, then a replicated `Snapshot` command) and fetching one
//! from whichever node holds it, resumably, into a file made visible only
//! once its length and CRC-32C match what the log says.

use std::path::{Path, PathBuf};
use std::time::Instant;

use bytes::Bytes;
use paxlog_storage::{Index, NodeId};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::retry::Backoff;
use super::{unexpected, Client, ClientError};
use crate::core::SnapshotMeta;
use crate::node::SNAPSHOT_CHUNK_BYTES;
use crate::proto::{Request, Response};

fn file_error(what: &str, path: &Path, e: std::io::Error) -> ClientError {
    ClientError::Snapshot(format!("{what} {}: {e}", path.display()))
}

/// Where a fetch into `dest` keeps what it has so far.
pub fn partial_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    dest.with_file_name(name)
}

impl Client {
    /// Uploads `source` to node `holder` as the application's snapshot at
    /// `index` (its state after applying every index `<= index`), then
    /// publishes it: once this returns, every node knows it and no trim
    /// passes it. Returns what the log knows of it and where the `Snapshot`
    /// command was chosen. Admin only.
    pub async fn publish_snapshot(
        &self,
        holder: NodeId,
        index: Index,
        mut source: impl AsyncRead + Unpin,
    ) -> Result<(SnapshotMeta, Index), ClientError> {
        let mut buf = vec![0u8; SNAPSHOT_CHUNK_BYTES];
        let (mut offset, mut crc32c) = (0u64, 0u32);
        loop {
            let mut filled = 0;
            while filled < buf.len() {
                let n = source
                    .read(&mut buf[filled..])
                    .await
                    .map_err(|e| ClientError::Snapshot(format!("reading the snapshot: {e}")))?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            if filled == 0 && offset > 0 {
                break;
            }
            crc32c = crc32c::crc32c_append(crc32c, &buf[..filled]);
            let data = Bytes::copy_from_slice(&buf[..filled]);
            let end = offset + filled as u64;
            let next = self.write_chunk(holder, index, offset, data).await?;
            if next != end {
                return Err(ClientError::Snapshot(format!(
                    "node {holder} holds {next} bytes of the upload of snapshot {index}, not \
                     {end}: another upload of the same index is running"
                )));
            }
            offset = end;
            if filled < buf.len() {
                break;
            }
        }
        let size_bytes = offset;
        let seal = |req| Request::SnapshotSeal {
            req,
            index,
            size_bytes,
            crc32c,
        };
        match self.to_node(holder, seal).await? {
            Response::Appended { .. } => {}
            other => return Err(unexpected(&other)),
        }
        let publish = |req| Request::PublishSnapshot {
            req,
            index,
            size_bytes,
            crc32c,
            holder,
        };
        let at = self.to_leader_index(publish).await?;
        let meta = SnapshotMeta {
            index,
            size_bytes,
            crc32c,
            holders: [holder].into(),
            chosen_at: at,
        };
        Ok((meta, at))
    }

    async fn write_chunk(
        &self,
        holder: NodeId,
        index: Index,
        offset: u64,
        data: Bytes,
    ) -> Result<u64, ClientError> {
        let write = |req| Request::SnapshotWrite {
            req,
            index,
            offset,
            data: data.clone(),
        };
        match self.to_node(holder, write).await? {
            Response::SnapshotWritten { next_offset, .. } => Ok(next_offset),
            other => Err(unexpected(&other)),
        }
    }

    /// One request to node `id`, retried on transport errors until the
    /// client's timeout (every request sent this way is idempotent).
    async fn to_node(
        &self,
        id: NodeId,
        make: impl Fn(u64) -> Request,
    ) -> Result<Response, ClientError> {
        let deadline = Instant::now() + self.inner.timeout;
        let mut backoff = Backoff::new();
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let last = match tokio::time::timeout(
                remaining,
                self.request(id, make(self.next_req())),
            )
            .await
            {
                Ok(Ok(Response::Error { error, .. })) => return Err(ClientError::Op(error)),
                Ok(Ok(response)) => return Ok(response),
                Ok(Err(e)) => {
                    self.drop_session(id).await;
                    e
                }
                Err(_) => ClientError::Timeout(self.inner.timeout),
            };
            if Instant::now() >= deadline {
                return Err(last);
            }
            backoff.sleep().await;
        }
    }

    /// The newest published snapshot any reachable node knows.
    pub async fn newest_snapshot(&self) -> Result<Option<SnapshotMeta>, ClientError> {
        let mut newest: Option<SnapshotMeta> = None;
        let mut last = None;
        let mut any = false;
        for (_, _, status) in self.status_all().await {
            match status {
                Ok(s) => {
                    any = true;
                    if let Some(m) = s.snapshot {
                        if newest.as_ref().is_none_or(|n| m.index > n.index) {
                            newest = Some(m);
                        }
                    }
                }
                Err(e) => last = Some(e),
            }
        }
        match (any, last) {
            (false, Some(e)) => Err(e),
            _ => Ok(newest),
        }
    }

    /// Fetches the snapshot `meta` describes into `dest`, from its holders
    /// first, then any node. Bytes already fetched (in `dest` + `.part`,
    /// after a crash or a lost connection) are kept and the fetch goes on
    /// where they end. `dest` appears, synced, only once the whole
    /// snapshot's length and CRC-32C match `meta`; on a mismatch the
    /// partial file is deleted and the error says so. Returns how many bytes
    /// were already there (where this fetch resumed).
    pub async fn fetch_snapshot(
        &self,
        meta: &SnapshotMeta,
        dest: &Path,
    ) -> Result<u64, ClientError> {
        let part = partial_path(dest);
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&part)
            .await
            .map_err(|e| file_error("cannot open", &part, e))?;
        // What is already there counts toward the checksum: read it once.
        let (mut offset, mut crc) = if file
            .metadata()
            .await
            .map_err(|e| file_error("cannot stat", &part, e))?
            .len()
            > meta.size_bytes
        {
            file.set_len(0)
                .await
                .map_err(|e| file_error("cannot truncate", &part, e))?;
            (0, 0)
        } else {
            let part = part.clone();
            tokio::task::spawn_blocking(move || crate::node::checksum(&part))
                .await
                .map_err(|e| ClientError::Snapshot(e.to_string()))?
                .map_err(|e| ClientError::Snapshot(e.to_string()))?
        };
        let resumed_at = offset;
        let mut order: Vec<NodeId> = meta.holders.iter().copied().collect();
        order.extend(
            self.node_ids()
                .into_iter()
                .filter(|id| !meta.holders.contains(id)),
        );
        let mut deadline = Instant::now() + self.inner.timeout;
        let mut backoff = Backoff::new();
        let mut last = ClientError::Unreachable("no node holds the snapshot".into());
        while offset < meta.size_bytes {
            let mut progressed = false;
            for &id in &order {
                let read = |req| Request::SnapshotRead {
                    req,
                    index: meta.index,
                    crc32c: meta.crc32c,
                    offset,
                    len: SNAPSHOT_CHUNK_BYTES as u32,
                };
                let remaining = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(remaining, self.request(id, read(self.next_req()))).await
                {
                    Ok(Ok(Response::SnapshotData {
                        size_bytes, data, ..
                    })) if size_bytes == meta.size_bytes && !data.is_empty() => {
                        file.write_all(&data)
                            .await
                            .map_err(|e| file_error("cannot write", &part, e))?;
                        crc = crc32c::crc32c_append(crc, &data);
                        offset += data.len() as u64;
                        progressed = true;
                        break;
                    }
                    Ok(Ok(other)) => last = unexpected(&other),
                    Ok(Err(e)) => {
                        self.drop_session(id).await;
                        last = e;
                    }
                    Err(_) => last = ClientError::Timeout(self.inner.timeout),
                }
            }
            if progressed {
                deadline = Instant::now() + self.inner.timeout;
                backoff = Backoff::new();
            } else if Instant::now() >= deadline {
                return Err(last);
            } else {
                backoff.sleep().await;
            }
        }
        if (offset, crc) != (meta.size_bytes, meta.crc32c) {
            drop(file);
            let _ = tokio::fs::remove_file(&part).await;
            return Err(ClientError::Snapshot(format!(
                "snapshot {}: fetched {offset} bytes with CRC-32C {crc:08x}, the log says {} \
                 bytes with {:08x}; the partial file was deleted",
                meta.index, meta.size_bytes, meta.crc32c
            )));
        }
        file.sync_all()
            .await
            .map_err(|e| file_error("cannot sync", &part, e))?;
        drop(file);
        tokio::fs::rename(&part, dest)
            .await
            .map_err(|e| file_error("cannot rename", &part, e))?;
        let parent = dest.parent().filter(|p| !p.as_os_str().is_empty());
        let parent = parent.unwrap_or(Path::new("."));
        std::fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(|e| file_error("cannot sync", parent, e))?;
        Ok(resumed_at)
    }
}
