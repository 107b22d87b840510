//! A user-space UDP proxy on every directed peer link of a real cluster, so
//! tests can drop, delay, duplicate and reorder datagrams between `paxlog
//! serve` processes without kernel modules (CI has none).
//!
//! One proxy per directed dial: node A dials B at the proxy's listen socket,
//! and the proxy's upstream socket talks to B. Both directions are
//! forwarded, because QUIC needs B's answers (handshake, ACKs) to reach A on
//! the connection A dialed. So what A sends B crosses both proxies between
//! them: A's packets on A's connection, A's answers on B's connection. A
//! [`Rule`] is therefore keyed by directed *node pair* and applies to every
//! datagram from A to B, whichever proxy carries it; [`Counts`] too.
//!
//! The proxies run on a runtime of their own, dropped with the [`Network`]
//! (a panicking test included), which closes every socket. Randomness comes
//! from one seed, printed at start; thread timing still varies between runs.

use std::collections::BTreeMap;
use std::io;
use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::ops::Sub;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::net::UdpSocket;

pub type NodeId = u64;
/// A directed node pair: datagrams from `.0` to `.1`.
pub type Pair = (NodeId, NodeId);

/// Datagrams held back for a delay, per proxy; past it a datagram that
/// should be delayed is dropped instead, so a long delay cannot hoard memory.
pub const DELAYED_MAX: usize = 4096;
/// Larger than any UDP payload, so no datagram is truncated.
const DATAGRAM_BYTES_MAX: usize = 65_536;

/// What happens to datagrams from one node to another.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rule {
    /// Drop every datagram.
    pub blocked: bool,
    /// Probability that a datagram is dropped.
    pub drop: f64,
    /// Probability that a datagram is sent twice.
    pub duplicate: f64,
    /// Each copy waits a uniformly random time in this range, so datagrams
    /// overtake each other.
    pub delay: Option<(Duration, Duration)>,
}

impl Rule {
    pub fn blocked() -> Rule {
        Rule {
            blocked: true,
            ..Rule::default()
        }
    }

    fn check(&self) {
        for (what, p) in [("drop", self.drop), ("duplicate", self.duplicate)] {
            assert!(
                (0.0..=1.0).contains(&p),
                "{what} probability {p} not in 0..=1"
            );
        }
        if let Some((min, max)) = self.delay {
            assert!(min <= max, "delay range {min:?}..={max:?} is empty");
        }
    }
}

/// What the proxies did with the datagrams of one directed pair.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Datagrams that reached the proxy: once all delays are over,
    /// `received + duplicated == forwarded + dropped`.
    pub received: u64,
    /// Copies sent on, duplicates included.
    pub forwarded: u64,
    /// Withheld: blocked, dropped at random, or no room to delay them.
    pub dropped: u64,
    /// Extra copies made.
    pub duplicated: u64,
    /// Copies held back before being sent.
    pub delayed: u64,
}

impl Sub for Counts {
    type Output = Counts;
    fn sub(self, earlier: Counts) -> Counts {
        Counts {
            received: self.received - earlier.received,
            forwarded: self.forwarded - earlier.forwarded,
            dropped: self.dropped - earlier.dropped,
            duplicated: self.duplicated - earlier.duplicated,
            delayed: self.delayed - earlier.delayed,
        }
    }
}

impl std::iter::Sum for Counts {
    fn sum<I: Iterator<Item = Counts>>(iter: I) -> Counts {
        iter.fold(Counts::default(), |a, b| Counts {
            received: a.received + b.received,
            forwarded: a.forwarded + b.forwarded,
            dropped: a.dropped + b.dropped,
            duplicated: a.duplicated + b.duplicated,
            delayed: a.delayed + b.delayed,
        })
    }
}

/// One directed pair's rule and counters, shared by the two proxies that
/// carry its datagrams.
#[derive(Debug, Default)]
struct Link {
    rule: Mutex<Rule>,
    received: AtomicU64,
    forwarded: AtomicU64,
    dropped: AtomicU64,
    duplicated: AtomicU64,
    delayed: AtomicU64,
}

impl Link {
    fn rule(&self) -> Rule {
        *self.rule.lock().expect("rule lock")
    }

    fn counts(&self) -> Counts {
        Counts {
            received: self.received.load(Ordering::Relaxed),
            forwarded: self.forwarded.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            duplicated: self.duplicated.load(Ordering::Relaxed),
            delayed: self.delayed.load(Ordering::Relaxed),
        }
    }

    fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Every directed peer link of a cluster, proxied; see the module docs.
#[derive(Debug)]
pub struct Network {
    /// Taken in `drop`: shutting it down ends every proxy task.
    runtime: Option<tokio::runtime::Runtime>,
    links: BTreeMap<Pair, Arc<Link>>,
    /// Per dialing node, where it reaches each peer: its proxies' listen sockets.
    dial: BTreeMap<NodeId, BTreeMap<NodeId, SocketAddr>>,
}

impl Network {
    /// Proxies for every directed dial between `nodes` (id → where it
    /// listens); no rule yet, so everything is forwarded.
    pub fn start(nodes: &BTreeMap<NodeId, SocketAddr>, seed: u64) -> io::Result<Network> {
        println!("udp proxy seed {seed} (PAXLOG_PROXY_SEED={seed} repeats its choices)");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("udp-proxy")
            .enable_all()
            .build()?;
        let mut links = BTreeMap::new();
        for &a in nodes.keys() {
            for &b in nodes.keys().filter(|&&b| b != a) {
                links.insert((a, b), Arc::new(Link::default()));
            }
        }
        let mut dial: BTreeMap<NodeId, BTreeMap<NodeId, SocketAddr>> = BTreeMap::new();
        for (n, (&(a, b), link)) in links.iter().enumerate() {
            let listen = StdUdpSocket::bind("127.0.0.1:0")?;
            let upstream = StdUdpSocket::bind("127.0.0.1:0")?;
            dial.entry(a).or_default().insert(b, listen.local_addr()?);
            let proxy = Proxy {
                target: nodes[&b],
                outbound: link.clone(),
                inbound: links[&(b, a)].clone(),
                delayed: Arc::new(AtomicUsize::new(0)),
            };
            // Distinct streams per proxy and direction, all from the one seed.
            let rng = |direction: u64| ChaCha8Rng::seed_from_u64(seed ^ (n as u64 * 2 + direction));
            let _guard = runtime.enter();
            proxy.spawn(listen, upstream, rng(0), rng(1))?;
        }
        Ok(Network {
            runtime: Some(runtime),
            links,
            dial,
        })
    }

    pub fn nodes(&self) -> Vec<NodeId> {
        self.dial.keys().copied().collect()
    }

    /// Where node `from` must dial each peer (`paxlog serve --peer-via`).
    pub fn dial_addrs(&self, from: NodeId) -> BTreeMap<NodeId, SocketAddr> {
        self.dial.get(&from).cloned().unwrap_or_default()
    }

    /// Applies `rule` to every datagram from `from` to `to` from now on.
    pub fn set(&self, from: NodeId, to: NodeId, rule: Rule) {
        rule.check();
        let link = self
            .links
            .get(&(from, to))
            .unwrap_or_else(|| panic!("no link from {from} to {to}"));
        *link.rule.lock().expect("rule lock") = rule;
    }

    /// Every link back to forwarding everything at once.
    pub fn heal(&self) {
        for &(from, to) in self.links.keys() {
            self.set(from, to, Rule::default());
        }
    }

    /// Every directed pair's counters so far.
    pub fn counts(&self) -> BTreeMap<Pair, Counts> {
        self.links
            .iter()
            .map(|(&pair, link)| (pair, link.counts()))
            .collect()
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

/// The seed of this run: `PAXLOG_PROXY_SEED` if set, else from the clock.
pub fn seed_from_env() -> u64 {
    match std::env::var("PAXLOG_PROXY_SEED") {
        Ok(s) => s.parse().expect("PAXLOG_PROXY_SEED is a u64"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos() as u64,
    }
}

/// The proxy of one directed dial: the dialer talks to its listen socket,
/// its upstream socket talks to `target`.
struct Proxy {
    target: SocketAddr,
    /// Dialer to target.
    outbound: Arc<Link>,
    /// Target to dialer.
    inbound: Arc<Link>,
    /// Copies waiting out a delay, in both directions.
    delayed: Arc<AtomicUsize>,
}

impl Proxy {
    fn spawn(
        self,
        listen: StdUdpSocket,
        upstream: StdUdpSocket,
        out_rng: ChaCha8Rng,
        in_rng: ChaCha8Rng,
    ) -> io::Result<()> {
        listen.set_nonblocking(true)?;
        upstream.set_nonblocking(true)?;
        let listen = Arc::new(UdpSocket::from_std(listen)?);
        let upstream = Arc::new(UdpSocket::from_std(upstream)?);
        // The dialer's address is learned from its datagrams; a restarted
        // node keeps its port, but following the latest source costs nothing.
        let dialer: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let target = self.target;
        let learned = dialer.clone();
        tokio::spawn(pump(
            Hop {
                input: listen.clone(),
                output: upstream.clone(),
                link: self.outbound,
                delayed: self.delayed.clone(),
            },
            move |from| *learned.lock().expect("dialer lock") = Some(from),
            move || Some(target),
            out_rng,
        ));
        tokio::spawn(pump(
            Hop {
                input: upstream,
                output: listen,
                link: self.inbound,
                delayed: self.delayed,
            },
            |_| {},
            move || *dialer.lock().expect("dialer lock"),
            in_rng,
        ));
        Ok(())
    }
}

/// One direction of a proxy.
struct Hop {
    input: Arc<UdpSocket>,
    output: Arc<UdpSocket>,
    link: Arc<Link>,
    delayed: Arc<AtomicUsize>,
}

/// Forwards datagrams from `hop.input` to `dest()` under the link's rule
/// until the runtime shuts down.
async fn pump(
    hop: Hop,
    on_source: impl Fn(SocketAddr),
    dest: impl Fn() -> Option<SocketAddr>,
    mut rng: ChaCha8Rng,
) {
    let mut buf = vec![0u8; DATAGRAM_BYTES_MAX];
    loop {
        let (len, from) = match hop.input.recv_from(&mut buf).await {
            Ok(received) => received,
            // An ICMP error from an earlier send (a node restarting); the
            // socket itself is fine.
            Err(e) if is_transient(&e) => continue,
            Err(e) => {
                eprintln!("udp proxy: receive failed, this hop stops: {e}");
                return;
            }
        };
        on_source(from);
        let link = &hop.link;
        Link::count(&link.received);
        let rule = link.rule();
        if rule.blocked || (rule.drop > 0.0 && rng.gen_bool(rule.drop)) {
            Link::count(&link.dropped);
            continue;
        }
        let Some(to) = dest() else {
            Link::count(&link.dropped);
            continue;
        };
        let copies = if rule.duplicate > 0.0 && rng.gen_bool(rule.duplicate) {
            Link::count(&link.duplicated);
            2
        } else {
            1
        };
        for _ in 0..copies {
            let Some((min, max)) = rule.delay else {
                send(&hop.output, link, &buf[..len], to).await;
                continue;
            };
            if hop.delayed.fetch_add(1, Ordering::Relaxed) >= DELAYED_MAX {
                hop.delayed.fetch_sub(1, Ordering::Relaxed);
                Link::count(&link.dropped);
                continue;
            }
            Link::count(&link.delayed);
            let wait = rng.gen_range(min..=max);
            let datagram = buf[..len].to_vec();
            let (output, link, delayed) = (hop.output.clone(), link.clone(), hop.delayed.clone());
            tokio::spawn(async move {
                // The delay is the fault being injected, not synchronization.
                tokio::time::sleep(wait).await;
                // A block set meanwhile withholds it too, so "isolated"
                // means nothing gets through, however late.
                if link.rule().blocked {
                    Link::count(&link.dropped);
                } else {
                    send(&output, &link, &datagram, to).await;
                }
                delayed.fetch_sub(1, Ordering::Relaxed);
            });
        }
    }
}

async fn send(socket: &UdpSocket, link: &Link, datagram: &[u8], to: SocketAddr) {
    // Counted first: whoever receives the datagram must find it counted.
    Link::count(&link.forwarded);
    if socket.send_to(datagram, to).await.is_err() {
        // What a lossy network does with a datagram it cannot deliver.
        link.forwarded.fetch_sub(1, Ordering::Relaxed);
        Link::count(&link.dropped);
    }
}

fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset
    )
}
