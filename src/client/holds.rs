//! Retention holds through the client: set, renew and release (see
//! `core::holds`). Each is a replicated command proposed at the leader.

use std::time::Duration;

use paxlog_storage::Index;

use super::{Client, ClientError};
use crate::proto::Request;

impl Client {
    /// Sets or renews retention hold `name`: no trim passes `index` until it
    /// is released, or goes `lease` without a renewal (renew well within
    /// it). Returns the index it was chosen at. Admin only.
    pub async fn hold(
        &self,
        name: &str,
        index: Index,
        lease: Duration,
    ) -> Result<Index, ClientError> {
        let lease_ms = lease.as_millis().min(u128::from(u64::MAX)) as u64;
        let make = |req| Request::Hold {
            req,
            name: name.to_string(),
            index,
            lease_ms,
        };
        self.to_leader_index(make).await
    }

    /// Releases retention hold `name` (a no-op if there is none). Admin only.
    pub async fn release(&self, name: &str) -> Result<Index, ClientError> {
        let make = |req| Request::Release {
            req,
            name: name.to_string(),
        };
        self.to_leader_index(make).await
    }
}
