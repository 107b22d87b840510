//! Requests any node may answer: chosen entries (safe from any node; the
//! cached leader is asked first because it knows the most) and each node's
//! status.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use paxlog_storage::{Index, NodeId};

use super::retry::Backoff;
use super::{unexpected, Client, ClientError};
use crate::core::OpError;
use crate::proto::{Entry, NodeStatus, Request, Response};

const READ_CHUNK_ENTRIES: u32 = 1024;

impl Client {
    /// Chosen user entries with `from <= index <= to` (to = chosen index when
    /// `None`), from any node that answers.
    pub async fn read(&self, from: Index, to: Option<Index>) -> Result<Vec<Entry>, ClientError> {
        // Without an end, read up to the linearizable tail: everything
        // acknowledged before this call is included, from whichever node answers.
        let to = match to {
            Some(to) => to,
            None => self.tail().await?.0,
        };
        let mut out = Vec::new();
        let mut next = from.max(1);
        let deadline = Instant::now() + self.inner.timeout;
        let mut backoff = Backoff::new();
        while next <= to {
            let (entries, after, _chosen) = self.read_chunk(next, to).await?;
            out.extend(entries);
            if after > next {
                next = after;
            } else if Instant::now() < deadline {
                // The node answering has not learned `next` yet; it will.
                backoff.sleep().await;
            } else {
                return Err(ClientError::Timeout(self.inner.timeout));
            }
        }
        Ok(out)
    }

    async fn read_chunk(
        &self,
        from: Index,
        to: Index,
    ) -> Result<(Vec<Entry>, Index, Index), ClientError> {
        let deadline = Instant::now() + self.inner.timeout;
        let mut last = ClientError::Unreachable("no node answered".into());
        let mut backoff = Backoff::new();
        while Instant::now() < deadline {
            // The leader knows the most; any node is safe for chosen entries.
            let mut order: Vec<NodeId> = self.node_ids();
            if let Some(leader) = self.cached_leader() {
                order.retain(|id| *id != leader);
                order.insert(0, leader);
            }
            for id in order {
                let req = self.next_req();
                let request = Request::Read {
                    req,
                    from,
                    to,
                    entries_max: READ_CHUNK_ENTRIES,
                };
                let remaining = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(remaining, self.request(id, request)).await {
                    Ok(Ok(Response::Entries {
                        entries,
                        next,
                        chosen_index,
                        ..
                    })) => return Ok((entries, next, chosen_index)),
                    Ok(Ok(Response::Error {
                        error: OpError::Trimmed { index, first },
                        ..
                    })) => return Err(ClientError::Op(OpError::Trimmed { index, first })),
                    Ok(Ok(other)) => last = unexpected(&other),
                    Ok(Err(e)) => {
                        self.drop_session(id).await;
                        last = e;
                    }
                    Err(_) => last = ClientError::Timeout(self.inner.timeout),
                }
            }
            backoff.sleep().await;
        }
        Err(last)
    }

    /// Status of every node; unreachable ones carry their error.
    pub async fn status_all(&self) -> Vec<(NodeId, SocketAddr, Result<NodeStatus, ClientError>)> {
        let mut out = Vec::new();
        for id in self.node_ids() {
            let Some(addr) = self.node_addr(id) else {
                continue;
            };
            let req = self.next_req();
            let per_node = self.inner.timeout.min(Duration::from_secs(2));
            let result =
                match tokio::time::timeout(per_node, self.request(id, Request::Status { req }))
                    .await
                {
                    Ok(Ok(Response::Status { status, .. })) => Ok(status),
                    Ok(Ok(other)) => Err(unexpected(&other)),
                    Ok(Err(e)) => {
                        self.drop_session(id).await;
                        Err(e)
                    }
                    Err(_) => Err(ClientError::Timeout(per_node)),
                };
            if let Ok(status) = &result {
                self.learn_members(&status.membership);
            }
            out.push((id, addr, result));
        }
        out
    }
}
