//! What the endpoint and the peer links both need: the QUIC close codes, the
//! dialer of peer connections and the list of background tasks. A leaf, so
//! neither of them depends on the other.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::task::JoinHandle;

use crate::identity::node_dns_name;
use crate::{NetError, NodeId};

/// QUIC application close codes used by paxlog.
pub mod close_code {
    use quinn::VarInt;
    /// Orderly shutdown or link restart.
    pub const SHUTDOWN: VarInt = VarInt::from_u32(0);
    /// The certificate may not be used this way (wrong ALPN, unknown peer).
    pub const REFUSED: VarInt = VarInt::from_u32(1);
    /// Too many pending connections.
    pub const BUSY: VarInt = VarInt::from_u32(2);
    /// A malformed or oversized frame.
    pub const PROTOCOL: VarInt = VarInt::from_u32(3);
}

/// Dials peers from the node's endpoint with its node certificate.
#[derive(Debug, Clone)]
pub(crate) struct Dialer {
    pub(crate) endpoint: quinn::Endpoint,
    pub(crate) config: quinn::ClientConfig,
}

impl Dialer {
    /// Connects to `addr` and requires its certificate to be node `id`'s.
    pub(crate) async fn connect_peer(
        &self,
        addr: SocketAddr,
        id: NodeId,
    ) -> Result<quinn::Connection, NetError> {
        connect(
            &self.endpoint,
            self.config.clone(),
            addr,
            &node_dns_name(id),
        )
        .await
    }
}

pub(crate) async fn connect(
    endpoint: &quinn::Endpoint,
    config: quinn::ClientConfig,
    addr: SocketAddr,
    server_name: &str,
) -> Result<quinn::Connection, NetError> {
    endpoint
        .connect_with(config, addr, server_name)
        .map_err(|source| NetError::Connect { addr, source })?
        .await
        .map_err(|source| NetError::Connection { addr, source })
}

/// The endpoint's background tasks. Shared with the peer links, because
/// `set_peers` starts link tasks long after `peers()`, and shutdown must stop
/// those too.
#[derive(Debug)]
pub(crate) struct Tasks {
    handles: Vec<JoinHandle<()>>,
    /// What link tasks started later dial with. `None` once the endpoint
    /// stopped: a `PeerSender` outliving the endpoint (the node runtime
    /// holds one through shutdown) must not keep its socket bound.
    dialer: Option<Dialer>,
}

pub(crate) type SharedTasks = Arc<Mutex<Tasks>>;

impl Tasks {
    pub(crate) fn new(dialer: Dialer) -> Self {
        Self {
            handles: Vec::new(),
            dialer: Some(dialer),
        }
    }

    /// Locks `tasks`. Every critical section is a push, an abort or a take,
    /// which a panic cannot leave half done, so a poisoned lock is still sound.
    pub(crate) fn lock(tasks: &SharedTasks) -> std::sync::MutexGuard<'_, Tasks> {
        tasks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The dialer for a new link task; `None` once the endpoint stopped.
    pub(crate) fn dialer(&self) -> Option<Dialer> {
        self.dialer.clone()
    }

    /// Keeps `task` for `stop`; aborts it if the endpoint stopped already.
    pub(crate) fn push(&mut self, task: JoinHandle<()>) {
        if self.dialer.is_none() {
            task.abort();
            return;
        }
        // Links of removed peers end on their own: reap them so that the list
        // stays as long as the live task set, however often peers change.
        self.handles.retain(|t| !t.is_finished());
        self.handles.push(task);
    }

    /// Aborts every task, and every task pushed later.
    pub(crate) fn stop(&mut self) {
        self.dialer = None;
        for task in &self.handles {
            task.abort();
        }
    }

    pub(crate) fn take(&mut self) -> Vec<JoinHandle<()>> {
        std::mem::take(&mut self.handles)
    }
}
