//! paxlog-net: the QUIC transport of paxlog.
//!
//! One quinn endpoint per node serves peers and clients, told apart by ALPN
//! ([`ALPN_PEER`], [`ALPN_CLIENT`]). Every connection is mutual TLS under one
//! cluster CA, and the remote's identity ([`Remote`]) comes only from its
//! verified certificate. Messages travel as length-prefixed, versioned
//! postcard frames with a hard size limit ([`frame`]).
//!
//! The crate knows nothing of Paxos: peer links carry any
//! `M: Serialize + DeserializeOwned + Send + 'static`.

pub mod backoff;
pub mod certs;
pub mod config;
mod dial;
pub mod endpoint;
pub mod error;
pub mod frame;
pub mod identity;
pub mod peer;
pub mod tls;

pub use certs::{generate_certs, CertPaths};
pub use config::NetConfig;
pub use endpoint::{ClientConn, ClientEndpoint, NodeEndpoint};
pub use error::{NetError, SendError};
pub use frame::{
    accept_framed_bi, decode, encode, framed_bi, FrameError, FrameReader, FrameWriter,
    FRAME_BYTES_MAX_DEFAULT, FRAME_VERSION,
};
pub use identity::Remote;
pub use peer::{PeerReceiver, PeerSender, PEERS_MAX};
pub use tls::{ClientTls, NodeTls};

/// ALPN of node-to-node links; only node certificates may use it.
pub const ALPN_PEER: &[u8] = b"paxlog-peer/1";
/// ALPN of client connections; only client certificates may use it.
pub const ALPN_CLIENT: &[u8] = b"paxlog-client/1";

/// A node's identity, bound to its certificate (`node-<id>.paxlog`).
pub type NodeId = u64;
