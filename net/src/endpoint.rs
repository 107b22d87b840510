//! The node's single QUIC endpoint (peers and clients, told apart by ALPN)
//! and the client-side endpoint.
//!
//! Admission, after the TLS handshake verified the certificate chain:
//! ALPN peer needs a node certificate (not our own id) of a current peer (the
//! peer links check that, see [`PeerSender::set_peers`]); ALPN client needs a
//! client certificate. Anything else is closed with [`close_code::REFUSED`]
//! and a logged reason. A node certificate on ALPN client is refused too: a
//! node talks to another node only over its peer link.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use quinn::crypto::rustls::{HandshakeData, QuicClientConfig, QuicServerConfig};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::{mpsc, Semaphore};
use tracing::{info, warn, Instrument};

pub use crate::dial::close_code;
use crate::dial::{connect, Dialer, SharedTasks, Tasks};
use crate::identity::{node_dns_name, remote_of};
use crate::peer::{peer_set, run_inbound, start_links};
use crate::{
    ClientTls, NetConfig, NetError, NodeId, NodeTls, PeerReceiver, PeerSender, Remote, ALPN_CLIENT,
    ALPN_PEER,
};

/// Handshakes in progress at once; further attempts are refused.
const HANDSHAKES_MAX: usize = 64;
/// Peer connections accepted before `peers()` was called.
const PENDING_PEER_CONNS_MAX: usize = 16;
/// Uni streams a peer may have open at once (it uses one).
const PEER_UNI_STREAMS_MAX: u32 = 4;

/// An authenticated client connection; the node runtime serves its streams.
#[derive(Debug)]
pub struct ClientConn {
    /// The name from the client's verified certificate.
    pub name: String,
    pub conn: quinn::Connection,
}

fn transport(
    cfg: &NetConfig,
    bidi_streams: u32,
    uni_streams: u32,
) -> Result<Arc<quinn::TransportConfig>, NetError> {
    let idle = quinn::IdleTimeout::try_from(Duration::from_millis(cfg.idle_timeout_ms))
        .map_err(|_| NetError::Config("idle_timeout_ms too large".into()))?;
    let mut t = quinn::TransportConfig::default();
    t.max_idle_timeout(Some(idle))
        .keep_alive_interval(Some(Duration::from_millis(cfg.keep_alive_ms)))
        .initial_rtt(Duration::from_millis(cfg.initial_rtt_ms))
        .max_concurrent_bidi_streams(bidi_streams.into())
        .max_concurrent_uni_streams(uni_streams.into());
    Ok(Arc::new(t))
}

/// One node's endpoint: serves peers and clients, dials peers.
#[derive(Debug)]
pub struct NodeEndpoint {
    node_id: NodeId,
    endpoint: quinn::Endpoint,
    cfg: NetConfig,
    dialer: Dialer,
    clients: tokio::sync::Mutex<mpsc::Receiver<ClientConn>>,
    /// Taken by the first `peers()` call.
    peer_conns: Mutex<Option<mpsc::Receiver<(NodeId, quinn::Connection)>>>,
    /// Shared with the peer links, which add link tasks on `set_peers`.
    tasks: SharedTasks,
}

impl NodeEndpoint {
    /// Binds `listen` and starts accepting. Must run inside a tokio runtime.
    pub fn bind(listen: SocketAddr, tls: NodeTls, cfg: NetConfig) -> Result<Self, NetError> {
        cfg.validate()?;
        let crypto = QuicServerConfig::try_from(tls.server.clone())
            .map_err(|_| NetError::NoInitialCipherSuite)?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        server.transport_config(transport(
            &cfg,
            cfg.client_streams_max,
            PEER_UNI_STREAMS_MAX,
        )?);
        let socket = udp_socket(listen).map_err(|source| NetError::Bind {
            addr: listen,
            source,
        })?;
        let mut endpoint_config = quinn::EndpointConfig::new(tls.reset_key.clone());
        let cid_key = tls.cid_key;
        endpoint_config.cid_generator(move || {
            Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
        });
        let endpoint = quinn::Endpoint::new(
            endpoint_config,
            Some(server),
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(|source| NetError::Bind {
            addr: listen,
            source,
        })?;

        let dial_crypto = QuicClientConfig::try_from(tls.dial.clone())
            .map_err(|_| NetError::NoInitialCipherSuite)?;
        let mut dial = quinn::ClientConfig::new(Arc::new(dial_crypto));
        // Our dialed connections only send; the peer opens nothing on them.
        dial.transport_config(transport(&cfg, 0, 0)?);
        let dialer = Dialer {
            endpoint: endpoint.clone(),
            config: dial,
        };

        let (client_tx, client_rx) = mpsc::channel(cfg.client_accept_capacity);
        let (peer_tx, peer_rx) = mpsc::channel(PENDING_PEER_CONNS_MAX);
        let span = tracing::info_span!("endpoint", node = tls.node_id);
        let accept = tokio::spawn(
            accept_loop(endpoint.clone(), tls.node_id, client_tx, peer_tx).instrument(span),
        );
        let mut tasks = Tasks::new(dialer.clone());
        tasks.push(accept);
        Ok(Self {
            node_id: tls.node_id,
            endpoint,
            cfg,
            dialer,
            clients: tokio::sync::Mutex::new(client_rx),
            peer_conns: Mutex::new(Some(peer_rx)),
            tasks: Arc::new(Mutex::new(tasks)),
        })
    }

    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    pub fn local_addr(&self) -> SocketAddr {
        // The socket is bound for the endpoint's life; failing here means the OS lost it.
        self.endpoint
            .local_addr()
            .expect("a bound UDP socket has a local address")
    }

    pub fn config(&self) -> &NetConfig {
        &self.cfg
    }

    /// The next authenticated client connection; `None` after shutdown.
    pub async fn accept_client(&self) -> Option<ClientConn> {
        self.clients.lock().await.recv().await
    }

    /// Starts the peer links (once per endpoint): one outbound link per entry
    /// of `peers` (our own id is skipped) and the inbound reader. Inbound
    /// connections from nodes not in the peer set are refused. The set
    /// changes later with [`PeerSender::set_peers`]; more than
    /// [`crate::PEERS_MAX`] peers is [`NetError::TooManyPeers`].
    pub fn peers<M>(
        &self,
        peers: BTreeMap<NodeId, SocketAddr>,
    ) -> Result<(PeerSender<M>, PeerReceiver<M>), NetError>
    where
        M: Serialize + DeserializeOwned + Send + 'static,
    {
        // Checked before taking the connections, so a refused set can be retried.
        let peers = peer_set(self.node_id, peers)?;
        let conns = self
            .peer_conns
            .lock()
            .expect("peer_conns lock poisoned")
            .take()
            .ok_or(NetError::PeersAlreadyStarted)?;
        let (sender, members) =
            start_links::<M>(self.node_id, peers, &self.cfg, self.tasks.clone())?;
        let (in_tx, in_rx) = mpsc::channel(self.cfg.inbound_capacity);
        let inbound = tokio::spawn(run_inbound::<M>(
            self.node_id,
            conns,
            members,
            in_tx,
            self.cfg.frame_bytes_max,
        ));
        Tasks::lock(&self.tasks).push(inbound);
        Ok((sender, PeerReceiver { rx: in_rx }))
    }

    /// Dials `addr` as a peer, requiring its certificate to be node `id`'s.
    /// The link tasks use this; exposed for diagnostics and tests.
    pub async fn connect_peer(
        &self,
        addr: SocketAddr,
        id: NodeId,
    ) -> Result<quinn::Connection, NetError> {
        self.dialer.connect_peer(addr, id).await
    }

    /// Closes every connection, stops all tasks and waits until the endpoint is idle.
    pub async fn shutdown(self) {
        self.stop();
        let tasks = Tasks::lock(&self.tasks).take();
        for task in tasks {
            // Aborted tasks end with a cancellation error, which is the point.
            let _ = task.await;
        }
        self.endpoint.wait_idle().await;
        let addr = self.local_addr();
        drop(self);
        // quinn's driver task closes the socket only after the last handle is
        // gone, a moment later. Return once the port is free, so a node
        // restarted in the same process can bind it again.
        for _ in 0..PORT_RELEASE_POLLS_MAX {
            if std::net::UdpSocket::bind(addr).is_ok() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        tracing::warn!(%addr, "the endpoint's port is still bound after shutdown");
    }

    fn stop(&self) {
        self.endpoint.close(close_code::SHUTDOWN, b"shutdown");
        Tasks::lock(&self.tasks).stop();
    }
}

/// Socket buffer asked for on every endpoint. Linux's default (~208 KiB)
/// overflows under bursts of large frames: each dropped datagram stalls an
/// ordered stream until QUIC's loss recovery resends it, which showed up as
/// 100 ms to 2 s tail latencies at 4 KiB payloads. The kernel caps the
/// request at `net.core.rmem_max`/`wmem_max`; a smaller grant is not an error.
const UDP_BUFFER_BYTES: usize = 8 << 20;

fn udp_socket(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if let Err(error) = socket.set_recv_buffer_size(UDP_BUFFER_BYTES) {
        tracing::debug!(%error, "could not enlarge the UDP receive buffer");
    }
    if let Err(error) = socket.set_send_buffer_size(UDP_BUFFER_BYTES) {
        tracing::debug!(%error, "could not enlarge the UDP send buffer");
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Bounds the wait for the port after shutdown (1 ms apart).
const PORT_RELEASE_POLLS_MAX: usize = 2_000;

impl Drop for NodeEndpoint {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn accept_loop(
    endpoint: quinn::Endpoint,
    node_id: NodeId,
    clients: mpsc::Sender<ClientConn>,
    peers: mpsc::Sender<(NodeId, quinn::Connection)>,
) {
    let handshakes = Arc::new(Semaphore::new(HANDSHAKES_MAX));
    let mut admissions = tokio::task::JoinSet::new();
    while let Some(incoming) = endpoint.accept().await {
        // Reap finished admissions so the set stays bounded by HANDSHAKES_MAX.
        while admissions.try_join_next().is_some() {}
        let Ok(permit) = handshakes.clone().try_acquire_owned() else {
            warn!(remote = %incoming.remote_address(), "refusing connection: too many handshakes");
            incoming.refuse();
            continue;
        };
        let (clients, peers) = (clients.clone(), peers.clone());
        admissions.spawn(
            async move {
                let remote = incoming.remote_address();
                match incoming.await {
                    Ok(conn) => admit(conn, node_id, &clients, &peers),
                    Err(e) => info!(%remote, error = %e, "handshake failed"),
                }
                drop(permit);
            }
            .in_current_span(),
        );
    }
    // Aborting the accept loop drops `admissions`, which aborts them too.
}

fn admit(
    conn: quinn::Connection,
    node_id: NodeId,
    clients: &mpsc::Sender<ClientConn>,
    peers: &mpsc::Sender<(NodeId, quinn::Connection)>,
) {
    let addr = conn.remote_address();
    let alpn = conn
        .handshake_data()
        .and_then(|d| d.downcast::<HandshakeData>().ok())
        .and_then(|d| d.protocol);
    let remote = match remote_of(&conn) {
        Ok(r) => r,
        Err(e) => return refuse(&conn, close_code::REFUSED, &format!("{e}")),
    };
    match (alpn.as_deref(), remote) {
        (Some(ALPN_PEER), Remote::Node(id)) if id != node_id => {
            conn.set_max_concurrent_bi_streams(0u32.into());
            if peers.try_send((id, conn.clone())).is_err() {
                refuse(&conn, close_code::BUSY, "peer connections backlog full");
            }
        }
        (Some(ALPN_CLIENT), Remote::Client(name)) => {
            conn.set_max_concurrent_uni_streams(0u32.into());
            info!(%addr, client = %name, "client connected");
            if clients
                .try_send(ClientConn {
                    name,
                    conn: conn.clone(),
                })
                .is_err()
            {
                refuse(&conn, close_code::BUSY, "client backlog full");
            }
        }
        (alpn, remote) => {
            let alpn = alpn.map(String::from_utf8_lossy);
            refuse(
                &conn,
                close_code::REFUSED,
                &format!("{remote} may not use ALPN {alpn:?}"),
            );
        }
    }
}

fn refuse(conn: &quinn::Connection, code: quinn::VarInt, reason: &str) {
    warn!(remote = %conn.remote_address(), %reason, "refusing connection");
    conn.close(code, reason.as_bytes());
}

/// A client's endpoint: dials nodes with the client certificate.
#[derive(Debug)]
pub struct ClientEndpoint {
    endpoint: quinn::Endpoint,
    config: quinn::ClientConfig,
    cfg: NetConfig,
}

impl ClientEndpoint {
    /// Binds an ephemeral IPv4 port with default limits.
    pub fn new(tls: ClientTls) -> Result<Self, NetError> {
        Self::with_config(
            tls,
            NetConfig::default(),
            SocketAddr::from(([0, 0, 0, 0], 0)),
        )
    }

    /// Binds `bind` (use an IPv6 address to reach IPv6 nodes).
    pub fn with_config(tls: ClientTls, cfg: NetConfig, bind: SocketAddr) -> Result<Self, NetError> {
        cfg.validate()?;
        let crypto =
            QuicClientConfig::try_from(tls.config).map_err(|_| NetError::NoInitialCipherSuite)?;
        let mut config = quinn::ClientConfig::new(Arc::new(crypto));
        // Room for server-opened streams (subscription pushes).
        config.transport_config(transport(&cfg, 16, 16)?);
        let socket = udp_socket(bind).map_err(|source| NetError::Bind { addr: bind, source })?;
        let endpoint = quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            None,
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(|source| NetError::Bind { addr: bind, source })?;
        Ok(Self {
            endpoint,
            config,
            cfg,
        })
    }

    pub fn config(&self) -> &NetConfig {
        &self.cfg
    }

    /// Connects to node `node_id` at `addr`; fails unless the server proves
    /// it is that node under the cluster CA. With TLS 1.3 the server may
    /// still refuse our certificate after this returns: that shows on the
    /// first stream operation.
    pub async fn connect(
        &self,
        addr: SocketAddr,
        node_id: NodeId,
    ) -> Result<quinn::Connection, NetError> {
        connect(
            &self.endpoint,
            self.config.clone(),
            addr,
            &node_dns_name(node_id),
        )
        .await
    }

    pub fn local_addr(&self) -> Result<SocketAddr, NetError> {
        self.endpoint.local_addr().map_err(|source| NetError::Bind {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            source,
        })
    }
}

impl Drop for ClientEndpoint {
    fn drop(&mut self) {
        self.endpoint.close(close_code::SHUTDOWN, b"shutdown");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_initial_rtt_is_the_configured_one_not_quics_internet_default() {
        let cfg = NetConfig::default();
        let t = transport(&cfg, 1, 1).expect("default config");
        let shown = format!("{t:?}");
        assert!(
            shown.contains("initial_rtt: 50ms"),
            "transport config: {shown}"
        );
    }

    #[test]
    fn an_initial_rtt_outside_the_idle_timeout_is_refused() {
        for initial_rtt_ms in [0, NetConfig::default().idle_timeout_ms] {
            let cfg = NetConfig {
                initial_rtt_ms,
                ..NetConfig::default()
            };
            assert!(
                matches!(cfg.validate(), Err(NetError::Config(ref m)) if m.contains("initial_rtt_ms")),
                "initial_rtt_ms {initial_rtt_ms} was accepted"
            );
        }
    }
}
