//! The fault-injecting UDP proxy of the test harness (tests/common/proxy.rs),
//! on plain UDP sockets standing in for two nodes: what it forwards, drops,
//! duplicates and delays, that its counters say so, and that it lets go of
//! its sockets when dropped, a panicking test included.
//!
//! No sleep stands in for an event: "nothing arrived" is shown by a marker
//! sent after the fault is lifted arriving first; receive timeouts only
//! bound a test that would otherwise hang.

mod common;

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use common::proxy::{seed_from_env, Counts, Network, Rule, DELAYED_MAX};

const MARKER: &[u8] = b"marker";

/// Node 1 and node 2 as bare sockets, and the network between them.
struct Pair {
    one: UdpSocket,
    two: UdpSocket,
    net: Network,
    /// Datagrams node 1 sent node 2, on either proxy.
    sent: std::cell::Cell<u64>,
}

impl Pair {
    fn new() -> Pair {
        let one = socket();
        let two = socket();
        let nodes: BTreeMap<u64, SocketAddr> = [
            (1, one.local_addr().expect("addr")),
            (2, two.local_addr().expect("addr")),
        ]
        .into();
        let net = Network::start(&nodes, seed_from_env()).expect("start the proxies");
        Pair {
            one,
            two,
            net,
            sent: Default::default(),
        }
    }

    /// Node 1 sends on the connection it dials to node 2.
    fn one_dials_two(&self, datagram: &[u8]) {
        self.one_sends(datagram, self.net.dial_addrs(1)[&2]);
    }

    /// Node 1 sends to `proxy`: its own dial's, or the one node 2 dials it through.
    fn one_sends(&self, datagram: &[u8], proxy: SocketAddr) {
        self.one.send_to(datagram, proxy).expect("send");
        self.sent.set(self.sent.get() + 1);
    }

    /// Waits until the proxies took in what node 1 sent: a rule changed
    /// before then would apply to datagrams sent under the old one.
    fn settle(&self) {
        let sent = self.sent.get();
        wait_until("the proxies to take in node 1's datagrams", || {
            self.counts(1, 2).received >= sent
        });
    }

    fn counts(&self, from: u64, to: u64) -> Counts {
        self.net.counts()[&(from, to)]
    }

    /// Sends `n` datagrams from node 1 to node 2, in chunks that the proxy
    /// has taken in (counted) before the next goes: a burst larger than a
    /// socket buffer would lose datagrams in the kernel, not in the proxy.
    fn send_paced(&self, n: usize) {
        for chunk in (0..n).collect::<Vec<_>>().chunks(64) {
            for i in chunk {
                self.one_dials_two(format!("{i}").as_bytes());
            }
            self.settle();
        }
    }
}

/// Polls `done` (the condition is what is waited for), at most 10 s.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "waited for {what} in vain"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn socket() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    // Only a bound on a broken proxy; every receive below expects data.
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s
}

fn recv(s: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = [0u8; 2048];
    let (n, from) = s.recv_from(&mut buf).expect("a datagram within 10 s");
    (buf[..n].to_vec(), from)
}

/// Every datagram up to the marker, which is sent once the fault is lifted.
fn until_marker(p: &Pair) -> Vec<Vec<u8>> {
    p.settle();
    p.net.heal();
    p.one_dials_two(MARKER);
    let mut got = Vec::new();
    loop {
        let (d, _) = recv(&p.two);
        if d == MARKER {
            return got;
        }
        got.push(d);
    }
}

#[test]
fn forwards_both_ways_and_counts_per_directed_pair() {
    let p = Pair::new();
    p.one_dials_two(b"ping");
    let (d, proxy) = recv(&p.two);
    assert_eq!(d, b"ping");
    p.two.send_to(b"pong", proxy).expect("answer");
    let (d, from) = recv(&p.one);
    assert_eq!(d, b"pong");
    assert_eq!(
        from,
        p.net.dial_addrs(1)[&2],
        "the answer comes from the proxy"
    );
    assert_eq!(p.counts(1, 2).forwarded, 1);
    assert_eq!(p.counts(2, 1).forwarded, 1);
}

#[test]
fn a_block_withholds_one_direction_on_both_proxies_between_the_nodes() {
    let p = Pair::new();
    p.net.set(1, 2, Rule::blocked());
    for _ in 0..10 {
        p.one_dials_two(b"lost");
    }
    assert!(until_marker(&p).is_empty(), "blocked datagrams arrived");
    assert_eq!(p.counts(1, 2).dropped, 10);

    // Node 2's own dial: 2 to 1 passes, 1's answer to 2 is withheld.
    let via = p.net.dial_addrs(2)[&1];
    p.two.send_to(b"hello", via).expect("send");
    let (d, proxy) = recv(&p.one);
    assert_eq!(d, b"hello");
    p.net.set(1, 2, Rule::blocked());
    p.one_sends(b"lost answer", proxy);
    p.settle();
    p.net.heal();
    p.one_sends(MARKER, proxy);
    let (d, _) = recv(&p.two);
    assert_eq!(d, MARKER, "the blocked answer arrived");
    assert_eq!(p.counts(1, 2).dropped, 11);
    assert_eq!(p.counts(2, 1).dropped, 0);
}

#[test]
fn drops_at_random_with_the_given_probability() {
    let p = Pair::new();
    p.net.set(
        1,
        2,
        Rule {
            drop: 0.5,
            ..Rule::default()
        },
    );
    let sent = 400;
    let receiver = std::thread::scope(|s| {
        let receiver = s.spawn(|| {
            let mut got = 0;
            while recv(&p.two).0 != MARKER {
                got += 1;
            }
            got
        });
        p.send_paced(sent as usize);
        p.settle();
        p.net.heal();
        p.one_dials_two(MARKER);
        receiver.join().expect("receiver")
    });
    let c = p.counts(1, 2);
    assert_eq!(c.received, sent + 1, "{c:?}");
    assert_eq!(c.forwarded + c.dropped, c.received, "{c:?}");
    assert!((120..=280).contains(&c.dropped), "{c:?}");
    assert_eq!(
        receiver,
        c.forwarded - 1,
        "what arrived is what was forwarded"
    );
}

#[test]
fn duplicates_with_the_given_probability() {
    let p = Pair::new();
    p.net.set(
        1,
        2,
        Rule {
            duplicate: 1.0,
            ..Rule::default()
        },
    );
    for i in 0..20 {
        p.one_dials_two(format!("{i}").as_bytes());
    }
    // The marker is duplicated too unless the rule is lifted first.
    let got = until_marker(&p);
    assert_eq!(got.len(), 40);
    let c = p.counts(1, 2);
    assert_eq!((c.duplicated, c.forwarded), (20, 41), "{c:?}");
}

#[test]
fn random_delays_reorder_and_a_block_catches_delayed_datagrams() {
    let p = Pair::new();
    let delay = Rule {
        delay: Some((Duration::from_millis(10), Duration::from_millis(200))),
        ..Rule::default()
    };
    p.net.set(1, 2, delay);
    let sent: Vec<Vec<u8>> = (0..50).map(|i| format!("{i}").into_bytes()).collect();
    for d in &sent {
        p.one_dials_two(d);
    }
    let got: Vec<Vec<u8>> = (0..sent.len()).map(|_| recv(&p.two).0).collect();
    let mut sorted = got.clone();
    sorted.sort_by_key(|d| String::from_utf8_lossy(d).parse::<u32>().expect("number"));
    assert_eq!(sorted, sent, "every delayed datagram arrives once");
    assert_ne!(got, sent, "50 random delays left the order as it was");
    assert_eq!(p.counts(1, 2).delayed, 50);

    // Held back when the block comes: withheld too.
    let before = p.counts(1, 2);
    p.net.set(1, 2, delay);
    for d in &sent {
        p.one_dials_two(d);
    }
    wait_until("the proxy to hold every datagram", || {
        p.counts(1, 2).delayed - before.delayed == 50
    });
    p.net.set(1, 2, Rule::blocked());
    wait_until("every held datagram to come due", || {
        let c = p.counts(1, 2) - before;
        c.forwarded + c.dropped == 50
    });
    let c = p.counts(1, 2) - before;
    assert!(
        c.dropped > 0,
        "the block came after every delay ended: {c:?}"
    );
    assert_eq!(until_marker(&p).len() as u64, c.forwarded);
}

#[test]
fn the_delay_queue_is_bounded() {
    let p = Pair::new();
    p.net.set(
        1,
        2,
        Rule {
            delay: Some((Duration::from_secs(600), Duration::from_secs(600))),
            ..Rule::default()
        },
    );
    let over = 100;
    p.send_paced(DELAYED_MAX + over);
    // The marker, sent last, arrives first: every earlier datagram was held
    // or dropped.
    assert!(until_marker(&p).is_empty());
    let c = p.counts(1, 2);
    assert_eq!(c.delayed, DELAYED_MAX as u64, "{c:?}");
    assert_eq!(c.dropped, over as u64, "{c:?}");
    // Dropping the network with datagrams held for ten minutes does not wait for them.
    let started = std::time::Instant::now();
    drop(p);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn dropping_the_network_closes_its_sockets_even_when_the_test_panics() {
    let (tx, rx) = std::sync::mpsc::channel();
    let outcome = std::panic::catch_unwind(move || {
        let p = Pair::new();
        tx.send(p.net.dial_addrs(1)[&2]).expect("send the address");
        panic!("a test failing with the proxies up");
    });
    assert!(outcome.is_err());
    let listen = rx.recv().expect("the proxy's address");
    UdpSocket::bind(listen).expect("the proxy's port is free again");
}
