//! Changing the peer set at runtime (`PeerSender::set_peers`): adding a node,
//! removing one, moving one to a new address, and the bound on the set.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use paxlog_net::endpoint::close_code;
use paxlog_net::{NetConfig, NetError, NodeEndpoint, NodeId, PeerSender, SendError, PEERS_MAX};

/// Retransmission interval of the loops below: links (re)connect in the
/// background, and frames written to a connection that is then refused are
/// lost, so, like Paxos, the tests resend until delivered.
const RESEND: Duration = Duration::from_millis(50);

/// How long a removed node keeps sending without anything arriving.
const SILENCE: Duration = Duration::from_secs(1);

/// Dials `to` as a raw peer connection from `from` and returns how `to`
/// closed it. The server checks the peer set only after the TLS handshake,
/// so the dial may succeed and the refusal then closes the connection.
async fn refusal(from: &NodeEndpoint, to: SocketAddr, to_id: NodeId) -> quinn::ApplicationClose {
    let closed = match within("raw dial", from.connect_peer(to, to_id)).await {
        Ok(conn) => within("refusal", conn.closed()).await,
        Err(NetError::Connection { source, .. }) => source,
        Err(e) => panic!("raw dial failed: {e}"),
    };
    match closed {
        quinn::ConnectionError::ApplicationClosed(c) => c,
        other => panic!("expected an application close, got {other:?}"),
    }
}

fn peers_of<M>(tx: &PeerSender<M>) -> Vec<NodeId> {
    tx.peers().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn added_node_talks_both_ways() {
    init_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    certs(dir.path(), &[1, 2, 3], &[]);
    let n1 = bind(dir.path(), 1, test_config());
    let n2 = bind(dir.path(), 2, test_config());
    let n3 = bind(dir.path(), 3, test_config());
    let (a1, a2, a3) = (n1.local_addr(), n2.local_addr(), n3.local_addr());
    let (tx1, mut rx1) = n1.peers::<Msg>(peer_map(&[(2, a2)])).expect("peers 1");
    let (tx2, mut rx2) = n2.peers::<Msg>(peer_map(&[(1, a1)])).expect("peers 2");
    tx1.try_send(2, Msg::Ping(12)).expect("queue 1->2");
    tx2.try_send(1, Msg::Ping(21)).expect("queue 2->1");
    assert_eq!(within("1->2", rx2.recv()).await, Some((1, Msg::Ping(12))));
    assert_eq!(within("2->1", rx1.recv()).await, Some((2, Msg::Ping(21))));

    // Node 3 joins knowing both; they do not know it yet and refuse it.
    let (tx3, mut rx3) = n3
        .peers::<Msg>(peer_map(&[(1, a1), (2, a2)]))
        .expect("peers 3");
    assert_eq!(refusal(&n3, a1, 1).await.error_code, close_code::REFUSED);
    assert!(matches!(
        tx1.try_send(3, Msg::Ping(0)),
        Err(SendError::UnknownPeer(3))
    ));

    tx1.set_peers(peer_map(&[(2, a2), (3, a3)]))
        .expect("add 3 at 1");
    tx2.set_peers(peer_map(&[(1, a1), (3, a3)]))
        .expect("add 3 at 2");
    assert_eq!(peers_of(&tx1), vec![2, 3]);
    assert_eq!(peers_of(&tx2), vec![1, 3]);

    // Every (from, to) pair involving 3 must be heard, each message with its
    // exact payload (10 * from + to) and the certificate-proven sender.
    let want: BTreeSet<(NodeId, NodeId)> = [(1, 3), (2, 3), (3, 1), (3, 2)].into();
    let mut heard = BTreeSet::new();
    let mut tick = tokio::time::interval(RESEND);
    within("3 talks with 1 and 2 both ways", async {
        while heard != want {
            tokio::select! {
                _ = tick.tick() => {
                    // Full is fine while a link is still connecting.
                    let _ = tx1.try_send(3, Msg::Ping(13));
                    let _ = tx2.try_send(3, Msg::Ping(23));
                    let _ = tx3.try_send(1, Msg::Ping(31));
                    let _ = tx3.try_send(2, Msg::Ping(32));
                }
                Some((from, msg)) = rx1.recv() => {
                    assert_eq!((from, msg), (3, Msg::Ping(31)));
                    heard.insert((3, 1));
                }
                Some((from, msg)) = rx2.recv() => {
                    assert_eq!((from, msg), (3, Msg::Ping(32)));
                    heard.insert((3, 2));
                }
                Some((from, msg)) = rx3.recv() => {
                    let to_3 = match msg { Msg::Ping(p) => p, other => panic!("{other:?}") };
                    assert_eq!(to_3, 10 * from + 3, "payload from {from}");
                    heard.insert((from, 3));
                }
            }
        }
    })
    .await;

    drop((tx1, tx2, tx3, rx1, rx2, rx3));
    within("shutdown", async {
        n1.shutdown().await;
        n2.shutdown().await;
        n3.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_node_is_cut_off() {
    init_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    certs(dir.path(), &[1, 2, 3], &[]);
    let n1 = bind(dir.path(), 1, test_config());
    let n2 = bind(dir.path(), 2, test_config());
    let n3 = bind(dir.path(), 3, test_config());
    let (a1, a2, a3) = (n1.local_addr(), n2.local_addr(), n3.local_addr());
    let (tx1, mut rx1) = n1
        .peers::<Msg>(peer_map(&[(2, a2), (3, a3)]))
        .expect("peers 1");
    let (tx2, mut rx2) = n2.peers::<Msg>(peer_map(&[(1, a1)])).expect("peers 2");
    tx1.try_send(2, Msg::Ping(12)).expect("queue 1->2");
    tx2.try_send(1, Msg::Ping(21)).expect("queue 2->1");
    assert_eq!(within("1->2", rx2.recv()).await, Some((1, Msg::Ping(12))));
    assert_eq!(within("2->1", rx1.recv()).await, Some((2, Msg::Ping(21))));

    // A live inbound connection of node 3, raw: node 3 runs no peer links,
    // so nothing of its own supersedes this connection at node 1.
    let raw = within("raw dial 3->1", n3.connect_peer(a1, 1))
        .await
        .expect("raw dial 3->1");
    let mut stream = within("open", raw.open_uni()).await.expect("open uni");
    let frame = paxlog_net::encode(&Msg::Ping(31), 1024).expect("encode");
    within("write", stream.write_all(&frame))
        .await
        .expect("write");
    assert_eq!(within("3->1", rx1.recv()).await, Some((3, Msg::Ping(31))));

    // Remove node 2: no queue to it any more, and its connections are refused.
    tx1.set_peers(peer_map(&[(3, a3)])).expect("remove 2");
    assert_eq!(peers_of(&tx1), vec![3]);
    assert!(matches!(
        tx1.try_send(2, Msg::Ping(0)),
        Err(SendError::UnknownPeer(2))
    ));
    assert_eq!(tx1.queued(2), None);
    assert_eq!(refusal(&n2, a1, 1).await.error_code, close_code::REFUSED);

    // Remove node 3 too: its live connection is closed with REFUSED.
    tx1.set_peers(peer_map(&[])).expect("remove 3");
    match within("3's connection closed", raw.closed()).await {
        quinn::ConnectionError::ApplicationClosed(c) => {
            assert_eq!(c.error_code, close_code::REFUSED, "closed with {c:?}")
        }
        other => panic!("expected 3's connection refused, got {other:?}"),
    }

    // Node 2 still knows node 1 and keeps sending; nothing reaches node 1.
    let mut tick = tokio::time::interval(RESEND);
    let silence = tokio::time::sleep(SILENCE);
    tokio::pin!(silence);
    loop {
        tokio::select! {
            () = &mut silence => break,
            _ = tick.tick() => {
                let _ = tx2.try_send(1, Msg::Ping(99));
            }
            m = rx1.recv() => panic!("node 1 received {m:?} from a removed node"),
        }
    }

    // Added back, node 2 is linked again both ways (its queue may still
    // hold a Ping(99) from the silent period, delivered now).
    tx1.set_peers(peer_map(&[(2, a2)])).expect("add 2 back");
    let (mut heard_1to2, mut heard_2to1) = (false, false);
    within("2 linked again", async {
        while !(heard_1to2 && heard_2to1) {
            tokio::select! {
                _ = tick.tick() => {
                    let _ = tx1.try_send(2, Msg::Ping(12));
                    let _ = tx2.try_send(1, Msg::Ping(21));
                }
                Some((from, msg)) = rx1.recv() => {
                    assert_eq!(from, 2);
                    assert!(matches!(msg, Msg::Ping(21 | 99)), "{msg:?}");
                    heard_2to1 = true;
                }
                Some((from, msg)) = rx2.recv() => {
                    assert_eq!((from, msg), (1, Msg::Ping(12)));
                    heard_1to2 = true;
                }
            }
        }
    })
    .await;

    drop((tx1, tx2, rx1, rx2, stream, raw));
    within("shutdown", async {
        n1.shutdown().await;
        n2.shutdown().await;
        n3.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moved_node_is_redialed_at_its_new_address() {
    init_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    certs(dir.path(), &[1, 2], &[]);
    let n1 = bind(dir.path(), 1, test_config());
    let old2 = bind(dir.path(), 2, test_config());
    let (a1, old_a2) = (n1.local_addr(), old2.local_addr());
    let (tx1, mut rx1) = n1.peers::<Msg>(peer_map(&[(2, old_a2)])).expect("peers 1");
    let (old_tx2, mut old_rx2) = old2
        .peers::<Msg>(peer_map(&[(1, a1)]))
        .expect("peers old 2");
    tx1.try_send(2, Msg::Ping(12)).expect("queue 1->2");
    old_tx2.try_send(1, Msg::Ping(21)).expect("queue 2->1");
    assert_eq!(
        within("1->old 2", old_rx2.recv()).await,
        Some((1, Msg::Ping(12)))
    );
    assert_eq!(
        within("old 2->1", rx1.recv()).await,
        Some((2, Msg::Ping(21)))
    );

    // Node 2 moves. The old endpoint stays up and keeps reading node 1's
    // link (only its own outbound link stops), so node 1's messages reach
    // the new endpoint only if node 1 really leaves the old address.
    drop(old_tx2);
    let new2 = bind(dir.path(), 2, test_config());
    let new_a2 = new2.local_addr();
    assert_ne!(new_a2, old_a2);
    let (new_tx2, mut new_rx2) = new2
        .peers::<Msg>(peer_map(&[(1, a1)]))
        .expect("peers new 2");
    tx1.set_peers(peer_map(&[(2, new_a2)])).expect("move 2");
    assert_eq!(peers_of(&tx1), vec![2]);

    let (mut heard_1to2, mut heard_2to1) = (false, false);
    let mut tick = tokio::time::interval(RESEND);
    within("1 and the moved 2 talk", async {
        while !(heard_1to2 && heard_2to1) {
            tokio::select! {
                _ = tick.tick() => {
                    let _ = tx1.try_send(2, Msg::Ping(13));
                    let _ = new_tx2.try_send(1, Msg::Ping(24));
                }
                Some((from, msg)) = new_rx2.recv() => {
                    assert_eq!((from, msg), (1, Msg::Ping(13)));
                    heard_1to2 = true;
                }
                Some((from, msg)) = rx1.recv() => {
                    assert_eq!((from, msg), (2, Msg::Ping(24)));
                    heard_2to1 = true;
                }
            }
        }
    })
    .await;

    drop((tx1, rx1, new_tx2, new_rx2, old_rx2));
    within("shutdown", async {
        n1.shutdown().await;
        old2.shutdown().await;
        new2.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_set_is_bounded_and_keeps_queues() {
    init_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    certs(dir.path(), &[1], &[]);
    let cfg = NetConfig {
        peer_queue_capacity: 8,
        ..test_config()
    };
    let n1 = bind(dir.path(), 1, cfg);
    let a1 = n1.local_addr();
    // Ids 2..=PEERS_MAX+2 at addresses nobody listens on: links never connect,
    // so queued frames stay queued and `queued` shows which queue is which.
    let too_many: Vec<(NodeId, SocketAddr)> = (2..=PEERS_MAX as NodeId + 2)
        .map(|id| (id, dead_addr()))
        .collect();
    assert_eq!(too_many.len(), PEERS_MAX + 1);
    assert!(matches!(
        n1.peers::<Msg>(peer_map(&too_many)),
        Err(NetError::TooManyPeers { peers, max }) if peers == PEERS_MAX + 1 && max == PEERS_MAX
    ));

    // Refused before anything started: peers() can be called again. Our own
    // id is skipped.
    let a2 = too_many[0].1;
    let (tx1, _rx1) = n1
        .peers::<Msg>(peer_map(&[(1, a1), (2, a2)]))
        .expect("peers");
    assert_eq!(peers_of(&tx1), vec![2]);
    assert!(matches!(
        tx1.try_send(1, Msg::Ping(0)),
        Err(SendError::UnknownPeer(1))
    ));
    for i in 0..3 {
        tx1.try_send(2, Msg::Ping(i)).expect("queue to 2");
    }
    assert_eq!(tx1.queued(2), Some(3));

    // One too many: refused, nothing changes.
    assert!(matches!(
        tx1.set_peers(peer_map(&too_many)),
        Err(NetError::TooManyPeers { .. })
    ));
    assert_eq!(peers_of(&tx1), vec![2]);
    assert_eq!(tx1.queued(2), Some(3));

    // Exactly PEERS_MAX (plus our own id, skipped): accepted; the unchanged
    // entry of node 2 keeps its queue.
    let mut full = too_many[..PEERS_MAX].to_vec();
    full.push((1, a1));
    tx1.set_peers(peer_map(&full)).expect("PEERS_MAX peers");
    assert_eq!(
        peers_of(&tx1),
        (2..=PEERS_MAX as NodeId + 1).collect::<Vec<_>>()
    );
    assert_eq!(tx1.queued(2), Some(3));
    assert_eq!(tx1.queued(3), Some(0));

    // A move keeps the queue too: the frames are for the node, not the address.
    full[0] = (2, dead_addr());
    tx1.set_peers(peer_map(&full)).expect("move 2");
    assert_eq!(tx1.queued(2), Some(3));

    // Removing everyone drops the queues.
    tx1.set_peers(peer_map(&[])).expect("remove all");
    assert_eq!(peers_of(&tx1), Vec::<NodeId>::new());
    assert_eq!(tx1.queued(2), None);
    assert!(matches!(
        tx1.try_send(2, Msg::Ping(0)),
        Err(SendError::UnknownPeer(2))
    ));

    drop(tx1);
    within("shutdown", n1.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sender_outliving_the_endpoint_holds_nothing() {
    init_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    certs(dir.path(), &[1], &[]);
    let n1 = bind(dir.path(), 1, test_config());
    let a1 = n1.local_addr();
    let (tx1, _rx1) = n1
        .peers::<Msg>(peer_map(&[(2, dead_addr())]))
        .expect("peers");

    // The node runtime holds its sender through the endpoint's shutdown; the
    // port must still be released, so that a restart can bind it again.
    within("shutdown", n1.shutdown()).await;
    std::net::UdpSocket::bind(a1).expect("the port is free after shutdown");

    // Peers set after shutdown start no link: their sends answer Closed.
    tx1.set_peers(peer_map(&[(2, dead_addr()), (3, dead_addr())]))
        .expect("set after shutdown");
    assert!(matches!(
        tx1.try_send(2, Msg::Ping(0)),
        Err(SendError::Closed(2))
    ));
    assert!(matches!(
        tx1.try_send(3, Msg::Ping(0)),
        Err(SendError::Closed(3))
    ));
}
