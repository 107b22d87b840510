//! etcd through its native gRPC API with the `etcd-client` crate, as its
//! users' applications talk to it: one client (one HTTP/2 connection to the
//! leader, as etcd's own `benchmark` tool defaults to) shared by every
//! caller, each caller with its own key and at most one request outstanding.

use etcd_client::{Client, ConnectOptions, KvClient};

use super::REQUEST_TIMEOUT;
use crate::system::{Appender, BoxFuture};

/// Connects to `leader_url` only, so no put is forwarded by a follower
/// (paxlog's and openraft's clients send to their leader too).
pub async fn connect(leader_url: &str) -> anyhow::Result<Client> {
    let options = ConnectOptions::new()
        .with_timeout(REQUEST_TIMEOUT)
        .with_connect_timeout(REQUEST_TIMEOUT);
    Ok(Client::connect([leader_url], Some(options)).await?)
}

/// One caller: its own key, overwritten by every put (each put is a new
/// revision, a new Raft entry).
pub struct GrpcAppender {
    kv: KvClient,
    key: Vec<u8>,
    /// Invariant: the revision of this caller's last acknowledged put (0: none yet).
    last_revision: u64,
}

impl GrpcAppender {
    pub fn new(client: &Client, key: &str) -> Self {
        Self {
            kv: client.kv_client(),
            key: key.as_bytes().to_vec(),
            last_revision: 0,
        }
    }

    async fn put(&mut self, value: &[u8]) -> anyhow::Result<()> {
        let reply = self.kv.put(self.key.clone(), value.to_vec(), None).await?;
        let revision = reply
            .header()
            .map(|h| h.revision())
            .ok_or_else(|| anyhow::anyhow!("etcd answered a put without a header"))?;
        let revision = u64::try_from(revision)
            .map_err(|_| anyhow::anyhow!("etcd answered a negative revision {revision}"))?;
        anyhow::ensure!(
            revision > self.last_revision,
            "etcd acknowledged revision {revision} after {}: revisions must grow",
            self.last_revision
        );
        self.last_revision = revision;
        Ok(())
    }

    /// A range read of this caller's key: linearizable (etcd's default), so
    /// it goes through etcd's ReadIndex.
    async fn range(&mut self) -> anyhow::Result<()> {
        let reply = self.kv.get(self.key.clone(), None).await?;
        anyhow::ensure!(
            reply.header().is_some(),
            "etcd answered a range read without a header"
        );
        Ok(())
    }
}

impl Appender for GrpcAppender {
    fn append<'a>(&'a mut self, payload: &'a [u8]) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(self.put(payload))
    }

    fn tail(&mut self) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(self.range())
    }
}
