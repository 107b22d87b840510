//! Who is on the other end, as proven by a verified certificate.
//!
//! Scheme: a node certificate carries exactly one SAN DNS name
//! `node-<id>.paxlog` (decimal id, no leading zeros); a client certificate
//! carries exactly one SAN DNS name `client-<name>.paxlog`, where `<name>` is
//! 1..=50 characters of `[a-z0-9-]`. A certificate with no such name, or with
//! more than one, has no identity and is refused.

use std::fmt;

use rustls_pki_types::CertificateDer;

use crate::{NetError, NodeId};

const SUFFIX: &str = ".paxlog";
const NODE_PREFIX: &str = "node-";
const CLIENT_PREFIX: &str = "client-";
/// Keeps `client-<name>` within the 63-byte DNS label limit.
pub const CLIENT_NAME_BYTES_MAX: usize = 50;

/// The authenticated remote of a connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Remote {
    Node(NodeId),
    Client(String),
}

impl fmt::Display for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Remote::Node(id) => write!(f, "node {id}"),
            Remote::Client(name) => write!(f, "client {name}"),
        }
    }
}

/// The DNS name bound to node `id`'s certificate.
pub fn node_dns_name(id: NodeId) -> String {
    format!("{NODE_PREFIX}{id}{SUFFIX}")
}

/// The DNS name bound to client `name`'s certificate.
pub fn client_dns_name(name: &str) -> Result<String, NetError> {
    check_client_name(name)?;
    Ok(format!("{CLIENT_PREFIX}{name}{SUFFIX}"))
}

/// Client names are DNS-label safe and lowercase so that one name has one spelling.
pub fn check_client_name(name: &str) -> Result<(), NetError> {
    let bad = |reason| {
        Err(NetError::BadName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() || name.len() > CLIENT_NAME_BYTES_MAX {
        return bad("client name must be 1..=50 bytes");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return bad("client name may hold only a-z, 0-9 and '-'");
    }
    if name.starts_with('-') || name.ends_with('-') {
        return bad("client name may not start or end with '-'");
    }
    Ok(())
}

/// Parses one SAN DNS name; `None` if it is not a paxlog identity.
pub fn parse_dns_name(dns: &str) -> Option<Remote> {
    let label = dns.strip_suffix(SUFFIX)?;
    if let Some(id) = label.strip_prefix(NODE_PREFIX) {
        let parsed: NodeId = id.parse().ok()?;
        // One id, one spelling: "node-01" is not node 1.
        return (parsed.to_string() == id).then_some(Remote::Node(parsed));
    }
    let name = label.strip_prefix(CLIENT_PREFIX)?;
    check_client_name(name).ok()?;
    Some(Remote::Client(name.to_string()))
}

/// The identity of an end-entity certificate that TLS already verified
/// against the cluster CA.
pub fn remote_from_cert(cert: &CertificateDer<'_>) -> Result<Remote, NetError> {
    let ee = webpki::EndEntityCert::try_from(cert)
        .map_err(|e| NetError::Identity(format!("unparsable certificate: {e}")))?;
    let mut found = ee.valid_dns_names().filter_map(parse_dns_name);
    let first = found
        .next()
        .ok_or_else(|| NetError::Identity("certificate names no paxlog node or client".into()))?;
    if found.next().is_some() {
        return Err(NetError::Identity(
            "certificate names more than one paxlog identity".into(),
        ));
    }
    Ok(first)
}

/// The identity of a quinn connection's verified remote certificate.
pub fn remote_of(conn: &quinn::Connection) -> Result<Remote, NetError> {
    let identity = conn
        .peer_identity()
        .ok_or_else(|| NetError::Identity("remote presented no certificate".into()))?;
    let chain = identity
        .downcast::<Vec<CertificateDer<'static>>>()
        .map_err(|_| NetError::Identity("unexpected peer identity type".into()))?;
    let leaf = chain
        .first()
        .ok_or_else(|| NetError::Identity("empty certificate chain".into()))?;
    remote_from_cert(leaf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(parse_dns_name(&node_dns_name(7)), Some(Remote::Node(7)));
        let dns = client_dns_name("bench-1").expect("valid name");
        assert_eq!(parse_dns_name(&dns), Some(Remote::Client("bench-1".into())));
    }

    #[test]
    fn odd_spellings_have_no_identity() {
        for dns in [
            "node-01.paxlog",
            "node-.paxlog",
            "node-1.paxlog.evil",
            "node-1",
            "client-.paxlog",
            "client-A.paxlog",
            "node-99999999999999999999.paxlog",
            "other-1.paxlog",
        ] {
            assert_eq!(parse_dns_name(dns), None, "{dns}");
        }
        assert!(client_dns_name("has space").is_err());
        assert!(client_dns_name(&"a".repeat(51)).is_err());
    }
}
