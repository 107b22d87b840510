//! paxlog: a Multi-Paxos replicated log.
//!
//! - [`core`]: the sans-IO Multi-Paxos replica (no I/O, no clock).
//! - [`node`]: the runtime that drives the core with tokio, QUIC and RocksDB.
//! - [`client`]: the network client; [`proto`] is its wire protocol.
//! - [`launch`]: a local cluster of `paxlog serve` processes (dev, tests, bench).
//! - [`log`]: the embedded log ([`log::Log`]) for databases.
pub mod admin;
pub mod client;
pub mod cluster;
pub use paxlog_core as core;
pub mod launch;
pub mod log;
pub mod node;
pub mod proto;
