//! What clients saw, and the checks of it against what every node holds:
//! through each node's read (which hides duplicates) and on each node's raw
//! RocksDB log (which does not), read after the nodes are gone.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use paxlog::core::Command;
use paxlog::proto::Entry;
use paxlog_storage::{ReadLimit, RocksStore, Store};

use super::{block_on, TestCluster};

pub type Index = u64;

/// How an append ended, as its client reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok(Index),
    /// `ClientError::surely_not_appended()`: it must never be in a log.
    SurelyFailed(String),
    /// It may or may not have been appended; at most once, then.
    Indeterminate(String),
}

/// One append.
#[derive(Clone, Debug)]
pub struct Op {
    pub value: Bytes,
    /// No later than the append's invocation (its batch started then).
    pub invoked: Instant,
    /// No earlier than its completion.
    pub completed: Instant,
    pub outcome: Outcome,
}

/// One writer's appends, in submission order.
#[derive(Debug)]
pub struct WriterHistory {
    pub name: &'static str,
    pub ops: Vec<Op>,
}

impl WriterHistory {
    pub fn acked(&self) -> impl Iterator<Item = (&Bytes, Index)> + '_ {
        self.ops.iter().filter_map(|op| match op.outcome {
            Outcome::Ok(index) => Some((&op.value, index)),
            _ => None,
        })
    }

    pub fn surely_failed(&self) -> impl Iterator<Item = &Op> + '_ {
        self.ops
            .iter()
            .filter(|op| matches!(op.outcome, Outcome::SurelyFailed(_)))
    }

    /// (acknowledged, surely failed, indeterminate).
    pub fn tally(&self) -> (usize, usize, usize) {
        let mut tally = (0, 0, 0);
        for op in &self.ops {
            match op.outcome {
                Outcome::Ok(_) => tally.0 += 1,
                Outcome::SurelyFailed(_) => tally.1 += 1,
                Outcome::Indeterminate(_) => tally.2 += 1,
            }
        }
        tally
    }
}

pub fn max_acked(histories: &[WriterHistory]) -> Option<Index> {
    histories
        .iter()
        .flat_map(|h| h.acked().map(|(_, i)| i))
        .max()
}

/// Each writer's acknowledged indexes increase in submission order.
pub fn check_writer_order(histories: &[WriterHistory]) {
    for h in histories {
        let order: Vec<Index> = h.acked().map(|(_, i)| i).collect();
        if let Some(pair) = order.windows(2).find(|p| p[1] <= p[0]) {
            panic!(
                "writer {}'s appends acknowledged out of order: {pair:?}",
                h.name
            );
        }
    }
}

/// Real-time order across all writers: an append acknowledged before
/// another was invoked has the lower index (linearizability of appends).
/// Times are per batch (invoked no later, completed no earlier than the
/// append itself), which only makes the check miss cases, never invent one.
pub fn check_real_time(histories: &[WriterHistory]) -> usize {
    let mut acked: Vec<(&Op, Index)> = histories
        .iter()
        .flat_map(|h| &h.ops)
        .filter_map(|op| match op.outcome {
            Outcome::Ok(i) => Some((op, i)),
            _ => None,
        })
        .collect();
    let mut by_completion = acked.clone();
    by_completion.sort_by_key(|(op, _)| op.completed);
    acked.sort_by_key(|(op, _)| op.invoked);
    // Sweep the invocations in time order, folding in every append
    // completed before each: the highest index among those must be lower.
    let mut done = by_completion.iter().peekable();
    let mut highest: Option<(&Op, Index)> = None;
    let mut pairs = 0;
    for &(b, b_index) in &acked {
        while let Some(&&(a, a_index)) = done.peek().filter(|(a, _)| a.completed < b.invoked) {
            if highest.is_none_or(|(_, h)| a_index > h) {
                highest = Some((a, a_index));
            }
            done.next();
        }
        if let Some((a, a_index)) = highest {
            pairs += 1;
            assert!(
                a_index < b_index,
                "{:?} was acknowledged at {a_index} before {:?} was invoked, which got {b_index}",
                a.value,
                b.value
            );
        }
    }
    pairs
}

/// What node `id` reads: each value at most once, each acknowledged value
/// at its index, no surely-failed value.
pub fn check_read(id: u64, entries: &[Entry], histories: &[WriterHistory]) {
    let mut at: BTreeMap<&Bytes, Index> = BTreeMap::new();
    for e in entries {
        if let Some(other) = at.insert(&e.payload, e.index) {
            panic!(
                "node {id} reads {:?} at {other} and at {}",
                e.payload, e.index
            );
        }
    }
    let by_index: BTreeMap<Index, &Bytes> = entries.iter().map(|e| (e.index, &e.payload)).collect();
    for h in histories {
        for (value, index) in h.acked() {
            assert_eq!(
                by_index.get(&index),
                Some(&value),
                "node {id}: writer {}'s {value:?} was acknowledged at {index}; the read has \
                 there (and has the value at {:?})",
                h.name,
                at.get(value)
            );
        }
        for op in h.surely_failed() {
            assert!(
                !at.contains_key(&op.value),
                "node {id} reads {:?} at {:?}, an append that surely failed: {:?}",
                op.value,
                at.get(&op.value),
                op.outcome
            );
        }
    }
}

/// One node's RocksDB log, read with the node gone.
#[derive(Debug)]
pub struct RawLog {
    pub id: u64,
    /// As persisted.
    pub chosen_index: Index,
    /// Every accepted entry the store holds, chosen or not.
    pub entries: BTreeMap<Index, Bytes>,
}

impl RawLog {
    pub fn read(id: u64, data_dir: &Path) -> RawLog {
        let store = RocksStore::open_existing(data_dir).expect("open the node's store");
        let meta = store.metadata();
        assert_eq!(meta.trim_index, 0, "node {id}: nothing was trimmed");
        let limit = ReadLimit {
            entries_max: usize::MAX,
            bytes_max: usize::MAX,
        };
        let entries = store
            .range(1, store.last_index(), limit)
            .expect("read the raw log")
            .into_iter()
            .map(|(i, a)| (i, a.value))
            .collect();
        RawLog {
            id,
            chosen_index: meta.chosen_index,
            entries,
        }
    }

    /// Index → payload of every `Append` command held.
    fn appends(&self) -> BTreeMap<Index, Bytes> {
        self.entries
            .iter()
            .filter_map(|(&i, v)| match Command::decode(v) {
                Ok(Command::Append { payload, .. }) => Some((i, payload)),
                Ok(_) => None,
                Err(e) => panic!("node {}: index {i} holds no command: {e}", self.id),
            })
            .collect()
    }
}

/// The raw logs: each holds every index up to its persisted chosen index,
/// which covers `max_acked`; they agree wherever two of them are chosen;
/// every acknowledged value is at its acknowledged index on every node; no
/// surely-failed value is anywhere, chosen or merely accepted (a new
/// leader could still choose an accepted one). Returns the indexes checked.
pub fn check_raw_logs(logs: &[RawLog], histories: &[WriterHistory], max_acked: Index) -> usize {
    for log in logs {
        assert!(
            log.chosen_index >= max_acked,
            "node {}'s persisted chosen index {} is below the highest acknowledged index \
             {max_acked}",
            log.id,
            log.chosen_index
        );
        if let Some(missing) = (1..=log.chosen_index).find(|i| !log.entries.contains_key(i)) {
            panic!(
                "node {} holds no entry at {missing}, below its chosen index {}",
                log.id, log.chosen_index
            );
        }
    }
    for (n, a) in logs.iter().enumerate() {
        for b in &logs[n + 1..] {
            let common = a.chosen_index.min(b.chosen_index);
            if let Some(i) = (1..=common).find(|i| a.entries[i] != b.entries[i]) {
                panic!(
                    "index {i} is chosen differently on nodes {} and {}",
                    a.id, b.id
                );
            }
        }
    }
    let mut checked = 0;
    for log in logs {
        let appends = log.appends();
        let mut where_is: BTreeMap<&Bytes, Vec<Index>> = BTreeMap::new();
        for (i, payload) in &appends {
            where_is.entry(payload).or_default().push(*i);
        }
        for h in histories {
            for (value, index) in h.acked() {
                assert_eq!(
                    appends.get(&index),
                    Some(value),
                    "node {}'s raw log: writer {}'s {value:?} was acknowledged at {index}; \
                     the value is at {:?}",
                    log.id,
                    h.name,
                    where_is.get(value)
                );
                checked += 1;
            }
            for op in h.surely_failed() {
                assert!(
                    !where_is.contains_key(&op.value),
                    "node {}'s raw log holds {:?} at {:?}, an append that surely failed: {:?}",
                    log.id,
                    op.value,
                    where_is.get(&op.value),
                    op.outcome
                );
            }
        }
    }
    checked
}

/// Sessions as the tests understand them, independently of the core: a
/// `Register` at index r opens session r (closing the one it supersedes);
/// an append is *effective* only as its open session's next seq.
#[derive(Default)]
struct SessionModel {
    last_seq: BTreeMap<u64, u64>,
    closed: Vec<u64>,
    effective: BTreeMap<Index, Bytes>,
    hidden: usize,
}

impl SessionModel {
    fn fold(&mut self, index: Index, value: &[u8]) {
        match Command::decode(value) {
            Ok(Command::Register { supersedes }) => {
                self.closed.extend(supersedes);
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

/// Exactly-once on the raw chosen log (duplicates not hidden): folded by
/// [`SessionModel`], each acknowledged value is effective exactly at its
/// acknowledged index, and no value is effective twice. The logs agree
/// (checked by [`check_raw_logs`]), so the longest chosen prefix stands for
/// all. Returns (effective appends, hidden copies or refusals).
pub fn check_effective(logs: &[RawLog], histories: &[WriterHistory]) -> (usize, usize) {
    let longest = logs
        .iter()
        .max_by_key(|l| l.chosen_index)
        .expect("raw logs");
    let mut model = SessionModel::default();
    for i in 1..=longest.chosen_index {
        model.fold(i, &longest.entries[&i]);
    }
    let mut effective_at: BTreeMap<&Bytes, Vec<Index>> = BTreeMap::new();
    for (i, v) in &model.effective {
        effective_at.entry(v).or_default().push(*i);
    }
    if let Some((v, at)) = effective_at.iter().find(|(_, at)| at.len() > 1) {
        panic!(
            "{v:?} is effective at {at:?} in the raw log of node {}",
            longest.id
        );
    }
    for h in histories {
        for (value, index) in h.acked() {
            assert_eq!(
                effective_at.get(value).map(Vec::as_slice),
                Some(&[index][..]),
                "writer {}: {value:?} acknowledged at {index}; effective in the raw log at",
                h.name
            );
        }
    }
    (model.effective.len(), model.hidden)
}

/// The final checks: writer order, every node's read, every node's raw log.
/// Returns the history every node reads (user entries up to the fence), for
/// checks of what readers saw during the run.
pub fn check_cluster(cluster: &mut TestCluster, histories: &[WriterHistory]) -> Vec<Entry> {
    check_writer_order(histories);
    let ordered = check_real_time(histories);
    println!("real-time order held for {ordered} appends invoked after another's acknowledgement");
    let max_acked = self::max_acked(histories).expect("acknowledged appends");
    // Appended after every other acknowledgement: their Accepts carry a
    // chosen index >= max_acked, so each node persists that far when it
    // accepts them (a chosen index alone is flushed lazily).
    let fence = fence(cluster);
    let fenced = self::max_acked(std::slice::from_ref(&fence)).expect("fence indexes");
    cluster.wait_for_chosen(fenced);
    let mut reads = Vec::new();
    for id in cluster.ids() {
        let client = cluster.client_for_node(id, Duration::from_secs(10));
        let entries = block_on(client.read(1, Some(fenced))).expect("read from node");
        check_read(id, &entries, histories);
        check_read(id, &entries, std::slice::from_ref(&fence));
        reads.push((id, entries));
    }
    for (id, entries) in &reads[1..] {
        assert!(
            entries == &reads[0].1,
            "node {id} reads differently from node {}",
            reads[0].0
        );
    }
    let mut logs = Vec::new();
    for id in cluster.ids() {
        // Asserts the node died of the SIGKILL, not earlier.
        cluster.kill_node(id);
        logs.push(RawLog::read(id, &cluster.data_dir(id)));
    }
    let checked = check_raw_logs(&logs, histories, max_acked);
    let (effective, hidden) = check_effective(&logs, histories);
    println!(
        "raw logs: {effective} effective appends, {hidden} hidden copies or refusals under the \
         session model"
    );
    println!(
        "checked {} values read from each node and {checked} acknowledged appends on the raw \
         logs (up to index {max_acked})",
        reads[0].1.len()
    );
    reads.swap_remove(0).1
}

/// A few appends after the run, each acknowledged.
fn fence(cluster: &TestCluster) -> WriterHistory {
    let client = cluster.client_with_timeout(Duration::from_secs(10));
    let mut ops = Vec::new();
    for i in 0..4 {
        let value = bytes::Bytes::from(format!("fence-{i}"));
        let invoked = Instant::now();
        let index = block_on(client.append(value.clone())).expect("append after healing");
        ops.push(Op {
            value,
            invoked,
            completed: Instant::now(),
            outcome: Outcome::Ok(index),
        });
    }
    WriterHistory { name: "fence", ops }
}
