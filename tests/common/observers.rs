//! Readers running beside the writers, and the checks of what they saw
//! against the final history (what every node reads once the run is over):
//! a subscription on every node from index 1, and a tailer that takes the
//! linearizable tail through any node and then reads a slice below it from
//! each node in turn. Every subscription must be a gap-free prefix of the
//! history that never goes back, every read slice exactly the history's
//! slice, and every tail at least every index acknowledged before it was
//! invoked, and never below a tail completed before it was invoked.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use paxlog::client::{Client, Delivery};
use paxlog::proto::Entry;
use tokio::sync::watch;

use super::history::{Index, Outcome, WriterHistory};
use super::{block_on, runtime, TestCluster};

/// How far below the tail each read slice starts.
const READ_SPAN_ENTRIES: u64 = 512;
/// Short: a dead node's subscription or read gives up and retries soon.
const NODE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub struct TailOp {
    pub invoked: Instant,
    pub completed: Instant,
    pub index: Index,
}

#[derive(Debug)]
pub struct ReadOp {
    pub node: u64,
    pub from: Index,
    pub to: Index,
    pub entries: Vec<Entry>,
}

/// What the readers saw.
#[derive(Debug, Default)]
pub struct Observed {
    /// Per node: every entry its subscription delivered, in order.
    pub subscriptions: BTreeMap<u64, Vec<Entry>>,
    pub tails: Vec<TailOp>,
    pub reads: Vec<ReadOp>,
    /// Calls that failed (a node down or cut off); they prove nothing.
    pub failed: usize,
}

type Task<T> = tokio::task::JoinHandle<T>;
/// What one subscription delivered, and how many of its calls failed.
type Delivered = (Vec<Entry>, usize);

pub struct Observers {
    /// Tails answered so far: a test can make a phase last until the
    /// tailer has seen it.
    pub tails_answered: Arc<AtomicUsize>,
    stop: watch::Sender<bool>,
    subscriptions: Vec<(u64, Task<Delivered>)>,
    tailer: Task<(Vec<TailOp>, Vec<ReadOp>, usize)>,
}

impl Observers {
    pub fn start(cluster: &TestCluster) -> Observers {
        let (stop, stopped) = watch::channel(false);
        let subscriptions = cluster
            .ids()
            .into_iter()
            .map(|id| {
                let client = cluster.client_for_node(id, NODE_TIMEOUT);
                (id, runtime().spawn(subscribe(client, stopped.clone())))
            })
            .collect();
        let nodes = cluster
            .ids()
            .into_iter()
            .map(|id| (id, cluster.client_for_node(id, NODE_TIMEOUT)))
            .collect();
        let tails_answered = Arc::new(AtomicUsize::new(0));
        let tailer = runtime().spawn(tail_and_read(
            cluster.client(),
            nodes,
            stopped,
            tails_answered.clone(),
        ));
        Observers {
            tails_answered,
            stop,
            subscriptions,
            tailer,
        }
    }

    pub fn tails_answered(&self) -> usize {
        self.tails_answered.load(Ordering::Relaxed)
    }

    /// Stops every reader (a call in progress ends within its timeout).
    pub fn finish(self) -> Observed {
        self.stop.send_replace(true);
        let mut observed = Observed::default();
        for (id, task) in self.subscriptions {
            let (entries, failed) = block_on(task).expect("subscriber task");
            observed.subscriptions.insert(id, entries);
            observed.failed += failed;
        }
        let (tails, reads, failed) = block_on(self.tailer).expect("tailer task");
        observed.tails = tails;
        observed.reads = reads;
        observed.failed += failed;
        observed
    }
}

async fn subscribe(client: Client, mut stopped: watch::Receiver<bool>) -> Delivered {
    let mut entries = Vec::new();
    let mut failed = 0;
    let stream = client.subscribe(1);
    futures::pin_mut!(stream);
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            item = stream.next() => match item {
                Some(Ok(Delivery::Entry(entry))) => entries.push(entry),
                // Nothing is trimmed in these runs: a snapshot would be a gap.
                Some(Ok(Delivery::Snapshot(_))) | Some(Err(_)) => failed += 1,
                None => break,
            },
        }
    }
    (entries, failed)
}

async fn tail_and_read(
    client: Client,
    nodes: Vec<(u64, Client)>,
    stopped: watch::Receiver<bool>,
    answered: Arc<AtomicUsize>,
) -> (Vec<TailOp>, Vec<ReadOp>, usize) {
    let (mut tails, mut reads, mut failed) = (Vec::new(), Vec::new(), 0);
    for (node, reader) in nodes.iter().cycle() {
        if *stopped.borrow() {
            break;
        }
        let invoked = Instant::now();
        let index = match client.tail().await {
            Ok((index, _)) => index,
            Err(_) => {
                failed += 1;
                continue;
            }
        };
        tails.push(TailOp {
            invoked,
            completed: Instant::now(),
            index,
        });
        answered.fetch_add(1, Ordering::Relaxed);
        let from = index.saturating_sub(READ_SPAN_ENTRIES).max(1);
        match reader.read(from, Some(index)).await {
            Ok(entries) => reads.push(ReadOp {
                node: *node,
                from,
                to: index,
                entries,
            }),
            Err(_) => failed += 1,
        }
    }
    (tails, reads, failed)
}

/// The checks; `history` is what every node reads at the end (user entries
/// in index order, up to an index above everything observed). Returns a
/// one-line summary.
pub fn check(observed: &Observed, history: &[Entry], writers: &[WriterHistory]) -> String {
    let last = history.last().map_or(0, |e| e.index);
    for (node, entries) in &observed.subscriptions {
        if let Some(pair) = entries.windows(2).find(|p| p[1].index <= p[0].index) {
            panic!(
                "node {node}'s subscription went back: {} after {}",
                pair[1].index, pair[0].index
            );
        }
        let seen = entries.last().map_or(0, |e| e.index);
        assert!(
            seen <= last,
            "node {node}'s subscription delivered {seen}, beyond the history's {last}"
        );
        let prefix: Vec<&Entry> = history.iter().take_while(|e| e.index <= seen).collect();
        if let Some(k) = (0..prefix.len()).find(|&k| entries.get(k) != Some(prefix[k])) {
            panic!(
                "node {node}'s subscription is no prefix of the history: entry {k} is {:?}, \
                 the history has {:?}",
                entries.get(k),
                prefix[k]
            );
        }
    }
    for read in &observed.reads {
        assert!(
            read.to <= last,
            "a tail of {} beyond the history's {last}",
            read.to
        );
        let slice: Vec<&Entry> = history
            .iter()
            .filter(|e| (read.from..=read.to).contains(&e.index))
            .collect();
        assert!(
            read.entries.iter().eq(slice.iter().copied()),
            "node {} read [{}, {}] as {} entries (first {:?}); the history has {} there (first \
             {:?})",
            read.node,
            read.from,
            read.to,
            read.entries.len(),
            read.entries.first(),
            slice.len(),
            slice.first()
        );
    }
    let tails_checked = check_tails(&observed.tails, writers);
    let delivered: usize = observed.subscriptions.values().map(Vec::len).sum();
    format!(
        "observers: {delivered} entries delivered by {} subscriptions, {} tails ({tails_checked} \
         invoked after an acknowledgement), {} read slices, {} calls failed",
        observed.subscriptions.len(),
        observed.tails.len(),
        observed.reads.len(),
        observed.failed
    )
}

/// A tail is at least every index acknowledged, and every tail completed,
/// before it was invoked. Append times are per batch (invoked no later,
/// completed no earlier than the append), so the check may miss a case,
/// never invent one.
fn check_tails(tails: &[TailOp], writers: &[WriterHistory]) -> usize {
    let mut done: Vec<(Instant, Index, &'static str)> = writers
        .iter()
        .flat_map(|h| {
            h.ops.iter().filter_map(move |op| match op.outcome {
                Outcome::Ok(index) => Some((op.completed, index, "append")),
                _ => None,
            })
        })
        .chain(tails.iter().map(|t| (t.completed, t.index, "tail")))
        .collect();
    done.sort_by_key(|d| d.0);
    let mut by_invocation: Vec<&TailOp> = tails.iter().collect();
    by_invocation.sort_by_key(|t| t.invoked);
    let mut done = done.into_iter().peekable();
    let mut highest: Option<(Index, &str)> = None;
    let mut checked = 0;
    for tail in by_invocation {
        while let Some((_, index, what)) = done.next_if(|d| d.0 < tail.invoked) {
            if highest.is_none_or(|(h, _)| index > h) {
                highest = Some((index, what));
            }
        }
        if let Some((index, what)) = highest {
            checked += 1;
            assert!(
                tail.index >= index,
                "a tail invoked after an {what} completed at {index} answered {}",
                tail.index
            );
        }
    }
    checked
}
