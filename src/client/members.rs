//! Membership changes from a client: one conditional step at a time, each
//! checked against what the cluster reports, and `replace` as the sequence
//! of steps that never leaves two disjoint quorums (see `core::membership`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use paxlog_storage::{Index, NodeId};

use super::{Client, ClientError, Slot};
use crate::core::{Change, ChangeError, Membership, OpError, PROMOTE_LAG_ENTRIES_MAX};
use crate::proto::{NodeStatus, Request, Response};

/// Times a step refused for a stale epoch is tried again.
const STALE_RETRIES: u32 = 10;

/// How often a client that keeps missing the leader asks where members are.
const DISCOVER_INTERVAL: Duration = Duration::from_millis(500);

/// How often a wait re-reads the cluster's status.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// How long `replace` and `add` wait for a new node to be bound and caught up.
pub const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(120);

impl Client {
    /// Where node `id` listens, if this client knows.
    pub(super) fn node_addr(&self, id: NodeId) -> Option<SocketAddr> {
        let nodes = self.inner.nodes.read().unwrap_or_else(|p| p.into_inner());
        nodes.get(&id).copied()
    }

    /// Every node this client knows, in id order.
    pub fn node_ids(&self) -> Vec<NodeId> {
        let nodes = self.inner.nodes.read().unwrap_or_else(|p| p.into_inner());
        nodes.keys().copied().collect()
    }

    /// Learns where the members of `m` listen (a node added since this
    /// client was built): it can then follow a leader hint to them.
    pub(super) fn learn_members(&self, m: &crate::core::Membership) {
        let mut nodes = self.inner.nodes.write().unwrap_or_else(|p| p.into_inner());
        let mut sessions = self
            .inner
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for member in &m.members {
            let Ok(addr) = member.addr.parse::<SocketAddr>() else {
                continue;
            };
            if let std::collections::btree_map::Entry::Vacant(e) = nodes.entry(member.id) {
                tracing::debug!(node = member.id, %addr, "learned a member's address");
                e.insert(addr);
                sessions.entry(member.id).or_default();
            }
        }
    }

    pub(super) fn slot(&self, id: NodeId) -> Option<Arc<tokio::sync::Mutex<Slot>>> {
        let sessions = self
            .inner
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        sessions.get(&id).cloned()
    }

    /// [`Client::discover`] at most once per `DISCOVER_INTERVAL`.
    pub(super) async fn maybe_discover(&self, id: NodeId) {
        let due = {
            let mut last = self
                .inner
                .discovered
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let due = last.is_none_or(|t| t.elapsed() >= DISCOVER_INTERVAL);
            if due {
                *last = Some(Instant::now());
            }
            due
        };
        if due {
            self.discover(id).await;
        }
    }

    /// Asks node `id` for its configuration and learns where its members
    /// listen: a leader hint may name a node added after this client was
    /// built. Failing is fine; the caller retries as it would anyway.
    pub(super) async fn discover(&self, id: NodeId) {
        let req = self.next_req();
        let asked = tokio::time::timeout(
            POLL_INTERVAL * 10,
            self.request(id, Request::Status { req }),
        );
        if let Ok(Ok(Response::Status { status, .. })) = asked.await {
            self.learn_members(&status.membership);
        }
    }

    /// The newest configuration any reachable node reports, with that
    /// node's status (a leader's, when it leads).
    pub async fn members(&self) -> Result<(Membership, Vec<NodeStatus>), ClientError> {
        let mut statuses = Vec::new();
        let mut last = None;
        for (_, _, result) in self.status_all().await {
            match result {
                Ok(s) => statuses.push(s),
                Err(e) => last = Some(e),
            }
        }
        let newest = statuses
            .iter()
            .max_by_key(|s| (s.membership.epoch, s.role == crate::core::Role::Leader))
            .map(|s| s.membership.clone());
        match newest {
            Some(m) => Ok((m, statuses)),
            None => Err(last.unwrap_or_else(|| ClientError::Unreachable("no node listed".into()))),
        }
    }

    /// One step, if the configuration is still at `expect_epoch`: the index
    /// the step was chosen at, or why it was refused (nothing changed).
    pub async fn reconfigure(
        &self,
        expect_epoch: u64,
        change: Change,
    ) -> Result<Index, ClientError> {
        let make = |req| Request::Reconfigure {
            req,
            expect_epoch,
            change: change.clone(),
        };
        self.to_leader_index(make).await
    }

    /// One step against the configuration now. Idempotent: a step already
    /// made (by an earlier attempt whose answer was lost, say) is success.
    /// A step raced by another change (the leader binding a node it just
    /// heard, another operator) is tried again on the new configuration, at
    /// most `STALE_RETRIES` times.
    pub async fn change_members(&self, change: Change) -> Result<Membership, ClientError> {
        let mut tries = 0;
        loop {
            let (m, _) = self.members().await?;
            if made(&m, &change) {
                return Ok(m);
            }
            let result = self.reconfigure(m.epoch, change.clone()).await;
            let (after, _) = self.members().await?;
            match result {
                Ok(_) => return Ok(after),
                Err(_) if made(&after, &change) => return Ok(after),
                Err(ClientError::Op(OpError::ChangeRefused(ChangeError::Stale { .. })))
                    if tries < STALE_RETRIES =>
                {
                    tries += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits until node `id` is a bound member whose chosen index is within
    /// `PROMOTE_LAG_ENTRIES_MAX` of the leader's (it has caught up).
    pub async fn wait_caught_up(&self, id: NodeId, timeout: Duration) -> Result<(), ClientError> {
        let deadline = Instant::now() + timeout;
        loop {
            let (m, statuses) = self.members().await?;
            let bound = m.member(id).is_some_and(|m| m.incarnation != 0);
            let lag = statuses
                .iter()
                .filter(|s| s.role == crate::core::Role::Leader)
                .flat_map(|s| s.peers.iter())
                .find(|p| p.id == id)
                .and_then(|p| p.chosen_lag_entries);
            if bound && lag.is_some_and(|l| l <= PROMOTE_LAG_ENTRIES_MAX) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ClientError::Op(OpError::BadRequest(format!(
                    "node {id} is not caught up after {timeout:?} (bound: {bound}, lag: {lag:?}); \
                     is it running and reachable from the leader?"
                ))));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Replaces member `old` by a node `new` listening at `addr`: a new
    /// node is added as a learner, caught up, promoted, then `old` is
    /// removed; the same id (a wiped directory) is removed first, since a
    /// configuration holds one incarnation per id (then the cluster runs
    /// one voter short until the new incarnation is promoted).
    pub async fn replace(
        &self,
        old: NodeId,
        new: NodeId,
        addr: String,
        timeout: Duration,
    ) -> Result<Membership, ClientError> {
        let (m, _) = self.members().await?;
        let was_voter = m.is_voter(old);
        if old == new {
            self.change_members(Change::Remove { id: old }).await?;
        }
        self.change_members(Change::AddLearner { id: new, addr })
            .await?;
        if was_voter || old != new {
            self.wait_caught_up(new, timeout).await?;
            self.change_members(Change::Promote { id: new }).await?;
        }
        if old != new {
            self.change_members(Change::Remove { id: old }).await?;
        }
        Ok(self.members().await?.0)
    }
}

/// Whether `m` already shows `change` made.
fn made(m: &Membership, change: &Change) -> bool {
    match change {
        Change::AddLearner { id, .. } => m.is_member(*id),
        Change::Promote { id } => m.is_voter(*id),
        Change::Remove { id } => !m.is_member(*id),
        Change::Bind { id, incarnation } => {
            m.member(*id).is_some_and(|x| x.incarnation == *incarnation)
        }
    }
}
