//! The embedded `Log`: in-process nodes, real RocksDB, real QUIC on loopback.

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use paxlog::client::{Client, ClientError, ClientOptions};
use paxlog::core::OpError;
use paxlog::log::{Log, LogConfig, LogError, LogEvent};
use paxlog::node::NodeConfig;
use paxlog_storage::Index;

const CLIENT: &str = "embedder";
/// Bound on every wait; a test that needs longer is broken.
const WAIT_MAX: Duration = Duration::from_secs(60);

struct Embedded {
    dir: tempfile::TempDir,
    members: BTreeMap<u64, SocketAddr>,
}

impl Embedded {
    fn new(n: u64) -> Embedded {
        let dir = tempfile::tempdir().expect("tempdir");
        let ids: Vec<u64> = (1..=n).collect();
        paxlog_net::generate_certs(&dir.path().join("certs"), &ids, &[CLIENT.to_string()])
            .expect("generate certs");
        let held: Vec<UdpSocket> = ids
            .iter()
            .map(|_| UdpSocket::bind("127.0.0.1:0").expect("udp port"))
            .collect();
        let members = ids
            .iter()
            .zip(&held)
            .map(|(id, s)| (*id, s.local_addr().expect("addr")))
            .collect();
        drop(held);
        Embedded { dir, members }
    }

    async fn open(&self, id: u64) -> Log {
        let node = NodeConfig::new(
            "embedded".into(),
            id,
            self.members.clone(),
            self.dir.path().join("certs"),
            self.dir.path().join(format!("node-{id}")),
        )
        .expect("node config");
        Log::open(LogConfig {
            node,
            client_name: CLIENT.into(),
            request_timeout_ms: 10_000,
        })
        .await
        .expect("open log")
    }

    fn client(&self) -> Client {
        let tls = paxlog_net::ClientTls::load(&self.dir.path().join("certs"), CLIENT).expect("tls");
        Client::new(
            tls,
            ClientOptions {
                nodes: self.members.clone(),
                timeout: Duration::from_secs(10),
            },
        )
        .expect("client")
    }
}

async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WAIT_MAX, f)
        .await
        .expect("bounded wait ran out")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_node_append_read_tail_trim() {
    let cluster = Embedded::new(1);
    let log = cluster.open(1).await;
    let mut indexes = Vec::new();
    for i in 0..5u8 {
        indexes.push(
            bounded(log.append(Bytes::from(vec![i])))
                .await
                .expect("append"),
        );
    }
    assert!(indexes.windows(2).all(|w| w[0] < w[1]), "{indexes:?}");
    let tail = bounded(log.tail()).await.expect("tail");
    assert!(tail >= indexes[4], "tail {tail} < {}", indexes[4]);
    let read = bounded(log.read(indexes[0]..indexes[4] + 1))
        .await
        .expect("read");
    let payloads: Vec<u8> = read.iter().map(|(_, b)| b[0]).collect();
    assert_eq!(payloads, vec![0, 1, 2, 3, 4]);

    match bounded(log.trim(indexes[2])).await {
        Err(LogError::Client(ClientError::Op(OpError::TrimAboveSnapshot {
            snapshot: 0, ..
        }))) => {}
        other => panic!("a trim with no snapshot gave {other:?}"),
    }
    let state = b"the state after the first three values".to_vec();
    let meta = bounded(log.publish_snapshot(indexes[2], &state[..]))
        .await
        .expect("publish");
    assert_eq!(
        (meta.index, meta.size_bytes),
        (indexes[2], state.len() as u64)
    );
    bounded(log.trim(indexes[2])).await.expect("trim");
    match bounded(log.read(indexes[0]..indexes[4] + 1)).await {
        Err(LogError::Client(ClientError::Op(OpError::Trimmed { first, .. }))) => {
            assert!(first > indexes[2], "first {first}")
        }
        other => panic!("read below the trim point gave {other:?}"),
    }
    // A subscriber from 1: the snapshot, then every entry after it, once.
    let mut events = Box::pin(log.subscribe(1));
    let mut got = Vec::new();
    while got.len() < 3 {
        got.push(bounded(events.next()).await.expect("event").expect("ok"));
    }
    let LogEvent::Snapshot { index, meta } = &got[0] else {
        panic!("the first event is not the snapshot: {got:?}");
    };
    assert_eq!(*index, indexes[2]);
    let entries: Vec<(Index, u8)> = got[1..]
        .iter()
        .map(|e| match e {
            LogEvent::Entry { index, bytes } => (*index, bytes[0]),
            other => panic!("{other:?} after the snapshot"),
        })
        .collect();
    assert_eq!(entries, vec![(indexes[3], 3), (indexes[4], 4)]);
    let dest = cluster.dir.path().join("fetched");
    bounded(log.fetch_snapshot(meta, &dest))
        .await
        .expect("fetch");
    assert_eq!(std::fs::read(&dest).expect("fetched"), state);
    drop(events);
    log.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_after_ack_from_every_node_and_retry_returns_one_index() {
    let cluster = Embedded::new(3);
    let mut logs = Vec::new();
    for id in 1..=3 {
        logs.push(cluster.open(id).await);
    }
    for (i, log) in logs.iter().enumerate() {
        let index = bounded(log.append(Bytes::from(format!("v{i}"))))
            .await
            .expect("append");
        for other in &logs {
            let tail = bounded(other.tail()).await.expect("tail");
            assert!(tail >= index, "tail {tail} < acknowledged {index}");
        }
    }

    // A retry from another process: it resumes the session at the seq the
    // first one used, as a caller that persisted its session would.
    let client = cluster.client();
    let first = bounded(client.append(Bytes::from_static(b"once")))
        .await
        .expect("append");
    let session = client
        .client_id()
        .await
        .expect("the append opened a session");
    let other = cluster.client();
    other.resume_session(session, 1).await;
    let again = bounded(other.append(Bytes::from_static(b"once")))
        .await
        .expect("retry in a resumed session");
    assert_eq!(
        first, again,
        "a retry with the same (client_id, seq) got a new index"
    );

    for log in logs {
        log.close().await.expect("close");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_across_leader_stop_is_exactly_once_and_old_ballot_is_fenced() {
    let cluster = Embedded::new(3);
    let mut logs = BTreeMap::new();
    for id in 1..=3 {
        logs.insert(id, cluster.open(id).await);
    }
    let any = logs.get(&1).expect("node 1");
    let first = bounded(any.append(Bytes::from_static(b"e0")))
        .await
        .expect("append");
    let old_ballot = bounded(any.ballot()).await.expect("ballot");
    let leader = old_ballot.node;
    let (subscriber_id, writer_id) = match leader {
        1 => (2, 3),
        2 => (1, 3),
        _ => (1, 2),
    };
    let subscriber = logs.remove(&subscriber_id).expect("subscriber");
    let writer = logs.remove(&writer_id).expect("writer");
    let old_leader = logs.remove(&leader).expect("leader");

    let mut expected = vec![(first, Bytes::from_static(b"e0"))];
    for i in 1..10 {
        let bytes = Bytes::from(format!("e{i}"));
        let index = bounded(writer.append(bytes.clone())).await.expect("append");
        expected.push((index, bytes));
    }
    old_leader.close().await.expect("stop the leader");
    for i in 10..20 {
        let bytes = Bytes::from(format!("e{i}"));
        let index = bounded(writer.append(bytes.clone()))
            .await
            .expect("append after the leader stopped");
        expected.push((index, bytes));
    }

    let mut events = Box::pin(subscriber.subscribe(first));
    let mut got = Vec::new();
    while got.len() < expected.len() {
        match bounded(events.next()).await {
            // No-ops, barriers and hidden duplicates never reach a subscriber.
            Some(Ok(LogEvent::Entry { index, bytes })) => got.push((index, bytes)),
            other => panic!("subscription gave {other:?}"),
        }
    }
    assert_eq!(got, expected, "subscription skipped, reordered or repeated");
    drop(events);

    let new_ballot = bounded(writer.ballot()).await.expect("ballot");
    assert_ne!(new_ballot.node, leader, "the stopped node is still leader");
    match bounded(writer.append_if(old_ballot, Bytes::from_static(b"late"))).await {
        Err(LogError::Client(ClientError::Op(OpError::Fenced { current }))) => {
            assert!(current > old_ballot)
        }
        other => panic!("append with the old ballot gave {other:?}"),
    }
    subscriber.close().await.expect("close");
    writer.close().await.expect("close");
}
