//! A replicated key-value store built only on the public `Log` API: three
//! in-process nodes, published snapshots, trimming, and a replica whose
//! state directory is empty rebuilt from a peer's snapshot plus the log.
//! Exits non-zero on any mismatch.

use std::collections::BTreeMap;
use std::path::Path;

use bytes::Bytes;
use futures::StreamExt;
use paxlog::log::{Log, LogConfig, LogEvent};
use paxlog::node::NodeConfig;

type Error = Box<dyn std::error::Error>;

/// A replica's state: the map and the last log index applied to it.
#[derive(Debug, Default, PartialEq, Eq)]
struct Kv {
    map: BTreeMap<String, String>,
    applied: u64,
}

impl Kv {
    fn apply(&mut self, index: u64, bytes: &[u8]) {
        // Non-commands (e.g. empty Noops) advance `applied` without changing the map.
        let text = String::from_utf8_lossy(bytes);
        let mut words = text.splitn(3, ' ');
        match (words.next(), words.next(), words.next()) {
            (Some("set"), Some(k), Some(v)) => {
                self.map.insert(k.into(), v.into());
            }
            (Some("del"), Some(k), None) => {
                self.map.remove(k);
            }
            _ => {}
        }
        self.applied = index;
    }

    /// Applies everything chosen up to the linearizable tail.
    async fn catch_up(&mut self, log: &Log) -> Result<(), Error> {
        let tail = log.tail().await?;
        if tail > self.applied {
            for (index, bytes) in log.read(self.applied + 1..tail + 1).await? {
                self.apply(index, &bytes);
            }
        }
        Ok(())
    }

    /// The snapshot: the applied index, then one `key value` line per key
    /// (a map in key order: every replica writes the same bytes).
    fn to_bytes(&self) -> Vec<u8> {
        let mut text = format!("{}\n", self.applied);
        for (k, v) in &self.map {
            text.push_str(&format!("{k} {v}\n"));
        }
        text.into_bytes()
    }

    fn from_bytes(bytes: &[u8]) -> Result<Kv, Error> {
        let text = std::str::from_utf8(bytes)?;
        let mut lines = text.lines();
        let applied = lines.next().ok_or("empty snapshot")?.parse()?;
        let mut map = BTreeMap::new();
        for line in lines {
            let (k, v) = line.split_once(' ').ok_or("bad snapshot line")?;
            map.insert(k.to_string(), v.to_string());
        }
        Ok(Kv { map, applied })
    }

    /// Rebuilds a replica whose state directory `dir` is empty: from the
    /// log's start, which is trimmed, so from the newest snapshot (fetched
    /// from a peer that holds it) and then every entry after it.
    async fn rebuild(log: &Log, dir: &Path) -> Result<Kv, Error> {
        let tail = log.tail().await?;
        let mut kv = Kv::default();
        let mut from_snapshot = false;
        let mut events = Box::pin(log.subscribe(1));
        while kv.applied < tail {
            match events.next().await.ok_or("the subscription ended")?? {
                LogEvent::Snapshot { index, meta } => {
                    let path = dir.join("snapshot");
                    log.fetch_snapshot(&meta, &path).await?;
                    kv = Kv::from_bytes(&std::fs::read(&path)?)?;
                    if kv.applied != index {
                        return Err(format!("snapshot at {index} says {}", kv.applied).into());
                    }
                    from_snapshot = true;
                }
                LogEvent::Entry { index, bytes } if from_snapshot => kv.apply(index, &bytes),
                LogEvent::Entry { index, .. } => {
                    return Err(format!("entry {index} came before the snapshot").into())
                }
                LogEvent::Trimmed { first } => {
                    return Err(format!("entries before {first} trimmed with no snapshot").into())
                }
            }
        }
        Ok(kv)
    }
}

async fn open(
    dir: &Path,
    id: u64,
    members: &BTreeMap<u64, std::net::SocketAddr>,
) -> Result<Log, Error> {
    let node = NodeConfig::new(
        "kv".into(),
        id,
        members.clone(),
        dir.join("certs"),
        dir.join(format!("node-{id}")),
    )?;
    Ok(Log::open(LogConfig {
        node,
        client_name: "kv".into(),
        request_timeout_ms: 10_000,
    })
    .await?)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let summary = run().await?;
    println!("{summary}");
    Ok(())
}

/// The whole scenario; an `Err` on any failure or mismatch (also used by
/// `tests/kv_example.rs`).
pub async fn run() -> Result<String, Error> {
    let dir = tempfile::tempdir()?;
    let ids = [1u64, 2, 3];
    paxlog_net::generate_certs(&dir.path().join("certs"), &ids, &["kv".to_string()])?;
    let sockets = ids
        .iter()
        .map(|_| std::net::UdpSocket::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()?;
    let mut members = BTreeMap::new();
    for (id, s) in ids.iter().zip(&sockets) {
        members.insert(*id, s.local_addr()?);
    }
    drop(sockets);

    let mut logs = BTreeMap::new();
    for id in ids {
        logs.insert(id, open(dir.path(), id, &members).await?);
    }
    let mut kvs: BTreeMap<u64, Kv> = ids.iter().map(|id| (*id, Kv::default())).collect();

    // Writes go through every node; non-leaders forward to the leader.
    for i in 0..30u64 {
        let log = &logs[&ids[(i % 3) as usize]];
        log.append(Bytes::from(format!("set k{} v{i}", i % 10)))
            .await?;
    }
    logs[&1].append(Bytes::from_static(b"del k0")).await?;
    for id in ids {
        kvs.get_mut(&id).ok_or("kv")?.catch_up(&logs[&id]).await?;
    }

    // Replicas 1 and 2 publish a snapshot of the same state (the same bytes:
    // both then hold it), the log is trimmed up to it, and node 3 goes down
    // and loses its application's state directory.
    let at = kvs[&1].applied;
    for id in [1, 2] {
        let bytes = kvs[&id].to_bytes();
        logs[&id].publish_snapshot(at, &bytes[..]).await?;
    }
    logs[&1].trim(at).await?;
    logs.remove(&3).ok_or("node 3")?.close().await?;
    let state_dir = dir.path().join("kv-3");
    std::fs::create_dir_all(&state_dir)?;
    for i in 0..5u64 {
        logs[&2]
            .append(Bytes::from(format!("set after{i} x{i}")))
            .await?;
    }
    // Closing a node returns once its port is free, so it restarts in place;
    // its application rebuilds from a peer's snapshot plus the log.
    logs.insert(3, open(dir.path(), 3, &members).await?);
    let rebuilt = Kv::rebuild(&logs[&3], &state_dir).await?;
    kvs.insert(3, rebuilt);
    for id in [1, 2, 3] {
        kvs.get_mut(&id).ok_or("kv")?.catch_up(&logs[&id]).await?;
    }

    let mut expected = BTreeMap::new();
    for k in 1..10 {
        expected.insert(format!("k{k}"), format!("v{}", 20 + k));
    }
    for i in 0..5 {
        expected.insert(format!("after{i}"), format!("x{i}"));
    }
    let mut mismatches = Vec::new();
    for (id, kv) in &kvs {
        if kv.map != expected {
            mismatches.push(format!("replica {id} differs: {:?}", kv.map));
        }
    }
    if kvs[&1] != kvs[&2] || kvs[&2] != kvs[&3] {
        mismatches.push(format!("replicas differ: {kvs:?}"));
    }
    for (_, log) in logs {
        log.close().await?;
    }
    if !mismatches.is_empty() {
        return Err(mismatches.join("\n").into());
    }
    Ok(format!(
        "kv: 3 replicas equal, {} keys, replica 3 rebuilt from a peer's snapshot plus the log",
        expected.len()
    ))
}
