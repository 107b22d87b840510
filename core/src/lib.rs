//! The sans-IO Multi-Paxos replica.
//!
//! [`Replica`] is a plain state machine, like quinn-proto's `Connection`:
//! no clock, no threads, no I/O. The driver owns the clock, the network and
//! the store, feeds inputs in and polls outputs out.
//!
//! # Calling protocol
//!
//! Inputs (each takes the driver's monotonic `now_ms`):
//! - [`Replica::on_message`]: a message from an authenticated peer.
//! - [`Replica::tick`]: call about every 10 ms.
//! - [`Replica::propose`]: a client append or trim.
//! - [`Replica::read_index`]: a linearizable tail; no log write (`read_index`).
//! - [`Replica::on_persisted`]: the write with this ticket is done (synced
//!   if it asked to be).
//! - [`Replica::set_applied`]: the application has applied through an index
//!   (after a restart: what it had applied; below the trim point, it must
//!   install a snapshot first).
//! - [`Replica::on_snapshot_installed`]: the application loaded the snapshot
//!   [`Replica::poll_snapshot`] offered.
//! - [`Replica::on_storage_failed`]: a write failed; the replica fail-stops.
//!
//! After any input, poll every output until it returns `None`, in this order:
//! 1. [`Replica::poll_write`]: execute each [`Persist`] with `Store::write`
//!    (or `Store::write_unsynced` when not `sync`), **in ticket order**, and
//!    call `on_persisted(ticket)` only after it returned `Ok`. On `Err` call
//!    `on_storage_failed` and stop.
//! 2. [`Replica::poll_message`]: send to `Outbound::to` (losing some is fine).
//! 3. [`Replica::poll_chosen`]: every chosen index, in order, no gaps,
//!    including `Noop`, `Register` and `Trim` (an append that is not
//!    effective, see `sessions`, is emitted with `hidden = Some(..)`: apply it
//!    as a no-op).
//! 4. [`Replica::poll_reply`]: answers to proposals and tails.
//! 5. [`Replica::poll_snapshot`]: the application is behind the trim point
//!    (this node caught up past a prefix it never applied): load this
//!    snapshot and call `on_snapshot_installed`; `poll_chosen` emits nothing
//!    until then, and then goes on from the snapshot's index + 1.
//!
//! Persistence before reply is enforced by data, not by this comment: a
//! Promise or Accepted message is queued behind the ticket of the write that
//! made it true, and `poll_message` releases it only after `on_persisted` of
//! that ticket, synced. A client reply is produced only once its index is
//! chosen (a quorum of durable accepts). Under `Config::thrifty` a leader
//! asks only a quorum to sync: the other acceptors write their accepts
//! unsynced and answer `Accepted { synced: false }`, which no quorum counts. The leader sends its Accepts to peers while
//! its own write is in flight, and counts its own accept only once persisted.
//!
//! After a crash, build a new replica with [`Replica::new`] over the store;
//! writes that were not persisted are simply lost, which the protocol allows.

mod acceptor;
mod acceptor_state;
mod api;
mod candidate;
mod command;
mod config;
mod debug_checks;
mod fold;
mod follower_read;
mod hold_expiry;
mod holds;
mod invariants;
mod io;
mod leader;
mod leader_acks;
mod leader_state;
mod learner;
mod learner_state;
mod limits;
mod membership;
mod message;
mod peer_input;
mod prevote;
pub mod quorum;
mod read;
mod read_index;
mod read_state;
mod reconfig;
mod recover;
mod replica;
mod sessions;
mod snapshot;
mod snapshot_meta;
mod status;
mod thrifty;

pub use api::{
    Chosen, CoreError, OpError, Outbound, PeerStatus, Persist, Proposal, ProposalCommand, Reply,
    RequestId, Role, Status, Ticket,
};
pub use command::Command;
pub use config::{Config, Mutation};
pub use holds::{
    Hold, Holds, HOLDS_MAX, HOLD_LEASE_MS_MAX, HOLD_LEASE_MS_MIN, HOLD_NAME_BYTES_MAX,
};
pub use limits::{Limits, FRAME_OVERHEAD_BYTES, MESSAGE_OVERHEAD_BYTES};
pub use membership::{Change, ChangeError, Member, Membership, MEMBERS_MAX, VOTERS_MAX};
pub use message::{Envelope, Message};
pub use paxlog_storage::{Ballot, Index, NodeId};
pub use read::UserEntries;
pub use reconfig::PROMOTE_LAG_ENTRIES_MAX;
pub use replica::Replica;
pub use sessions::{Fold, Hidden, Lookup, Refusal, SessionTable, TrimState};
pub use snapshot_meta::{SnapshotMeta, SNAPSHOT_HOLDERS_MAX};

#[cfg(test)]
mod tests;
