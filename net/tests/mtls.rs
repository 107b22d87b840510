//! Mutual TLS: the happy path, and every identity the transport must refuse.

mod common;

use common::*;
use futures::FutureExt;
use paxlog_net::endpoint::close_code;
use paxlog_net::{
    framed_bi, ClientEndpoint, ClientTls, FrameReader, FrameWriter, NetError, NodeTls, ALPN_PEER,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_happy_path_peers_and_client() {
    init_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    certs(dir.path(), &[1, 2], &["alice"]);
    let n1 = bind(dir.path(), 1, test_config());
    let n2 = bind(dir.path(), 2, test_config());
    let (a1, a2) = (n1.local_addr(), n2.local_addr());
    let (tx1, mut rx1) = n1
        .peers::<Msg>(peer_map(&[(1, a1), (2, a2)]))
        .expect("peers 1");
    let (tx2, mut rx2) = n2
        .peers::<Msg>(peer_map(&[(1, a1), (2, a2)]))
        .expect("peers 2");

    for i in 0..100 {
        tx1.try_send(2, Msg::Ping(i)).expect("queue 1->2");
    }
    tx2.try_send(1, Msg::Ping(7)).expect("queue 2->1");
    for i in 0..100 {
        // In order, tagged with the certificate identity of the sender.
        assert_eq!(within("1->2", rx2.recv()).await, Some((1, Msg::Ping(i))));
    }
    assert_eq!(within("2->1", rx1.recv()).await, Some((2, Msg::Ping(7))));
    assert!(
        n1.peers::<Msg>(peer_map(&[])).is_err(),
        "peers() twice must fail"
    );
    assert!(matches!(
        tx1.try_send(9, Msg::Ping(0)),
        Err(paxlog_net::SendError::UnknownPeer(9))
    ));

    // A client: bidi request/response, pipelined.
    let client = ClientEndpoint::new(ClientTls::load(dir.path(), "alice").expect("client tls"))
        .expect("client endpoint");
    let server = tokio::spawn(async move {
        let cc = within("accept client", n1.accept_client())
            .await
            .expect("a client");
        assert_eq!(cc.name, "alice");
        let (mut reader, mut writer) =
            paxlog_net::frame::accept_framed_bi::<Msg, Msg>(&cc.conn, 1 << 20)
                .await
                .expect("bidi stream");
        while let Some(Msg::Ping(x)) = reader.read().await.expect("request") {
            writer.write(&Msg::Ping(x * 10)).await.expect("response");
        }
        writer.finish().await.expect("finish");
        // Dropping the last handle would close the connection under the client's reads.
        (n1, cc)
    });
    let conn = within("connect", client.connect(a1, 1))
        .await
        .expect("connect");
    let (mut w, mut r): (FrameWriter<Msg>, FrameReader<Msg>) =
        framed_bi(&conn, 1 << 20).await.expect("open bi");
    for x in 1..=3 {
        w.write(&Msg::Ping(x)).await.expect("request");
    }
    w.finish().await.expect("finish requests");
    for x in 1..=3 {
        assert_eq!(
            within("response", r.read()).await.expect("read"),
            Some(Msg::Ping(x * 10))
        );
    }
    assert_eq!(within("end", r.read()).await.expect("clean end"), None);
    let (n1, _cc) = within("server task", server).await.expect("server task");
    n1.shutdown().await;
    n2.shutdown().await;
}

/// Waits until the server shows it refused us: the connection closes.
async fn assert_refused(conn: quinn::Connection) -> quinn::ConnectionError {
    // The first stream operation is where a TLS 1.3 refusal really shows.
    let attempt = async {
        let mut s = conn.open_uni().await?;
        s.write_all(b"hello")
            .await
            .map_err(|_| quinn::ConnectionError::LocallyClosed)?;
        let _ = s.finish();
        Ok::<_, quinn::ConnectionError>(())
    };
    let _ = within("stream attempt", attempt).await;
    within("refusal closes the connection", conn.closed()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_cert_from_another_ca_is_refused() {
    init_tracing();
    let good = tempfile::tempdir().expect("tempdir");
    let evil = tempfile::tempdir().expect("tempdir");
    certs(good.path(), &[1], &["alice"]);
    certs(evil.path(), &[1], &["alice"]);
    let n1 = bind(good.path(), 1, test_config());
    // Trusts the real CA (so the server checks out) but presents a foreign cert.
    let tls = ClientTls::from_files(
        &good.path().join("ca.pem"),
        &evil.path().join("client-alice.pem"),
        &evil.path().join("client-alice.key"),
    )
    .expect("client tls");
    let client = ClientEndpoint::new(tls).expect("client endpoint");
    match within("connect", client.connect(n1.local_addr(), 1)).await {
        Err(NetError::Connection { .. }) => {}
        Ok(conn) => {
            let reason = assert_refused(conn).await;
            assert!(
                matches!(
                    reason,
                    quinn::ConnectionError::TransportError(_)
                        | quinn::ConnectionError::ConnectionClosed(_)
                ),
                "closed by a TLS alert, got {reason:?}"
            );
        }
        Err(e) => panic!("unexpected error {e}"),
    }
    // The server saw no client.
    // Refusal was observed above, so admission (or not) already happened.
    assert!(
        n1.accept_client().now_or_never().is_none(),
        "a foreign client was admitted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_cert_under_wrong_id_is_refused() {
    init_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    certs(dir.path(), &[1, 2, 3], &["alice"]);
    let n1 = bind(dir.path(), 1, test_config());
    let n2 = bind(dir.path(), 2, test_config());
    // Dialing node 2's address while expecting node 3 fails the handshake.
    let err = within("dial", n1.connect_peer(n2.local_addr(), 3)).await;
    assert!(
        matches!(err, Err(NetError::Connection { .. })),
        "got {err:?}"
    );
    let client =
        ClientEndpoint::new(ClientTls::load(dir.path(), "alice").expect("tls")).expect("ep");
    let err = within("client dial", client.connect(n2.local_addr(), 3)).await;
    assert!(
        matches!(err, Err(NetError::Connection { .. })),
        "got {err:?}"
    );
    // The right id works.
    within("dial", n1.connect_peer(n2.local_addr(), 2))
        .await
        .expect("right id connects");
    // A node cannot claim another id: its certificate is checked at load time,
    // and on the wire identity comes only from the certificate.
    let p = dir.path();
    let err = NodeTls::from_files(
        3,
        &p.join("ca.pem"),
        &p.join("node-1.pem"),
        &p.join("node-1.key"),
    );
    assert!(matches!(err, Err(NetError::Identity(_))), "got {err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_cert_cannot_send_peer_messages() {
    init_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    certs(dir.path(), &[1, 2], &["mallory"]);
    let n1 = bind(dir.path(), 1, test_config());
    let n2 = bind(dir.path(), 2, test_config());
    let (a1, a2) = (n1.local_addr(), n2.local_addr());
    let (_tx1, mut rx1) = n1.peers::<Msg>(peer_map(&[(2, a2)])).expect("peers");
    let (tx2, _rx2) = n2.peers::<Msg>(peer_map(&[(1, a1)])).expect("peers");

    let tls = ClientTls::load(dir.path(), "mallory")
        .expect("tls")
        .with_alpn(ALPN_PEER);
    let client = ClientEndpoint::new(tls).expect("client endpoint");
    if let Ok(conn) = within("connect", client.connect(a1, 1)).await {
        // Try to inject a peer message.
        let frame = paxlog_net::encode(&Msg::Ping(666), 1024).expect("encode");
        let inject = async {
            let mut s = conn.open_uni().await.ok()?;
            s.write_all(&frame).await.ok()?;
            s.finish().ok()
        };
        let _ = within("inject", inject).await;
        match within("refused", conn.closed()).await {
            quinn::ConnectionError::ApplicationClosed(c) => {
                assert_eq!(c.error_code, close_code::REFUSED, "closed for {c:?}")
            }
            other => panic!("expected an application close, got {other:?}"),
        }
    }
    // The first message node 1 receives is node 2's, not the injected one.
    tx2.try_send(1, Msg::Ping(1)).expect("queue");
    assert_eq!(within("recv", rx1.recv()).await, Some((2, Msg::Ping(1))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_cert_on_client_alpn_is_refused() {
    init_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    certs(dir.path(), &[1, 2], &[]);
    let n1 = bind(dir.path(), 1, test_config());
    let p = dir.path();
    let tls = ClientTls::from_files(
        &p.join("ca.pem"),
        &p.join("node-2.pem"),
        &p.join("node-2.key"),
    )
    .expect("tls");
    let client = ClientEndpoint::new(tls).expect("client endpoint");
    let conn = within("connect", client.connect(n1.local_addr(), 1))
        .await
        .expect("handshake");
    match assert_refused(conn).await {
        quinn::ConnectionError::ApplicationClosed(c) => {
            assert_eq!(c.error_code, close_code::REFUSED)
        }
        other => panic!("expected an application close, got {other:?}"),
    }
    assert!(
        n1.accept_client().now_or_never().is_none(),
        "a node cert was admitted as a client"
    );
}
