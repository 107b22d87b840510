//! The floor: the least any replicated log must do, so every result can be
//! read against the hardware. Three processes of this binary (`floor-node`),
//! std threads and blocking I/O only, no consensus: node 1 leads for good,
//! batches what arrived, fdatasyncs it while sending it to two followers
//! that do the same, and replies once a majority (itself + one) has it.

mod follower;
mod leader;
mod pending;
mod wire;

use std::fs::{File, OpenOptions};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;

use crate::procs::{not_yet, Procs};
use crate::system::{free_addrs, Appender, BoxFuture, Cluster, StartCtx};
use pending::BatchLimits;

const LEADER_ID: u64 = 1;
const NODES: u64 = 3;
/// Three processes that bind at once need no election; this bounds a stuck start.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const READY_RETRY: Duration = Duration::from_millis(20);
/// Enough for 256 clients × 4 KiB in one batch.
const BATCH_BYTES_MAX: usize = 4 << 20;
const BATCH_COUNT_MAX: usize = 1024;

/// Flags of the hidden `floor-node` subcommand: one node of the floor.
#[derive(Debug, clap::Args)]
pub struct NodeArgs {
    /// 1 is the leader; 2 and 3 are followers.
    #[arg(long)]
    pub id: u64,
    /// Leader: where clients connect. Follower: where the leader connects.
    #[arg(long)]
    pub listen: SocketAddr,
    /// Leader only: the two followers' `--listen` addresses.
    #[arg(long, value_delimiter = ',')]
    pub followers: Vec<SocketAddr>,
    /// The log file, created if missing and appended to.
    #[arg(long)]
    pub log: PathBuf,
    /// Larger client frames close their connection.
    #[arg(long, default_value_t = 1 << 20)]
    pub payload_bytes_max: usize,
    /// Most requests in one replicated batch.
    #[arg(long, default_value_t = BATCH_COUNT_MAX)]
    pub batch_count_max: usize,
    /// Most payload bytes in one replicated batch; at least `--payload-bytes-max`.
    #[arg(long, default_value_t = BATCH_BYTES_MAX)]
    pub batch_bytes_max: usize,
    /// Leader only: client connections served at once.
    #[arg(long, default_value_t = 8192)]
    pub connections_max: usize,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("--id {0}: expected 1 (the leader), 2 or 3")]
    BadId(u64),
    #[error("the leader needs exactly 2 --followers, got {0}")]
    FollowerCount(usize),
    #[error("--followers is for the leader (--id 1) only")]
    FollowersOnFollower,
    #[error("--batch-count-max and --connections-max must be at least 1")]
    ZeroBound,
    #[error("--batch-bytes-max {batch} is below --payload-bytes-max {payload}")]
    BatchBelowPayload { batch: usize, payload: usize },
    #[error("a batch of {0} bytes would not fit a u32 frame length")]
    BatchTooLarge(usize),
}

impl NodeArgs {
    fn limits(&self) -> BatchLimits {
        BatchLimits {
            count_max: self.batch_count_max,
            bytes_max: self.batch_bytes_max,
        }
    }

    fn batch_body_bytes_max(&self) -> usize {
        wire::batch_body_bytes_max(self.batch_count_max, self.batch_bytes_max)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=NODES).contains(&self.id) {
            return Err(ConfigError::BadId(self.id));
        }
        if self.id == LEADER_ID && self.followers.len() != 2 {
            return Err(ConfigError::FollowerCount(self.followers.len()));
        }
        if self.id != LEADER_ID && !self.followers.is_empty() {
            return Err(ConfigError::FollowersOnFollower);
        }
        if self.batch_count_max == 0 || self.connections_max == 0 {
            return Err(ConfigError::ZeroBound);
        }
        if self.batch_bytes_max < self.payload_bytes_max {
            return Err(ConfigError::BatchBelowPayload {
                batch: self.batch_bytes_max,
                payload: self.payload_bytes_max,
            });
        }
        let body = self
            .batch_count_max
            .checked_mul(wire::LEN_BYTES)
            .and_then(|n| n.checked_add(self.batch_bytes_max))
            .and_then(|n| n.checked_add(wire::BATCH_HEADER_BYTES))
            .unwrap_or(usize::MAX);
        if u32::try_from(body).is_err() {
            return Err(ConfigError::BatchTooLarge(body));
        }
        Ok(())
    }
}

/// Runs one floor node until the process is killed.
pub fn node_main(args: NodeArgs) -> anyhow::Result<()> {
    args.validate()?;
    let log = open_log(&args.log)?;
    if args.id == LEADER_ID {
        leader::run(leader::LeaderConfig {
            listen: args.listen,
            followers: args.followers.clone(),
            log,
            payload_bytes_max: args.payload_bytes_max,
            batch: args.limits(),
            connections_max: args.connections_max,
        })
    } else {
        follower::run(follower::FollowerConfig {
            listen: args.listen,
            log,
            batch_body_bytes_max: args.batch_body_bytes_max(),
        })
    }
}

/// Opens the log for appending; a new file's directory entry is synced once
/// so fdatasync alone makes later appends durable.
fn open_log(path: &Path) -> anyhow::Result<File> {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("open {}", path.display()))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("sync directory {}", dir.display()))?;
    Ok(log)
}

#[derive(Debug)]
struct FloorCluster {
    procs: Procs,
    leader: SocketAddr,
    payload_bytes_max: usize,
}

pub async fn start(ctx: &StartCtx) -> anyhow::Result<Box<dyn Cluster>> {
    let addrs = free_addrs(NODES as usize)?;
    let (leader, followers) = (addrs[0], &addrs[1..]);
    let batch_bytes_max = BATCH_BYTES_MAX.max(ctx.payload_bytes_max);
    let mut procs = Procs::default();
    // Followers first: the leader connects to them as it starts.
    for (i, &listen) in addrs.iter().enumerate().rev() {
        let id = i as u64 + 1;
        let mut cmd = Command::new(&ctx.self_exe);
        cmd.arg("floor-node")
            .arg("--id")
            .arg(id.to_string())
            .arg("--listen")
            .arg(listen.to_string())
            .arg("--log")
            .arg(ctx.dir.join(format!("node-{id}.wal")))
            .arg("--payload-bytes-max")
            .arg(ctx.payload_bytes_max.to_string())
            .arg("--batch-bytes-max")
            .arg(batch_bytes_max.to_string());
        if id == LEADER_ID {
            let list: Vec<String> = followers.iter().map(ToString::to_string).collect();
            cmd.arg("--followers").arg(list.join(","));
        }
        procs.spawn(cmd, &ctx.dir.join(format!("node-{id}.log")))?;
    }
    let payload_bytes_max = ctx.payload_bytes_max;
    procs
        .wait_ready("the floor", READY_TIMEOUT, READY_RETRY, || async move {
            match FloorAppender::connect(leader, payload_bytes_max).await {
                Ok(mut probe) => probe.append(b"ready").await.map(Some),
                Err(e) => not_yet("the floor", Err(e)),
            }
        })
        .await?;
    let cluster = FloorCluster {
        procs,
        leader,
        payload_bytes_max,
    };
    Ok(Box::new(cluster))
}

impl FloorAppender {
    async fn connect(leader: SocketAddr, payload_bytes_max: usize) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(leader)
            .await
            .with_context(|| format!("connect to the floor leader at {leader}"))?;
        stream.set_nodelay(true)?;
        Ok(FloorAppender {
            stream,
            frame: Vec::new(),
            last_index: 0,
            payload_bytes_max: payload_bytes_max.min(FRAME_PAYLOAD_BYTES_MAX),
        })
    }
}

impl Cluster for FloorCluster {
    fn pids(&self) -> Vec<u32> {
        self.procs.pids()
    }

    fn connect(&self, _client: usize) -> BoxFuture<'_, anyhow::Result<Box<dyn Appender>>> {
        Box::pin(async move {
            let appender: Box<dyn Appender> =
                Box::new(FloorAppender::connect(self.leader, self.payload_bytes_max).await?);
            Ok(appender)
        })
    }

    fn stop(self: Box<Self>) -> BoxFuture<'static, anyhow::Result<()>> {
        Box::pin(self.procs.stop())
    }
}

#[derive(Debug, thiserror::Error)]
enum AppendError {
    #[error("payload of {len} bytes exceeds the floor's limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("the floor leader acknowledged index {got} after {last}: indices must grow")]
    IndexNotIncreasing { got: u64, last: u64 },
}

/// Payloads the floor's frames can carry at all (a u32 length).
const FRAME_PAYLOAD_BYTES_MAX: usize = u32::MAX as usize;

struct FloorAppender {
    stream: TcpStream,
    /// Reused so one append is one write without an allocation.
    frame: Vec<u8>,
    /// Invariant: the index of this client's last acknowledged append (0: none yet).
    last_index: u64,
    payload_bytes_max: usize,
}

impl FloorAppender {
    async fn append(&mut self, payload: &[u8]) -> anyhow::Result<()> {
        if payload.len() > self.payload_bytes_max {
            return Err(AppendError::TooLarge {
                len: payload.len(),
                max: self.payload_bytes_max,
            }
            .into());
        }
        wire::encode_frame_into(&mut self.frame, payload);
        self.stream
            .write_all(&self.frame)
            .await
            .context("send to the floor leader")?;
        let mut index = [0u8; 8];
        self.stream
            .read_exact(&mut index)
            .await
            .context("the floor leader closed the connection before acknowledging")?;
        let index = u64::from_be_bytes(index);
        if index <= self.last_index {
            return Err(AppendError::IndexNotIncreasing {
                got: index,
                last: self.last_index,
            }
            .into());
        }
        self.last_index = index;
        Ok(())
    }
}

impl Appender for FloorAppender {
    fn append<'a>(&'a mut self, payload: &'a [u8]) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(FloorAppender::append(self, payload))
    }

    fn tail(&mut self) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async { anyhow::bail!("the floor has no reads: it is a write floor") })
    }
}

#[cfg(test)]
mod tests;
