//! Typed errors of the transport.

use std::path::PathBuf;

use crate::frame::FrameError;
use crate::NodeId;

/// Setup, certificate and connection errors.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: bad PEM: {reason}")]
    Pem { path: PathBuf, reason: String },
    #[error("certificate generation: {0}")]
    CertGen(#[from] rcgen::Error),
    #[error("invalid name {name:?}: {reason}")]
    BadName { name: String, reason: &'static str },
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("TLS verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("QUIC needs a TLS 1.3 initial cipher suite")]
    NoInitialCipherSuite,
    #[error("binding {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("dialing {addr}: {source}")]
    Connect {
        addr: std::net::SocketAddr,
        #[source]
        source: quinn::ConnectError,
    },
    #[error("connection to {addr}: {source}")]
    Connection {
        addr: std::net::SocketAddr,
        #[source]
        source: quinn::ConnectionError,
    },
    #[error("remote identity: {0}")]
    Identity(String),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("peer links already started on this endpoint")]
    PeersAlreadyStarted,
    #[error("{peers} peers, more than the {max} an endpoint links to")]
    TooManyPeers { peers: usize, max: usize },
}

/// Why [`crate::PeerSender::try_send`] did not queue a message.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The peer's bounded queue is full; the message was dropped.
    #[error("send queue to node {0} is full")]
    Full(NodeId),
    /// Not in the current peer set (never added, or removed by `set_peers`).
    #[error("node {0} is not a configured peer")]
    UnknownPeer(NodeId),
    /// The endpoint shut down.
    #[error("peer link to node {0} is closed")]
    Closed(NodeId),
    #[error("encoding a message for node {to}: {source}")]
    Frame {
        to: NodeId,
        #[source]
        source: FrameError,
    },
}
