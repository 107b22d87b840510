//! The slice of etcd 3.4's JSON gateway the benchmark speaks: `kv/put`
//! requests and responses, `maintenance/status` responses, and picking the
//! leader's client URL from them. The gateway writes bytes as base64 and
//! 64-bit integers as decimal strings.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize};

pub const PUT_PATH: &str = "/v3/kv/put";
pub const RANGE_PATH: &str = "/v3/kv/range";
pub const STATUS_PATH: &str = "/v3/maintenance/status";

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum EtcdError {
    #[error("etcd answered HTTP {status}: {message}")]
    Status { status: u16, message: String },
    #[error("etcd refused the put: {0}")]
    Refused(String),
    #[error("etcd's response is not what the gateway sends: {0}")]
    Malformed(String),
    #[error("no member knows a leader yet")]
    NoLeader,
    #[error("the leader {0} is not among the members asked")]
    LeaderUnknown(u64),
}

#[derive(Debug, Serialize)]
pub struct PutRequest<'a> {
    /// base64
    pub key: &'a str,
    /// base64
    pub value: String,
}

impl<'a> PutRequest<'a> {
    pub fn new(key_b64: &'a str, value: &[u8]) -> Self {
        Self {
            key: key_b64,
            value: BASE64.encode(value),
        }
    }
}

pub fn encode_key(key: &str) -> String {
    BASE64.encode(key)
}

#[derive(Debug, Deserialize)]
pub struct Header {
    #[serde(default, deserialize_with = "u64_text")]
    pub member_id: u64,
    #[serde(default, deserialize_with = "u64_text")]
    pub revision: u64,
}

/// A put response or a gateway error; which one the fields tell.
#[derive(Debug, Deserialize)]
struct PutReply {
    header: Option<Header>,
    error: Option<String>,
    message: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct StatusReply {
    pub header: Header,
    #[serde(default, deserialize_with = "u64_text")]
    pub leader: u64,
}

/// Checks one put's HTTP status and body; returns the revision it created.
pub fn check_put(status: u16, body: &[u8]) -> Result<u64, EtcdError> {
    let reply: Result<PutReply, _> = serde_json::from_slice(body);
    let text = || String::from_utf8_lossy(body).into_owned();
    if !(200..300).contains(&status) {
        let message = match reply {
            Ok(PutReply {
                message: Some(m), ..
            })
            | Ok(PutReply { error: Some(m), .. }) => m,
            _ => text(),
        };
        return Err(EtcdError::Status { status, message });
    }
    let reply = reply.map_err(|e| EtcdError::Malformed(format!("{e}: {}", text())))?;
    if let Some(e) = reply.error.or(reply.message) {
        return Err(EtcdError::Refused(e));
    }
    match reply.header {
        Some(h) if h.revision > 0 => Ok(h.revision),
        _ => Err(EtcdError::Malformed(format!(
            "put without a revision: {}",
            text()
        ))),
    }
}

/// A linearizable range read of one key (etcd's default).
#[derive(Debug, Serialize)]
pub struct RangeRequest<'a> {
    /// base64
    pub key: &'a str,
}

/// Checks one range read's HTTP status and body (a header with a revision).
pub fn check_range(status: u16, body: &[u8]) -> Result<u64, EtcdError> {
    let text = || String::from_utf8_lossy(body).into_owned();
    if !(200..300).contains(&status) {
        return Err(EtcdError::Status {
            status,
            message: text(),
        });
    }
    let reply: PutReply = serde_json::from_slice(body)
        .map_err(|e| EtcdError::Malformed(format!("{e}: {}", text())))?;
    if let Some(e) = reply.error.or(reply.message) {
        return Err(EtcdError::Refused(e));
    }
    match reply.header {
        Some(h) => Ok(h.revision),
        None => Err(EtcdError::Malformed(format!(
            "range without a header: {}",
            text()
        ))),
    }
}

pub fn parse_status(body: &[u8]) -> Result<StatusReply, EtcdError> {
    serde_json::from_slice(body)
        .map_err(|e| EtcdError::Malformed(format!("{e}: {}", String::from_utf8_lossy(body))))
}

/// The client URL of the member the others name as leader. `members` pairs
/// each member's client URL with its status reply.
pub fn leader_url(members: &[(String, StatusReply)]) -> Result<&str, EtcdError> {
    let leader = members
        .iter()
        .map(|(_, s)| s.leader)
        .find(|&l| l != 0)
        .ok_or(EtcdError::NoLeader)?;
    members
        .iter()
        .find(|(_, s)| s.header.member_id == leader)
        .map(|(url, _)| url.as_str())
        .ok_or(EtcdError::LeaderUnknown(leader))
}

/// The gateway's uint64 fields: decimal strings, or numbers from other encoders.
fn u64_text<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Text {
        Num(u64),
        Str(String),
    }
    match Text::deserialize(d)? {
        Text::Num(n) => Ok(n),
        Text::Str(s) => s.parse().map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Verbatim from etcd 3.4.23 (three members on loopback).
    const STATUS_LEADER: &str = r#"{"header":{"cluster_id":"5956415722986767176","member_id":"16318474087620700410","revision":"1","raft_term":"2"},"version":"3.4.23","dbSize":"24576","leader":"16318474087620700410","raftIndex":"8","raftTerm":"2","raftAppliedIndex":"8","dbSizeInUse":"16384"}"#;
    const STATUS_FOLLOWER: &str = r#"{"header":{"cluster_id":"5956415722986767176","member_id":"13815408769395450700","revision":"1","raft_term":"2"},"version":"3.4.23","dbSize":"20480","leader":"16318474087620700410","raftIndex":"8","raftTerm":"2","raftAppliedIndex":"8","dbSizeInUse":"16384"}"#;
    const PUT_OK: &str = r#"{"header":{"cluster_id":"5956415722986767176","member_id":"16318474087620700410","revision":"2","raft_term":"2"}}"#;
    const PUT_BAD_BASE64: &str = r#"{"error":"illegal base64 data at input byte 0","message":"illegal base64 data at input byte 0","code":3}"#;
    const PUT_NO_KEY: &str = r#"{"error":"etcdserver: key is not provided","message":"etcdserver: key is not provided","code":3}"#;

    fn status(body: &str) -> StatusReply {
        parse_status(body.as_bytes()).expect("a real status reply parses")
    }

    #[test]
    fn put_body_is_base64_json() {
        let key = encode_key("bench/7");
        let body = serde_json::to_string(&PutRequest::new(&key, b"\x00\xffhi")).expect("serialize");
        assert_eq!(body, r#"{"key":"YmVuY2gvNw==","value":"AP9oaQ=="}"#);
    }

    #[test]
    fn put_success_yields_its_revision() {
        assert_eq!(check_put(200, PUT_OK.as_bytes()), Ok(2));
    }

    #[test]
    fn put_errors_are_reported() {
        assert_eq!(
            check_put(400, PUT_NO_KEY.as_bytes()),
            Err(EtcdError::Status {
                status: 400,
                message: "etcdserver: key is not provided".into()
            })
        );
        assert_eq!(
            check_put(200, PUT_BAD_BASE64.as_bytes()),
            Err(EtcdError::Refused(
                "illegal base64 data at input byte 0".into()
            ))
        );
        assert!(matches!(
            check_put(503, b"upstream gone"),
            Err(EtcdError::Status { status: 503, message }) if message == "upstream gone"
        ));
        assert!(matches!(
            check_put(200, b"{}"),
            Err(EtcdError::Malformed(_))
        ));
        assert!(matches!(
            check_put(200, b"not json"),
            Err(EtcdError::Malformed(_))
        ));
    }

    #[test]
    fn status_ids_parse_from_strings_and_numbers() {
        let s = status(STATUS_FOLLOWER);
        assert_eq!(s.header.member_id, 13815408769395450700);
        assert_eq!(s.leader, 16318474087620700410);
        let n = status(r#"{"header":{"member_id":5},"leader":7}"#);
        assert_eq!((n.header.member_id, n.leader), (5, 7));
        assert!(parse_status(br#"{"header":{"member_id":"x"}}"#).is_err());
    }

    #[test]
    fn leader_is_the_member_whose_id_the_others_name() {
        let members = vec![
            ("http://a".to_string(), status(STATUS_FOLLOWER)),
            ("http://b".to_string(), status(STATUS_LEADER)),
        ];
        assert_eq!(leader_url(&members), Ok("http://b"));
        assert_eq!(
            leader_url(&members[..1]),
            Err(EtcdError::LeaderUnknown(16318474087620700410))
        );
        let leaderless = vec![(
            "http://a".to_string(),
            status(r#"{"header":{"member_id":"1"},"leader":"0"}"#),
        )];
        assert_eq!(leader_url(&leaderless), Err(EtcdError::NoLeader));
    }
}
