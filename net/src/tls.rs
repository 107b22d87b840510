//! rustls configurations for nodes and clients: TLS 1.3 only, *ring*,
//! mutual authentication under the cluster CA, 0-RTT off.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::certs::CertPaths;
use crate::{NetError, NodeId, ALPN_CLIENT, ALPN_PEER};

/// A node's TLS material: it serves both ALPNs and dials peers with its
/// node certificate as client certificate.
#[derive(Debug, Clone)]
pub struct NodeTls {
    pub(crate) node_id: NodeId,
    pub(crate) server: Arc<ServerConfig>,
    pub(crate) dial: Arc<ClientConfig>,
    /// Signs the stateless-reset tokens of this node's connections. Derived
    /// from the node key, so it is the same after a restart: a peer or client
    /// still sending on a connection of the node's previous life gets a reset
    /// it accepts and redials at once, instead of talking into the void until
    /// its idle timeout (a random key per process, quinn's default, yields
    /// resets the peer must ignore). Secret like the node key: whoever knows
    /// it can cut the node's connections.
    pub(crate) reset_key: Arc<ring::hmac::Key>,
    /// Keys the hash that marks this node's connection ids as its own, for
    /// the same reason: quinn answers with a reset only a packet whose id
    /// passes that check, so it must pass for ids of the previous life too.
    pub(crate) cid_key: u64,
}

impl NodeTls {
    /// Loads `ca.pem` and `node-<id>.pem`/`.key` from `certs_dir`.
    pub fn load(certs_dir: &Path, node_id: NodeId) -> Result<Self, NetError> {
        let paths = CertPaths::new(certs_dir);
        let (cert, key) = paths.node(node_id);
        Self::from_files(node_id, &paths.ca(), &cert, &key)
    }

    /// Builds from explicit files. `node_id` names the identity this node
    /// claims; the certificate must be the one issued for it, or peers refuse.
    pub fn from_files(
        node_id: NodeId,
        ca: &Path,
        cert: &Path,
        key: &Path,
    ) -> Result<Self, NetError> {
        let provider = provider();
        let roots = Arc::new(load_roots(ca)?);
        let chain = load_chain(cert)?;
        let key = load_key(key)?;
        let (reset_key, cid_key) = restart_keys(key.secret_der());
        let claimed = crate::Remote::Node(node_id);
        let actual = crate::identity::remote_from_cert(&chain[0])?;
        if actual != claimed {
            return Err(NetError::Identity(format!(
                "{} holds a certificate of {actual}, not of {claimed}",
                cert.display()
            )));
        }

        let verifier =
            WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone()).build()?;
        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())?;
        server.alpn_protocols = vec![ALPN_PEER.to_vec(), ALPN_CLIENT.to_vec()];
        server.max_early_data_size = 0;

        let mut dial = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)?;
        dial.alpn_protocols = vec![ALPN_PEER.to_vec()];
        dial.enable_early_data = false;

        Ok(Self {
            node_id,
            server: Arc::new(server),
            dial: Arc::new(dial),
            reset_key: Arc::new(reset_key),
            cid_key,
        })
    }

    pub fn node_id(&self) -> NodeId {
        self.node_id
    }
}

/// A client's TLS material.
#[derive(Debug, Clone)]
pub struct ClientTls {
    pub(crate) config: Arc<ClientConfig>,
}

impl ClientTls {
    /// Loads `ca.pem` and `client-<name>.pem`/`.key` from `certs_dir`.
    pub fn load(certs_dir: &Path, client_name: &str) -> Result<Self, NetError> {
        crate::identity::check_client_name(client_name)?;
        let paths = CertPaths::new(certs_dir);
        let (cert, key) = paths.client(client_name);
        Self::from_files(&paths.ca(), &cert, &key)
    }

    /// Builds from explicit files.
    pub fn from_files(ca: &Path, cert: &Path, key: &Path) -> Result<Self, NetError> {
        let roots = Arc::new(load_roots(ca)?);
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(roots)
            .with_client_auth_cert(load_chain(cert)?, load_key(key)?)?;
        config.alpn_protocols = vec![ALPN_CLIENT.to_vec()];
        config.enable_early_data = false;
        Ok(Self {
            config: Arc::new(config),
        })
    }

    /// Offers `alpn` instead of [`ALPN_CLIENT`]. Only for tests that check
    /// the server refuses what a certificate may not do.
    pub fn with_alpn(self, alpn: &[u8]) -> Self {
        let mut config = (*self.config).clone();
        config.alpn_protocols = vec![alpn.to_vec()];
        Self {
            config: Arc::new(config),
        }
    }
}

/// The stateless-reset key and connection-id key of the node whose private
/// key is `key_der`: HMACs of fixed labels under that key, so they survive a
/// restart, change when the node key does, and reveal nothing of it.
fn restart_keys(key_der: &[u8]) -> (ring::hmac::Key, u64) {
    use ring::hmac;
    let derive = hmac::Key::new(hmac::HMAC_SHA256, key_der);
    let reset = hmac::sign(&derive, b"paxlog: QUIC stateless reset key, v1");
    let cid = hmac::sign(&derive, b"paxlog: QUIC connection id key, v1");
    let mut cid_key = [0u8; 8];
    cid_key.copy_from_slice(&cid.as_ref()[..8]);
    (
        hmac::Key::new(hmac::HMAC_SHA256, reset.as_ref()),
        u64::from_le_bytes(cid_key),
    )
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn pem_err(path: &Path, e: impl std::fmt::Display) -> NetError {
    NetError::Pem {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

fn load_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, NetError> {
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_err(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(path, e))?;
    if chain.is_empty() {
        return Err(pem_err(path, "no CERTIFICATE section"));
    }
    Ok(chain)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, NetError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| pem_err(path, e))
}

fn load_roots(path: &Path) -> Result<RootCertStore, NetError> {
    let mut roots = RootCertStore::empty();
    for cert in load_chain(path)? {
        roots.add(cert)?;
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys_of(tls: &NodeTls) -> (Vec<u8>, u64) {
        let token = ring::hmac::sign(&tls.reset_key, b"a connection id");
        (token.as_ref().to_vec(), tls.cid_key)
    }

    /// A restart loads the same key file and must sign the same reset tokens
    /// and accept the same connection ids; another node's key must not.
    #[test]
    fn restart_keys_follow_the_node_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        crate::generate_certs(dir.path(), &[1, 2], &[]).expect("certs");
        let first = keys_of(&NodeTls::load(dir.path(), 1).expect("node 1"));
        let restarted = keys_of(&NodeTls::load(dir.path(), 1).expect("node 1 again"));
        let other = keys_of(&NodeTls::load(dir.path(), 2).expect("node 2"));
        assert_eq!(first, restarted);
        assert_ne!(first.0, other.0);
        assert_ne!(first.1, other.1);
    }
}
