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
//!   reports their tickets durable;
//! - a ticker drives `Replica::tick`.
//!
//! After every burst of inputs the driver drains the core's outputs in the
//! order its calling protocol asks for: writes, messages, chosen entries,
//! replies. `start.rs` opens the store and the endpoint and spawns all of it;
//! `config.rs` holds what it is given and what it checks first.

mod clients;
mod config;
mod driver;
mod handle;
mod read;
pub(crate) mod request;
mod start;
mod status;
mod subscribe;
pub mod writer;

pub use config::{NodeConfig, NodeError};
pub use driver::TICK_INTERVAL_MS;
pub use start::{start, NodeHandle, Stopper};
