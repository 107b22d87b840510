//! The embedded log: a paxlog node running inside the caller's process.
//!
//! [`Log::open`] starts the node ([`crate::node::start`]) and a client of the
//! cluster. Calls go to the leader through that [`Client`]: while the
//! embedded node leads, straight to its loop in process (no QUIC, no TLS, no
//! serialization: [`crate::node::LocalPort`]); otherwise over QUIC to the
//! leader. Both ways share one session (one `(client_id, seq)` counter) and
//! give the same answers and errors; only [`Log::subscribe`] always streams
//! over QUIC.
//!
//! ```
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use bytes::Bytes;
//! use paxlog::log::{Log, LogConfig};
//! use paxlog::node::NodeConfig;
//!
//! let dir = tempfile::tempdir()?;
//! let certs = dir.path().join("certs");
//! paxlog_net::generate_certs(&certs, &[1], &["app".to_string()])?;
//! let addr = std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?;
//! let members = [(1, addr)].into_iter().collect();
//! let node = NodeConfig::new("doc".into(), 1, members, certs, dir.path().join("data"))?;
//! let log = Log::open(LogConfig { node, client_name: "app".into(), request_timeout_ms: 10_000 }).await?;
//!
//! let index = log.append(Bytes::from_static(b"hello")).await?;
//! assert!(log.tail().await? >= index);
//! let read = log.read(index..index + 1).await?;
//! assert_eq!(read, vec![(index, Bytes::from_static(b"hello"))]);
//! log.close().await?;
//! # Ok(()) }
//! ```
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{Stream, StreamExt};
use paxlog_net::ClientTls;
use paxlog_storage::{Ballot, Index, NodeId};

use crate::client::{Client, ClientError, ClientOptions, Delivery};
use crate::core::{Change, Membership, OpError, SnapshotMeta};
use crate::node::{self, NodeConfig, NodeError, NodeHandle};
use crate::proto::NodeStatus;

/// Appends pipelined at once by [`Log::append_batch`]; bounds memory in flight.
const BATCH_WINDOW_MAX: usize = 256;

/// What [`Log::open`] needs: the node's configuration and the name of a client
/// certificate in `node.certs_dir` used for calls forwarded to the leader.
#[derive(Clone, Debug)]
pub struct LogConfig {
    pub node: NodeConfig,
    pub client_name: String,
    pub request_timeout_ms: u64,
}

/// One event of [`Log::subscribe`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogEvent {
    Entry {
        index: Index,
        bytes: Bytes,
    },
    /// Every index up to `index` is trimmed: load the application's state
    /// from this snapshot ([`Log::fetch_snapshot`]) instead; the next
    /// event is `index + 1`.
    Snapshot {
        index: Index,
        meta: SnapshotMeta,
    },
    /// Entries before `first` were trimmed with no snapshot covering them
    /// (a trim from before snapshots existed): they cannot be delivered.
    Trimmed {
        first: Index,
    },
}

/// What a call on the log can fail with: the client's error (a node's
/// [`OpError`] or a transport case) or the embedded node's own failure.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("the node failed: {0}")]
    Node(#[from] NodeError),
}

impl LogError {
    /// True when the call surely had no effect on the log.
    pub fn surely_not_appended(&self) -> bool {
        match self {
            LogError::Client(e) => e.surely_not_appended(),
            LogError::Node(_) => true,
        }
    }

    /// The node's answer, when the error is one.
    pub fn op(&self) -> Option<&OpError> {
        match self {
            LogError::Client(ClientError::Op(e)) => Some(e),
            _ => None,
        }
    }
}

/// A running embedded node plus a client of its cluster.
pub struct Log {
    node: NodeHandle,
    client: Client,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("local_addr", &self.node.local_addr())
            .field("client", &self.client)
            .finish()
    }
}

impl Log {
    /// Starts the node and connects a client to every member. The embedding
    /// application's client certificate is an admin of its own node (it may
    /// trim and change members): give every node's `Log` the same client name.
    pub async fn open(mut config: LogConfig) -> Result<Log, LogError> {
        if !config.node.admins.contains(&config.client_name) {
            config.node.admins.push(config.client_name.clone());
        }
        let tls = ClientTls::load(&config.node.certs_dir, &config.client_name)
            .map_err(|e| ClientError::Tls(format!("client certificate: {e}")))?;
        let options = ClientOptions {
            nodes: config.node.members.clone(),
            timeout: Duration::from_millis(config.request_timeout_ms),
        };
        let node = node::start(config.node).await?;
        let client = Client::with_local(tls, options, node.local_port())?;
        Ok(Log { node, client })
    }

    /// Appends `bytes`; resolves with its index once chosen.
    pub async fn append(&self, bytes: Bytes) -> Result<Index, LogError> {
        Ok(self.client.append(bytes).await?)
    }

    /// Appends only while the leader's ballot is `expected_ballot`.
    pub async fn append_if(
        &self,
        expected_ballot: Ballot,
        bytes: Bytes,
    ) -> Result<Index, LogError> {
        Ok(self.client.append_if(expected_ballot, bytes).await?)
    }

    /// Appends many values pipelined; results are in input order.
    pub async fn append_batch(&self, values: Vec<Bytes>) -> Vec<Result<Index, LogError>> {
        let window = values.len().clamp(1, BATCH_WINDOW_MAX);
        self.client
            .append_all(values, window)
            .await
            .into_iter()
            .map(|r| r.map_err(LogError::from))
            .collect()
    }

    /// Reads the chosen entries in `range`.
    pub async fn read(&self, range: Range<Index>) -> Result<Vec<(Index, Bytes)>, LogError> {
        if range.is_empty() {
            return Ok(Vec::new());
        }
        let entries = self.client.read(range.start, Some(range.end - 1)).await?;
        Ok(entries.into_iter().map(|e| (e.index, e.payload)).collect())
    }

    /// Every chosen entry from `from` on, in order. Where `from` is below the
    /// trim point, `Snapshot { index, .. }` comes first (the newest
    /// published snapshot, which covers every trimmed index), then every
    /// entry from `index + 1`, each once.
    pub fn subscribe(&self, from: Index) -> impl Stream<Item = Result<LogEvent, LogError>> + '_ {
        self.client.subscribe(from).map(|item| match item {
            Ok(Delivery::Entry(e)) => Ok(LogEvent::Entry {
                index: e.index,
                bytes: e.payload,
            }),
            Ok(Delivery::Snapshot(meta)) => Ok(LogEvent::Snapshot {
                index: meta.index,
                meta,
            }),
            Err(ClientError::Op(OpError::Trimmed { first, .. })) => Ok(LogEvent::Trimmed { first }),
            Err(e) => Err(e.into()),
        })
    }

    /// Publishes `source` as the application's state after applying every
    /// index `<= index` (streamed in chunks, any size). This node keeps the
    /// file; once this returns every node knows the snapshot (index, size,
    /// CRC-32C, holders) and the trim point may move up to it, never past.
    /// Give every replica's snapshot the same bytes for the same index and
    /// each one holds it.
    pub async fn publish_snapshot(
        &self,
        index: Index,
        source: impl tokio::io::AsyncRead + Unpin,
    ) -> Result<SnapshotMeta, LogError> {
        let holder = self.node.local_port().node_id();
        Ok(self.client.publish_snapshot(holder, index, source).await?.0)
    }

    /// Sets or renews retention hold `name` (a slow consumer, a backup): no
    /// trim passes `index` until it is released or goes `lease` without a
    /// renewal.
    pub async fn hold(&self, name: &str, index: Index, lease: Duration) -> Result<Index, LogError> {
        Ok(self.client.hold(name, index, lease).await?)
    }

    /// Releases retention hold `name`.
    pub async fn release(&self, name: &str) -> Result<Index, LogError> {
        Ok(self.client.release(name).await?)
    }

    /// The newest published snapshot, as the reachable nodes know it.
    pub async fn snapshot(&self) -> Result<Option<SnapshotMeta>, LogError> {
        Ok(self.client.newest_snapshot().await?)
    }

    /// Fetches the snapshot `meta` into `dest` from any node holding it, in
    /// checksummed chunks: resumed after a crash or a lost connection, and
    /// `dest` appears only whole and verified. Returns the bytes that were
    /// already there from an interrupted fetch.
    pub async fn fetch_snapshot(&self, meta: &SnapshotMeta, dest: &Path) -> Result<u64, LogError> {
        Ok(self.client.fetch_snapshot(meta, dest).await?)
    }

    /// The linearizable tail: a chosen index at or above every append
    /// acknowledged before this call, confirmed by the leader with one
    /// heartbeat round to a quorum; nothing is written.
    pub async fn tail(&self) -> Result<Index, LogError> {
        Ok(self.client.tail().await?.0)
    }

    /// The leader's ballot, for [`Log::append_if`].
    pub async fn ballot(&self) -> Result<Ballot, LogError> {
        Ok(self.client.tail().await?.1)
    }

    /// Trims the log up to and including `upto` (a replicated command;
    /// every node trims at exactly `upto`). A trim above the last chosen
    /// index is refused with `OpError::TrimAboveChosen` and trims nothing.
    pub async fn trim(&self, upto: Index) -> Result<Index, LogError> {
        Ok(self.client.trim(upto).await?)
    }

    /// The cluster's configuration: epoch, voters and learners with their
    /// incarnations (the newest any reachable node reports).
    pub async fn members(&self) -> Result<Membership, LogError> {
        Ok(self.client.members().await?.0)
    }

    /// One membership step (add a learner, promote, remove), returning the
    /// configuration once the step is chosen. A step already made is success;
    /// a refused one (`OpError::ChangeRefused`) changed nothing.
    pub async fn change_members(&self, change: Change) -> Result<Membership, LogError> {
        Ok(self.client.change_members(change).await?)
    }

    /// Replaces member `old` by node `new` at `addr` (the same id for a node
    /// whose data directory was wiped): add as learner, catch up, promote,
    /// remove — never two disjoint quorums on the way.
    pub async fn replace_member(
        &self,
        old: NodeId,
        new: NodeId,
        addr: String,
    ) -> Result<Membership, LogError> {
        let timeout = crate::client::CATCH_UP_TIMEOUT;
        Ok(self.client.replace(old, new, addr, timeout).await?)
    }

    /// Status of every member; unreachable ones are left out.
    pub async fn status(&self) -> Vec<NodeStatus> {
        self.client
            .status_all()
            .await
            .into_iter()
            .filter_map(|(_, _, r)| r.ok())
            .collect()
    }

    /// Stops the node and waits for it to flush.
    pub async fn close(self) -> Result<(), LogError> {
        Ok(self.node.shutdown().await?)
    }
}
