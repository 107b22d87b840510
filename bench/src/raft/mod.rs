//! openraft 0.9 as a benchmarked system: three `paxlog-bench raft-node`
//! processes on loopback, a RocksDB log store that fsyncs (group commit)
//! before openraft hears an append is durable, openraft's RPCs over the same
//! QUIC transport as paxlog (paxlog-net, mutual TLS), and clients that
//! append to the leader over QUIC streams.
//!
//! Files: `types` (openraft type config), `batcher` (client payloads
//! batched into log entries), `store` (log store), `sm` (state
//! machine), `wire` (messages), `network` (RPCs over peer links), `server`
//! (a node's serving loops), `config` (openraft settings), `node` (the node
//! process), `cluster` (start, `Cluster`, `Appender`).

mod batcher;
mod cluster;
mod config;
mod network;
mod node;
mod server;
mod sm;
mod store;
mod types;
mod wire;

#[cfg(test)]
mod tests;

pub use cluster::start;
pub use node::{node_main, NodeArgs};
