//! What the endpoint and the peer links both need: the QUIC close codes and
//! the dialer of peer connections. A leaf, so neither of them depends on the other.

use std::net::SocketAddr;

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
    pub(crate) node_id: NodeId,
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
