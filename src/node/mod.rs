//! The node runtime: the thin I/O shell that drives the sans-IO core.
//!
//! One task, the driver (`driver.rs`), owns the [`Replica`](crate::core::Replica)
//! and is the only place that touches it. Every other part talks to it over
//! channels:
//! - peer messages arrive from `paxlog-net`'s `PeerReceiver` and leave
//!   through its `PeerSender`;
//! - client streams (`clients.rs`, `handle.rs`, `subscribe.rs`) and the admin
//!   port ([`crate::admin`]) send `request::Command`s, each with a oneshot
//!   for the answer;
//! - the writer thread (`writer.rs`) group-commits `Persist` batches and
//!   reports their tickets durable; a follower under `FollowerSync::Loop`
//!   syncs in the driver instead whenever the writer has nothing in flight
//!   (`writer::LoopWriter`);
//! - a ticker drives `Replica::tick`.
//!
//! After every burst of inputs the driver drains the core's outputs in the
//! order its calling protocol asks for: writes, messages, chosen entries,
//! replies. `start.rs` opens the store and the endpoint and spawns all of it;
//! `config.rs` holds what it is given and what it checks first.
//!
//! # An append's path on the leader
//!
//! The tasks a client `Append` crosses, the queues between them, and the
//! conversions on the way:
//!
//! 1. **stream task** (`clients.rs`) reads a frame: a proto `Request::Append`,
//!    which `handle.rs` turns into a node `Command::Propose` (the payload in a
//!    `ProposalCommand::Append`, plus a reply oneshot) and sends before the
//!    next frame is read, so one stream's proposals reach the driver in
//!    submission order.
//!    - queue 1, the **client channel**: `mpsc`, 4096, shared by every
//!      stream and the admin port.
//! 2. **driver** (`driver.rs`) assigns the request id, keeps the oneshot in its
//!    reply table and hands the core a `core::Proposal`. Inside that call the
//!    **core** encodes a core `Command::Append { client_id, seq, payload }`
//!    as the index's value and stages its accept.
//!    - queue 2, the core's **staged write**: cut into a ticketed `Persist`
//!      at 256 entries / 1 MiB or when the driver polls after the burst.
//!    - queue 3, the **write channel**: `mpsc`, 1024 `Persist` batches, each
//!      stamped when staged (`writer::Staged`).
//! 3. **writer thread** (`writer.rs`) merges what queued up into one synced
//!    RocksDB write (group commit).
//!    - queue 4, the **done channel**: unbounded `mpsc` of `WriteDone`.
//! 4. **driver**: `Replica::on_persisted` counts the leader's own accept.
//!    Meanwhile the Accepts went to the peers (core outbound queue →
//!    `PeerSender` → each peer's own steps 2–4 → `PeerReceiver`); with a
//!    majority the index is chosen and the core queues the `Reply`.
//!    - queue 5, the core's **reply queue**, drained after the burst.
//!    - queue 6, the **reply oneshot**.
//! 5. **stream task**: the `Result<Index, OpError>` becomes a proto
//!    `Response::Appended` (or `Response::Error`).
//!    - queue 7, the stream's **in-flight set** (`FuturesUnordered`, at most
//!      1024), answers in completion order; then the response is written as
//!      a frame.
//!
//! Seven queues on the leader's own path (four of them channels between
//! tasks: client, write, done, reply), plus the peer round trip.
//! Conversions: proto `Request` → node `Command::Propose` → `core::Proposal`
//! → core `Command` (encoded); back: core `Reply` → oneshot result → proto
//! `Response`. None is redundant: the request id that makes a node command a
//! `core::Proposal` keys the driver's reply table, so only the driver can
//! assign it; the payload `Bytes` is moved, not copied, until the core
//! encodes it.
//!
//! Each stage is timed where it ends, so `/metrics` splits a commit:
//! `paxlog_client_request_seconds` (1 to 5), `paxlog_commit_latency_seconds`
//! (2 to 4, on the leader), `paxlog_write_wait_seconds` (queue 3),
//! `paxlog_fsync_duration_seconds` (the sync), `paxlog_write_notice_seconds`
//! (queue 4) and `paxlog_loop_burst_seconds` (one turn of the driver), on
//! every node; the peer round trip is `paxlog_peer_round_trip_time_seconds`.

mod clients;
mod config;
mod driver;
mod dropped;
mod handle;
mod latency;
mod local;
mod read;
pub(crate) mod request;
mod snapshots;
mod start;
mod status;
mod subscribe;
mod telemetry;
pub mod writer;

pub use config::{FollowerSync, NodeConfig, NodeError, DEFAULT_ADMIN};
pub use driver::TICK_INTERVAL_MS;
pub use latency::{nearest_rank, LATENCY_WINDOW};
pub use local::LocalPort;
pub use snapshots::{checksum, HeldSnapshot, SNAPSHOT_CHUNK_BYTES};
pub use start::{start, NodeHandle, Stopper, UNSYNCED_STORE_ENV};
