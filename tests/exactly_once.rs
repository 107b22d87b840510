//! Exactly-once and one writer's order across leader SIGKILLs, on real
//! `paxlog serve` processes (issue 11, holes 0 and 1; hole 2 on the restarted
//! nodes). Two clients pipeline with a window of 256 while the leader is
//! killed by signal 9, twice, and each killed node restarts. Checked twice:
//! - through every node's read: each acknowledged value exactly once, at its
//!   acknowledged index, in its writer's submission order, the same on every
//!   node (the restarted ones included);
//! - on the raw log: every node's RocksDB directory, read after the nodes are
//!   gone, folded by a model of sessions written here (not the core's): an
//!   acknowledged value is *effective* (its session's next seq) exactly at
//!   its acknowledged index, every other copy of it is hidden, and the
//!   nodes' raw logs agree index by index.
//!
//! Seen failing on f8f3c80 (the dedup table of 64 seqs per client): after
//! the kills, values acknowledged at one index also appeared at another in
//! what nodes read back.

mod common;

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{block_on, runtime, TestCluster};
use paxlog::core::Command;
use paxlog::proto::Entry;
use paxlog_storage::{ReadLimit, RocksStore, Store};

const WINDOW: usize = 256;
const BATCH: usize = 1024;
/// Acknowledged appends between two faults.
const PHASE_ACKS: usize = 3000;

#[derive(Default)]
struct Writer {
    /// (value, acknowledged index), in submission order.
    acked: Vec<(Bytes, u64)>,
    failed: Vec<(Bytes, String)>,
}

fn start_writer(
    cluster: &TestCluster,
    name: &'static str,
    stop: Arc<AtomicBool>,
    acks: Arc<AtomicUsize>,
) -> tokio::task::JoinHandle<Writer> {
    let client = cluster.client_with_timeout(Duration::from_secs(30));
    runtime().spawn(async move {
        let mut w = Writer::default();
        let mut next = 0usize;
        while !stop.load(Ordering::Relaxed) {
            let values: Vec<Bytes> = (next..next + BATCH)
                .map(|i| Bytes::from(format!("{name}-{i}")))
                .collect();
            next += BATCH;
            let results = client.append_all(values.clone(), WINDOW).await;
            for (value, result) in values.into_iter().zip(results) {
                match result {
                    Ok(index) => {
                        w.acked.push((value, index));
                        acks.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => w.failed.push((value, e.to_string())),
                }
            }
        }
        w
    })
}

/// Polls the shared counter (not a sleep standing in for an event: the
/// condition is what is waited for, bounded by `WAIT_MAX`).
fn wait_acks(cluster: &TestCluster, acks: &AtomicUsize, n: usize) {
    let started = Instant::now();
    while acks.load(Ordering::Relaxed) < n {
        if started.elapsed() > common::WAIT_MAX {
            panic!(
                "stuck at {} of {n} acknowledged appends; statuses: {:#?}",
                acks.load(Ordering::Relaxed),
                cluster.statuses()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn kill_leader(cluster: &mut TestCluster) -> u64 {
    let leader = cluster.wait_for_leader();
    let status = cluster.kill_node(leader);
    assert_eq!(status.signal(), Some(9), "node {leader} died by SIGKILL");
    leader
}

#[test]
fn pipelined_writers_are_exactly_once_and_in_order_across_leader_kills() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
    let mut cluster = TestCluster::start(3);
    let stop = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(AtomicUsize::new(0));
    let writers = [
        start_writer(&cluster, "a", stop.clone(), acks.clone()),
        start_writer(&cluster, "b", stop.clone(), acks.clone()),
    ];
    let started = Instant::now();
    let mut phases: Vec<(&str, Duration, usize)> = Vec::new();
    let mut mark = |what| {
        let n = acks.load(Ordering::Relaxed);
        phases.push((what, started.elapsed(), n));
        n
    };

    wait_acks(&cluster, &acks, PHASE_ACKS);
    let healthy = mark("healthy");
    let first = kill_leader(&mut cluster);
    let second_leader = cluster.wait_for_leader();
    assert_ne!(second_leader, first, "a killed node cannot lead");
    wait_acks(&cluster, &acks, healthy + PHASE_ACKS);
    let after_first = mark("after the first kill");
    cluster.start_node(first);
    let second = kill_leader(&mut cluster);
    assert_ne!(
        second, first,
        "the restarted node took over before the second kill"
    );
    wait_acks(&cluster, &acks, after_first + PHASE_ACKS);
    let after_second = mark("after the second kill");
    cluster.start_node(second);
    wait_acks(&cluster, &acks, after_second + PHASE_ACKS);
    mark("all restarted");
    stop.store(true, Ordering::Relaxed);
    let writers: Vec<(&str, Writer)> = ["a", "b"]
        .into_iter()
        .zip(writers)
        .map(|(name, t)| (name, block_on(t).expect("writer task")))
        .collect();
    let mut last = (Duration::ZERO, 0);
    for (what, at, n) in phases {
        let rate = (n - last.1) as f64 / (at - last.0).as_secs_f64();
        println!(
            "{what}: {} acknowledged in {:?} ({rate:.0}/s)",
            n - last.1,
            at - last.0
        );
        last = (at, n);
    }
    for (name, w) in &writers {
        assert!(
            w.failed.is_empty(),
            "writer {name}: {} appends failed, first: {:?}",
            w.failed.len(),
            w.failed.first()
        );
    }

    let max_acked = writers
        .iter()
        .flat_map(|(_, w)| w.acked.iter().map(|(_, i)| *i))
        .max()
        .expect("acknowledged appends");
    cluster.wait_for_chosen(max_acked);
    let mut reads = Vec::new();
    for id in cluster.ids() {
        let entries = block_on(
            cluster
                .client_for_node(id, Duration::from_secs(10))
                .read(1, Some(max_acked)),
        )
        .expect("read from node");
        check_reads(id, &entries, &writers);
        reads.push((id, entries));
    }
    for (id, entries) in &reads[1..] {
        assert!(
            entries == &reads[0].1,
            "node {id} reads differently from node {}",
            reads[0].0
        );
    }

    for id in cluster.ids() {
        let status = cluster.kill_node(id);
        assert_eq!(status.signal(), Some(9));
    }
    check_raw_logs(&cluster, &writers);
}

/// What node `id` reads: each acknowledged value once, at its index, each
/// writer's values in submission order.
fn check_reads(id: u64, entries: &[Entry], writers: &[(&str, Writer)]) {
    let at: BTreeMap<u64, &Bytes> = entries.iter().map(|e| (e.index, &e.payload)).collect();
    let mut seen: BTreeMap<&Bytes, u64> = BTreeMap::new();
    for e in entries {
        if let Some(other) = seen.insert(&e.payload, e.index) {
            panic!(
                "node {id} reads {:?} at {other} and at {}",
                e.payload, e.index
            );
        }
    }
    for (name, w) in writers {
        for (value, index) in &w.acked {
            assert_eq!(
                at.get(index),
                Some(&value),
                "node {id}: {value:?} acknowledged at {index}"
            );
        }
        let order: Vec<u64> = w.acked.iter().map(|(_, i)| *i).collect();
        if let Some(pair) = order.windows(2).find(|p| p[1] <= p[0]) {
            panic!("node {id}: writer {name}'s appends out of order: {pair:?}");
        }
    }
}

/// The sessions as this test understands them: a `Register` at index r
/// opens session r (closing the one it supersedes); an append is effective
/// only as its open session's next seq.
#[derive(Default)]
struct Model {
    last_seq: BTreeMap<u64, u64>,
    closed: Vec<u64>,
    effective: BTreeMap<Index, Bytes>,
    hidden: usize,
}

type Index = u64;

impl Model {
    fn fold(&mut self, index: Index, value: &[u8]) {
        match Command::decode(value) {
            Ok(Command::Register { supersedes }) => {
                if let Some(old) = supersedes {
                    self.closed.push(old);
                }
                self.last_seq.insert(index, 0);
            }
            Ok(Command::Append {
                client_id,
                seq,
                payload,
                ..
            }) => match self.last_seq.get_mut(&client_id) {
                Some(last) if !self.closed.contains(&client_id) && seq == *last + 1 => {
                    *last = seq;
                    self.effective.insert(index, payload);
                }
                _ => self.hidden += 1,
            },
            Ok(_) => {}
            Err(e) => panic!("index {index}: undecodable command: {e}"),
        }
    }
}

fn check_raw_logs(cluster: &TestCluster, writers: &[(&str, Writer)]) {
    let mut logs: Vec<(u64, BTreeMap<Index, Bytes>)> = Vec::new();
    for id in cluster.ids() {
        let store =
            RocksStore::open_existing(&cluster.data_dir(id)).expect("open the node's store");
        let meta = store.metadata();
        assert_eq!(meta.trim_index, 0, "nothing was trimmed");
        let limit = ReadLimit {
            entries_max: usize::MAX,
            bytes_max: usize::MAX,
        };
        let log: BTreeMap<Index, Bytes> = store
            .range(1, meta.chosen_index, limit)
            .expect("read the raw log")
            .into_iter()
            .map(|(i, a)| (i, a.value))
            .collect();
        assert_eq!(
            log.len() as u64,
            meta.chosen_index,
            "node {id} holds every index up to its chosen index"
        );
        logs.push((id, log));
    }
    // Chosen entries agree index by index wherever two nodes hold them.
    let (longest_id, longest) = logs
        .iter()
        .max_by_key(|(_, l)| l.len())
        .expect("three logs");
    for (id, log) in &logs {
        if let Some((i, _)) = log.iter().find(|(i, v)| longest.get(i) != Some(v)) {
            panic!("index {i} differs between nodes {id} and {longest_id}");
        }
    }
    let mut model = Model::default();
    for (&i, v) in longest {
        model.fold(i, v);
    }
    let mut effective_at: BTreeMap<&Bytes, Vec<Index>> = BTreeMap::new();
    for (i, v) in &model.effective {
        effective_at.entry(v).or_default().push(*i);
    }
    let durable = longest.len() as u64;
    let mut checked = 0;
    for (name, w) in writers {
        for (value, index) in w.acked.iter().filter(|(_, i)| *i <= durable) {
            assert_eq!(
                effective_at.get(value).map(Vec::as_slice),
                Some(&[*index][..]),
                "writer {name}: {value:?} acknowledged at {index}; effective in the raw log at"
            );
            checked += 1;
        }
    }
    println!(
        "raw logs: {durable} indexes on node {longest_id}, {} effective appends, {} hidden \
         copies or refusals; {checked} acknowledged appends checked against them",
        model.effective.len(),
        model.hidden
    );
    assert!(checked > 0, "the raw log covers acknowledged appends");
}
