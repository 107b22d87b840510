//! One contract, two stores: every test here is written once against
//! [`Harness`] and instantiated for `MemStore` and `RocksStore`.

mod common;

use std::collections::BTreeMap;

use bytes::Bytes;
#[cfg(feature = "rocksdb")]
use common::RocksHarness;
use common::{accepted, accepts, identity, value_of, Harness, MemHarness};
use paxlog_storage::{
    Accepted, Ballot, Health, Index, Metadata, ReadLimit, Store, StoreError, WriteBatch,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestRunner};

const NO_LIMIT: ReadLimit = ReadLimit {
    entries_max: usize::MAX,
    bytes_max: usize::MAX,
};

fn promise_survives_reopen<H: Harness>() {
    let id = identity(1);
    let mut h = H::new();
    let store = h.open(&id).expect("open");
    assert_eq!(store.metadata(), Metadata::default());
    let b1 = Ballot::new(3, 2);
    store
        .write(&WriteBatch {
            promise: Some(b1),
            ..WriteBatch::default()
        })
        .expect("write");
    assert_eq!(store.metadata().promised, b1);
    let store = h.reopen(store, &id).expect("reopen");
    assert_eq!(store.metadata().promised, b1);

    let b2 = Ballot::new(4, 1);
    let mut batch = accepts(b2, 1..=3);
    batch.promise = Some(b2);
    batch.chosen_index = Some(2);
    store.write(&batch).expect("write");
    let store = h.reopen(store, &id).expect("reopen");
    let meta = store.metadata();
    assert_eq!(
        meta,
        Metadata {
            promised: b2,
            chosen_index: 2,
            trim_index: 0
        }
    );
    assert_eq!(store.last_index(), 3);
    assert_eq!(store.health(), Health::Ok);
}

fn accepted_values_round_trip<H: Harness>() {
    let id = identity(1);
    let mut h = H::new();
    let store = h.open(&id).expect("open");
    let b = Ballot::new(1, 1);
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let values: Vec<(Index, Accepted)> = vec![
        (1, accepted(b, b"")),
        (
            2,
            accepted(Ballot::new(u64::MAX, u64::MAX), &[0, 255, 0, 1]),
        ),
        (3, accepted(b, &big)),
        (u64::MAX - 1, accepted(b, b"near the end")),
    ];
    store
        .write(&WriteBatch {
            accepts: values.clone(),
            ..WriteBatch::default()
        })
        .expect("write");
    let check = |store: &H::S| {
        for (index, want) in &values {
            assert_eq!(
                store.get(*index).expect("get").as_ref(),
                Some(want),
                "index {index}"
            );
        }
        assert_eq!(store.get(4).expect("get hole"), None);
        assert_eq!(store.range(0, u64::MAX, NO_LIMIT).expect("range"), values);
        assert_eq!(store.last_index(), u64::MAX - 1);
    };
    check(&store);
    let store = h.reopen(store, &id).expect("reopen");
    check(&store);

    // A later accept at an index replaces the earlier one.
    let replaced = accepted(Ballot::new(2, 3), b"replaced");
    store
        .write(&WriteBatch {
            accepts: vec![(2, replaced.clone())],
            ..WriteBatch::default()
        })
        .expect("write");
    assert_eq!(store.get(2).expect("get"), Some(replaced));
}

fn failed_write_leaves_nothing_and_store_stays_failed<H: Harness>() {
    let id = identity(1);
    let mut h = H::new();
    let store = h.open(&id).expect("open");
    let b1 = Ballot::new(1, 1);
    let mut first = accepts(b1, 1..=5);
    first.promise = Some(b1);
    first.chosen_index = Some(3);
    store.write(&first).expect("write");
    let meta_before = store.metadata();

    H::fail_next_write(&store);
    let b2 = Ballot::new(2, 1);
    let mut second = accepts(b2, 4..=8);
    second.promise = Some(b2);
    second.chosen_index = Some(6);
    second.trim_index = Some(2);
    let err = store.write(&second).expect_err("injected failure");
    assert!(matches!(err, StoreError::Io(_)), "{err:?}");
    let check_unchanged = |store: &H::S| {
        assert_eq!(store.metadata(), meta_before);
        assert_eq!(store.last_index(), 5);
        for i in 1..=5 {
            assert_eq!(
                store.get(i).expect("get").map(|a| a.ballot),
                Some(b1),
                "index {i}"
            );
        }
        for i in 6..=8 {
            assert_eq!(store.get(i).expect("get"), None, "index {i}");
        }
    };
    check_unchanged(&store);
    // Fail-stop: every later write is refused, including an empty one.
    for batch in [first.clone(), WriteBatch::default()] {
        assert!(matches!(store.write(&batch), Err(StoreError::Failed)));
        assert!(matches!(store.repair(&batch), Err(StoreError::Failed)));
    }
    check_unchanged(&store);

    // A restart is a new process: the store opens with only the first batch.
    let store = h.reopen(store, &id).expect("reopen");
    check_unchanged(&store);
    store.write(&second).expect("write after restart");
    assert_eq!(store.metadata().promised, b2);
}

fn range_reads_respect_limits_and_skip_holes<H: Harness>() {
    let id = identity(1);
    let mut h = H::new();
    let store = h.open(&id).expect("open");
    let b = Ballot::new(1, 1);
    let sized = |i: Index, n: usize| (i, accepted(b, &vec![i as u8; n]));
    let entries = vec![
        sized(1, 10),
        sized(2, 10),
        sized(4, 100),
        sized(7, 10),
        sized(8, 10),
    ];
    store
        .write(&WriteBatch {
            accepts: entries.clone(),
            ..WriteBatch::default()
        })
        .expect("write");
    let indexes = |v: Vec<(Index, Accepted)>| v.into_iter().map(|(i, _)| i).collect::<Vec<_>>();
    let read = |from, to, entries_max, bytes_max| {
        indexes(
            store
                .range(
                    from,
                    to,
                    ReadLimit {
                        entries_max,
                        bytes_max,
                    },
                )
                .expect("range"),
        )
    };
    assert_eq!(read(1, 8, usize::MAX, usize::MAX), vec![1, 2, 4, 7, 8]);
    assert_eq!(read(1, 8, 2, usize::MAX), vec![1, 2]);
    assert_eq!(read(3, 6, usize::MAX, usize::MAX), vec![4]);
    assert_eq!(read(5, 6, usize::MAX, usize::MAX), Vec::<Index>::new());
    assert_eq!(read(2, 7, usize::MAX, 110), vec![2, 4]);
    assert_eq!(read(2, 7, usize::MAX, 109), vec![2]);
    // At least one entry, even when it alone exceeds the byte limit.
    assert_eq!(read(3, 8, usize::MAX, 1), vec![4]);
    assert_eq!(read(3, 8, 0, 0), vec![4]);
    assert_eq!(read(8, 1, usize::MAX, usize::MAX), Vec::<Index>::new());
    assert_eq!(
        read(0, u64::MAX, usize::MAX, usize::MAX),
        vec![1, 2, 4, 7, 8]
    );
    assert_eq!(store.range(1, 8, NO_LIMIT).expect("range"), entries);
}

fn trim_reads_below_say_trimmed_and_survive_reopen<H: Harness>() {
    let id = identity(1);
    let mut h = H::new();
    let store = h.open(&id).expect("open");
    let b = Ballot::new(1, 1);
    store.write(&accepts(b, 1..=10)).expect("write");
    assert_eq!(store.trim_state().expect("trim state"), None);
    store
        .write(&WriteBatch {
            trim_index: Some(4),
            trim_state: Some(Bytes::from_static(b"table at 4")),
            ..WriteBatch::default()
        })
        .expect("trim");
    let check = |store: &H::S| {
        assert_eq!(store.metadata().trim_index, 4);
        assert_eq!(
            store.trim_state().expect("trim state"),
            Some(Bytes::from_static(b"table at 4")),
            "the state written with the trim survives it"
        );
        for i in 1..=4 {
            match store.get(i) {
                Err(StoreError::Trimmed { index, first }) => assert_eq!((index, first), (i, 5)),
                other => panic!("get({i}) below the trim point gave {other:?}"),
            }
        }
        assert!(matches!(
            store.range(2, 10, NO_LIMIT),
            Err(StoreError::Trimmed { index: 2, first: 5 })
        ));
        assert_eq!(store.get(5).expect("get"), Some(accepted(b, &value_of(5))));
        let held: Vec<Index> = store
            .range(5, 10, NO_LIMIT)
            .expect("range")
            .into_iter()
            .map(|(i, _)| i)
            .collect();
        assert_eq!(held, (5..=10).collect::<Vec<_>>());
        assert_eq!(store.last_index(), 10);
    };
    check(&store);
    // A trim point not above the current one is ignored.
    store
        .write(&WriteBatch {
            trim_index: Some(2),
            ..WriteBatch::default()
        })
        .expect("write");
    check(&store);
    let store = h.reopen(store, &id).expect("reopen");
    check(&store);

    // Accepts at trimmed indexes in the same batch are deleted; last_index
    // never falls below the trim point.
    let mut batch = accepts(b, 11..=12);
    batch.trim_index = Some(20);
    store.write(&batch).expect("write");
    assert!(matches!(
        store.get(12),
        Err(StoreError::Trimmed { first: 21, .. })
    ));
    assert_eq!(store.last_index(), 20);
    let store = h.reopen(store, &id).expect("reopen");
    assert_eq!(store.last_index(), 20);
    assert_eq!(store.range(21, 30, NO_LIMIT).expect("range"), vec![]);
}

fn identity_mismatch_is_refused<H: Harness>() {
    let id = identity(1);
    let mut h = H::new();
    let store = h.open(&id).expect("open");
    store
        .write(&accepts(Ballot::new(1, 1), 1..=2))
        .expect("write");
    drop(store);
    let other_node = identity(2);
    let other_cluster = paxlog_storage::Identity {
        cluster_id: "other".to_string(),
        node_id: 1,
    };
    for wrong in [&other_node, &other_cluster] {
        match h.open(wrong) {
            Err(StoreError::WrongIdentity {
                expected_cluster,
                expected_node,
                found_cluster,
                found_node,
            }) => {
                assert_eq!(
                    (expected_cluster.as_str(), expected_node),
                    (wrong.cluster_id.as_str(), wrong.node_id)
                );
                assert_eq!((found_cluster.as_str(), found_node), ("test-cluster", 1));
            }
            other => panic!("open as {wrong:?} gave {other:?}"),
        }
    }
    let store = h.open(&id).expect("owner still opens");
    assert_eq!(store.identity(), &id);
    assert_eq!(store.last_index(), 2);
}

fn incarnation_is_nonzero_and_survives_reopen<H: Harness>() {
    let id = identity(1);
    let mut h = H::new();
    let store = h.open(&id).expect("open");
    let incarnation = store.incarnation();
    assert_ne!(incarnation, 0);
    let b = Ballot::new(1, 1);
    let mut batch = accepts(b, 1..=2);
    batch.promise = Some(b);
    store.write(&batch).expect("write");
    let store = h.reopen(store, &id).expect("reopen");
    assert_eq!(store.incarnation(), incarnation);
    assert_eq!(store.last_index(), 2);

    // The node and its writer share the store through an `Arc`.
    let shared = std::sync::Arc::new(store);
    assert_eq!(Store::incarnation(&shared), incarnation);
    drop(shared);

    // Neither a refused open nor suspect voting state changes it.
    assert!(h.open(&identity(2)).is_err());
    let store = h.open(&id).expect("owner still opens");
    assert_eq!(store.incarnation(), incarnation);
    let store = h.make_suspect(store, &id);
    assert!(matches!(store.health(), Health::Suspect { .. }));
    assert_eq!(store.incarnation(), incarnation);
}

fn suspect_survives_reopen_until_repaired<H: Harness>() {
    let id = identity(1);
    let mut h = H::new();
    let store = h.open(&id).expect("open");
    let b = Ballot::new(5, 1);
    let mut batch = accepts(b, 1..=3);
    batch.promise = Some(b);
    store.write(&batch).expect("write");
    let store = h.make_suspect(store, &id);
    assert!(
        matches!(store.health(), Health::Suspect { .. }),
        "{:?}",
        store.health()
    );
    let store = h.reopen(store, &id).expect("reopen");
    match store.health() {
        Health::Suspect { reason } => assert!(
            reason.contains("not yet repaired") || reason.contains("test:"),
            "{reason}"
        ),
        Health::Ok => panic!("suspect mark forgotten across a restart"),
    }
    // Writes still work while suspect (the core decides what to write).
    store
        .write(&accepts(b, 4..=4))
        .expect("write while suspect");
    assert!(matches!(store.health(), Health::Suspect { .. }));

    let repaired = Ballot::new(9, 1);
    let rebuilt = accepted(repaired, b"rebuilt from peers");
    store
        .repair(&WriteBatch {
            promise: Some(repaired),
            accepts: vec![(2, rebuilt.clone())],
            ..WriteBatch::default()
        })
        .expect("repair");
    let check = |store: &H::S| {
        assert_eq!(store.health(), Health::Ok);
        assert_eq!(store.metadata().promised, repaired);
        // The rebuilt state replaced everything above the chosen index (0).
        assert_eq!(
            store.range(1, 10, NO_LIMIT).expect("range"),
            vec![(2, rebuilt.clone())]
        );
        assert_eq!(store.last_index(), 2);
    };
    check(&store);
    let store = h.reopen(store, &id).expect("reopen");
    check(&store);
}

/// A reader racing a writer that accepts, chooses and trims: every index
/// between the trim point and the chosen index it saw is either readable or
/// reported trimmed, never a hole.
fn concurrent_reads_see_no_false_holes<H: Harness>()
where
    H::S: 'static,
{
    const BATCHES: u64 = 300;
    let id = identity(1);
    let mut h = H::new();
    let store = std::sync::Arc::new(h.open(&id).expect("open"));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let store = store.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            for k in 0..BATCHES {
                let mut batch = accepts(Ballot::new(1, 1), 4 * k + 1..=4 * k + 4);
                batch.chosen_index = Some(4 * k + 4);
                batch.trim_index = Some(4 * k.saturating_sub(2));
                store.write(&batch).expect("write");
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        })
    };
    let (mut reads, mut trimmed) = (0u64, 0u64);
    loop {
        // One last pass after the writer finished, so there is always work.
        let finished = done.load(std::sync::atomic::Ordering::SeqCst);
        let meta = store.metadata();
        for i in meta.trim_index + 1..=meta.chosen_index {
            match store.get(i) {
                Ok(Some(a)) => assert_eq!(a.value.to_vec(), value_of(i)),
                Ok(None) => panic!("index {i} read as a hole; metadata was {meta:?}"),
                Err(StoreError::Trimmed { .. }) => trimmed += 1,
                Err(e) => panic!("get({i}): {e}"),
            }
            reads += 1;
        }
        if finished {
            break;
        }
    }
    writer.join().expect("writer thread");
    assert!(reads > 0);
    println!("reads = {reads}, trimmed while reading = {trimmed}");
}

/// One step of the model-based test.
#[derive(Clone, Debug)]
enum Op {
    Write(WriteBatch),
    Repair(WriteBatch),
    Reopen,
    Get(Index),
    Range {
        from: Index,
        to: Index,
        entries_max: usize,
        bytes_max: usize,
    },
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let index = 0u64..40;
    let ballot = (0u64..5, 0u64..4).prop_map(|(c, n)| Ballot::new(c, n));
    let accept = (
        index.clone(),
        ballot.clone(),
        prop::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(i, b, v)| {
            (
                i,
                Accepted {
                    ballot: b,
                    value: Bytes::from(v),
                },
            )
        });
    let batch = (
        prop::option::of(ballot),
        prop::collection::vec(accept, 0..8),
        prop::option::of(index.clone()),
        prop::option::weighted(0.15, index.clone()),
    )
        .prop_map(|(promise, accepts, chosen_index, trim_index)| WriteBatch {
            trim_state: None,
            promise,
            accepts,
            chosen_index,
            trim_index,
        });
    prop_oneof![
        6 => batch.clone().prop_map(Op::Write),
        1 => batch.prop_map(Op::Repair),
        1 => Just(Op::Reopen),
        3 => index.clone().prop_map(Op::Get),
        3 => (index.clone(), index, 0usize..6, 0usize..200).prop_map(|(from, to, entries_max, bytes_max)| Op::Range { from, to, entries_max, bytes_max }),
    ]
}

/// The naive model: the contract written as plainly as possible.
#[derive(Debug, Default)]
struct Model {
    meta: Metadata,
    accepted: BTreeMap<Index, Accepted>,
}

impl Model {
    fn write(&mut self, batch: &WriteBatch) {
        if let Some(p) = batch.promise {
            self.meta.promised = p;
        }
        for (i, a) in &batch.accepts {
            self.accepted.insert(*i, a.clone());
        }
        if let Some(c) = batch.chosen_index {
            self.meta.chosen_index = c;
        }
        if let Some(t) = batch.trim_index {
            if t > self.meta.trim_index {
                self.meta.trim_index = t;
                self.accepted.retain(|i, _| *i > t);
            }
        }
    }

    fn repair(&mut self, batch: &WriteBatch) {
        let chosen = batch.chosen_index.unwrap_or(self.meta.chosen_index);
        self.accepted.retain(|i, _| *i <= chosen);
        self.write(batch);
    }

    fn trimmed(&self, index: Index) -> bool {
        self.meta.trim_index > 0 && index <= self.meta.trim_index
    }

    fn last_index(&self) -> Index {
        self.accepted
            .keys()
            .next_back()
            .copied()
            .unwrap_or(0)
            .max(self.meta.trim_index)
    }

    fn range(&self, from: Index, to: Index, limit: ReadLimit) -> Vec<(Index, Accepted)> {
        let mut out: Vec<(Index, Accepted)> = Vec::new();
        let mut bytes = 0;
        for (i, a) in self
            .accepted
            .iter()
            .filter(|(i, _)| from <= **i && **i <= to)
        {
            let fits = out.len() < limit.entries_max && bytes + a.value.len() <= limit.bytes_max;
            if !out.is_empty() && !fits {
                break;
            }
            bytes += a.value.len();
            out.push((*i, a.clone()));
        }
        out
    }
}

fn agrees_with_model<H: Harness>(test: &str, cases: u32) {
    let seed = common::seed(test);
    let config = Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&prop::collection::vec(op_strategy(), 1..40), |ops| {
        let id = identity(1);
        let mut h = H::new();
        let mut store = h.open(&id).expect("open");
        let mut model = Model::default();
        for op in ops {
            match op {
                Op::Write(batch) => {
                    store.write(&batch).expect("write");
                    model.write(&batch);
                }
                Op::Repair(batch) => {
                    store.repair(&batch).expect("repair");
                    model.repair(&batch);
                }
                Op::Reopen => store = h.reopen(store, &id).expect("reopen"),
                Op::Get(i) => match store.get(i) {
                    Ok(got) => {
                        prop_assert!(!model.trimmed(i));
                        prop_assert_eq!(got.as_ref(), model.accepted.get(&i));
                    }
                    Err(StoreError::Trimmed { index, first }) => {
                        prop_assert!(model.trimmed(i));
                        prop_assert_eq!((index, first), (i, model.meta.trim_index + 1));
                    }
                    Err(e) => prop_assert!(false, "get({}) failed: {}", i, e),
                },
                Op::Range {
                    from,
                    to,
                    entries_max,
                    bytes_max,
                } => {
                    let limit = ReadLimit {
                        entries_max,
                        bytes_max,
                    };
                    match store.range(from, to, limit) {
                        Ok(got) => {
                            prop_assert!(!model.trimmed(from));
                            prop_assert_eq!(got, model.range(from, to, limit));
                        }
                        Err(StoreError::Trimmed { .. }) => prop_assert!(model.trimmed(from)),
                        Err(e) => prop_assert!(false, "range failed: {}", e),
                    }
                }
            }
            prop_assert_eq!(store.metadata(), model.meta);
            prop_assert_eq!(store.last_index(), model.last_index());
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{test} (seed {seed}): {e}");
    }
}

macro_rules! conformance {
    ($module:ident, $harness:ty, $model_cases:expr) => {
        mod $module {
            use super::*;

            #[test]
            fn promise_survives_reopen() {
                super::promise_survives_reopen::<$harness>();
            }

            #[test]
            fn accepted_values_round_trip() {
                super::accepted_values_round_trip::<$harness>();
            }

            #[test]
            fn failed_write_leaves_nothing_and_store_stays_failed() {
                super::failed_write_leaves_nothing_and_store_stays_failed::<$harness>();
            }

            #[test]
            fn range_reads_respect_limits_and_skip_holes() {
                super::range_reads_respect_limits_and_skip_holes::<$harness>();
            }

            #[test]
            fn trim_reads_below_say_trimmed_and_survive_reopen() {
                super::trim_reads_below_say_trimmed_and_survive_reopen::<$harness>();
            }

            #[test]
            fn identity_mismatch_is_refused() {
                super::identity_mismatch_is_refused::<$harness>();
            }

            #[test]
            fn incarnation_is_nonzero_and_survives_reopen() {
                super::incarnation_is_nonzero_and_survives_reopen::<$harness>();
            }

            #[test]
            fn suspect_survives_reopen_until_repaired() {
                super::suspect_survives_reopen_until_repaired::<$harness>();
            }

            #[test]
            fn concurrent_reads_see_no_false_holes() {
                super::concurrent_reads_see_no_false_holes::<$harness>();
            }

            #[test]
            fn agrees_with_model() {
                super::agrees_with_model::<$harness>(
                    concat!(stringify!($module), "::agrees_with_model"),
                    $model_cases,
                );
            }
        }
    };
}

conformance!(mem, MemHarness, 512);
#[cfg(feature = "rocksdb")]
conformance!(rocks, RocksHarness, 96);
