//! Every Promise, Catchup and Accept fits one frame, however large the
//! values: a message the transport cannot encode is lost for good, so an
//! oversized Promise would stall every election.

use bytes::Bytes;
use paxlog_storage::{Accepted, Ballot, MemStore, Store, WriteBatch};

use super::{config, store, Cluster};
use crate::{Command, Message, NodeId, Replica, Role};

/// The largest payload whose encoded `Append` is still a legal value.
fn big_value(seq: u64) -> Bytes {
    let max = crate::Limits::default().value_bytes_max;
    let mut payload = vec![seq as u8; max];
    loop {
        let value = Command::Append {
            client_id: 7,
            seq,
            floor: 1,
            payload: Bytes::from(payload.clone()),
        }
        .encode();
        if value.len() <= max {
            return value;
        }
        payload.pop();
    }
}

/// The frame `paxlog_net::frame::encode` would build: the version byte plus
/// the postcard body is what must stay within `frame_bytes_max`.
fn frame_len(message: &Message) -> usize {
    1 + postcard::experimental::serialized_size(message).expect("size of a message")
}

/// A cluster whose stores all hold `values` accepted at ballot (1, 1) and
/// nothing chosen: the leader of ballot 1 crashed before learning any.
fn after_leader_crash(n: u64, values: &[Bytes]) -> Cluster {
    let stores: Vec<MemStore> = (1..=n).map(store).collect();
    let accepts: Vec<_> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            (
                i as u64 + 1,
                Accepted {
                    ballot: Ballot::new(1, 1),
                    value: v.clone(),
                },
            )
        })
        .collect();
    for s in &stores {
        s.write(&WriteBatch {
            promise: Some(Ballot::new(1, 1)),
            accepts: accepts.clone(),
            chosen_index: None,
            trim_index: None,
            trim_state: None,
        })
        .expect("seed");
    }
    Cluster::over(stores)
}

/// Delivers like the real network: node `dead` is gone, a message that does
/// not fit a frame is dropped, and each round trip takes `round_ms`.
/// Returns the kind and frame size of every message sent.
fn run_without(
    c: &mut Cluster,
    dead: NodeId,
    rounds: usize,
    round_ms: u64,
) -> Vec<(&'static str, usize)> {
    let frame_max = crate::Limits::default().frame_bytes_max;
    // `deliver_where` takes an `Fn`.
    let sizes = std::cell::RefCell::new(Vec::new());
    for _ in 0..rounds {
        for id in 1..=c.nodes.len() as NodeId {
            if id != dead {
                c.persist(id);
            }
        }
        c.collect();
        c.deliver_where(|from, o| {
            let kind = match &o.message {
                Message::Promise { .. } => "Promise",
                Message::Accept { .. } => "Accept",
                Message::Catchup { .. } => "Catchup",
                _ => "other",
            };
            let len = frame_len(&o.message);
            sizes.borrow_mut().push((kind, len));
            from != dead && o.to != dead && len <= frame_max
        });
        c.now_ms += round_ms;
        let now = c.now_ms;
        for id in 1..=c.nodes.len() as NodeId {
            if id != dead {
                c.node(id).tick(now);
            }
        }
    }
    sizes.into_inner()
}

/// Node 1 led ballot 1 and crashed with `count` large values accepted
/// everywhere and none known chosen; node 2 must take over.
fn take_over(count: u64, round_ms: u64) {
    let frame_max = crate::Limits::default().frame_bytes_max;
    let values: Vec<Bytes> = (1..=count).map(big_value).collect();
    let mut c = after_leader_crash(3, &values);
    c.now_ms = 1_000;
    let now = c.now_ms;
    c.node(2).tick(now);
    let sizes = run_without(&mut c, 1, 100, round_ms);
    let promises: Vec<usize> = sizes
        .iter()
        .filter(|(k, _)| *k == "Promise")
        .map(|(_, l)| *l)
        .collect();
    assert!(
        promises.len() >= 3,
        "the promise came in chunks: {promises:?}"
    );
    let leader = (2..=3)
        .find(|&id| c.node(id).status().role == Role::Leader)
        .expect("a candidate completed Phase 1 and leads");
    for id in [2, 3] {
        assert!(c.node(id).status().chosen_index >= values.len() as u64);
        for (i, v) in values.iter().enumerate() {
            assert_eq!(
                c.node(id).value_at(i as u64 + 1).as_ref(),
                Some(v),
                "node {id} (leader {leader}) index {}",
                i + 1
            );
        }
    }
    for (kind, len) in &sizes {
        assert!(
            *len <= frame_max,
            "a {kind} of {len} bytes exceeds the frame limit {frame_max}"
        );
    }
}

#[test]
fn promises_of_large_accepted_values_fit_a_frame_and_phase_1_completes() {
    take_over(12, 20);
}

/// Gathering the promise takes longer than an election timeout (300 to
/// 600 ms here): a candidate that is still receiving it must not give up
/// and start over, or it never leads.
#[test]
fn a_promise_longer_than_an_election_timeout_still_completes_phase_1() {
    take_over(24, 100);
}

#[test]
fn catchup_of_large_chosen_values_fits_a_frame() {
    let frame_max = crate::Limits::default().frame_bytes_max;
    let s = store(1);
    let accepts = (1..=12u64)
        .map(|i| {
            (
                i,
                Accepted {
                    ballot: Ballot::new(1, 1),
                    value: big_value(i),
                },
            )
        })
        .collect();
    s.write(&WriteBatch {
        promise: Some(Ballot::new(1, 1)),
        accepts,
        chosen_index: Some(12),
        trim_index: None,
        trim_state: None,
    })
    .expect("seed");
    let mut r = Replica::new(config(1, 3), s, 1, 0).expect("new");
    let mut next = 1;
    while next <= 12 {
        r.on_message(2, Message::CatchupRequest { from_index: next }, 0);
        let message = std::iter::from_fn(|| r.poll_message())
            .map(|o| o.message)
            .find(|m| matches!(m, Message::Catchup { .. }))
            .expect("a catchup");
        let len = frame_len(&message);
        assert!(
            len <= frame_max,
            "a Catchup of {len} bytes exceeds {frame_max}"
        );
        let Message::Catchup { values, .. } = message else {
            unreachable!()
        };
        assert!(!values.is_empty(), "at least one entry per message");
        next += values.len() as u64;
    }
}
