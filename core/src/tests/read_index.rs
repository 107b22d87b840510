//! Linearizable tails without a log write (`read_index.rs`): a tail waits
//! for a heartbeat round that started after it and that a quorum answered
//! at the leader's ballot, writes nothing, and a new leader answers at or
//! above what its Phase 1 recovered.

use super::Cluster;
use crate::{Message, OpError, RequestId, Role};

pub(super) fn read(c: &mut Cluster, id: crate::NodeId, req: RequestId) {
    let now = c.now_ms;
    c.node(id).read_index(req, now);
    c.collect();
}

pub(super) fn answer(c: &Cluster, req: RequestId) -> Option<Result<u64, OpError>> {
    c.reply(req).map(|r| r.result.clone())
}

fn rounds_sent(c: &Cluster) -> Vec<u64> {
    c.inflight
        .iter()
        .filter_map(|(_, m)| match m.message {
            Message::Heartbeat { round, .. } => Some(round),
            _ => None,
        })
        .collect()
}

#[test]
fn a_tail_is_answered_after_one_round_and_writes_nothing() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.propose(1, 10, 1, "a");
    c.settle();
    let chosen = c.node(1).chosen_index();
    read(&mut c, 1, 100);
    assert!(
        c.pending_writes.iter().all(Vec::is_empty),
        "a tail writes nothing"
    );
    assert_eq!(
        answer(&c, 100),
        None,
        "not before a quorum answered the round"
    );
    assert_eq!(rounds_sent(&c), vec![1, 1], "one round, to both peers");
    // One follower's answer makes a quorum with the leader.
    c.deliver_where(|from, m| from == 1 && m.to == 2);
    assert_eq!(answer(&c, 100), None, "the answer is still on its way");
    c.deliver_where(|from, _| from == 2);
    assert_eq!(answer(&c, 100), Some(Ok(chosen)));
    assert!(
        c.pending_writes.iter().all(Vec::is_empty),
        "still nothing written"
    );
}

#[test]
fn a_round_started_before_a_tail_does_not_answer_it() {
    let mut c = Cluster::new(3);
    c.elect(1);
    read(&mut c, 1, 100);
    read(&mut c, 1, 101);
    read(&mut c, 1, 102);
    assert_eq!(
        rounds_sent(&c),
        vec![1, 1],
        "the later tails share the next round"
    );
    // Round 1 is answered: it confirms the first tail only.
    c.deliver_where(|_, _| true);
    c.deliver_where(|_, m| matches!(m.message, crate::Message::HeartbeatAck { .. }));
    let chosen = c.node(1).chosen_index();
    assert_eq!(answer(&c, 100), Some(Ok(chosen)));
    assert_eq!(
        answer(&c, 101),
        None,
        "round 1 started before tail 101 arrived"
    );
    assert_eq!(
        rounds_sent(&c),
        vec![2, 2],
        "round 2 starts once round 1 is confirmed"
    );
    c.settle();
    assert_eq!(answer(&c, 101), Some(Ok(chosen)));
    assert_eq!(answer(&c, 102), Some(Ok(chosen)));
}

#[test]
fn a_deposed_leader_answers_no_tail() {
    let mut c = Cluster::new(3);
    c.elect(1);
    // Node 2 takes over while node 1 hears nothing.
    c.now_ms += 1_000;
    let now = c.now_ms;
    c.node(2).tick(now);
    for _ in 0..10 {
        c.round_without(1);
    }
    assert_eq!(c.node(2).status().role, Role::Leader);
    assert_eq!(
        c.node(1).status().role,
        Role::Leader,
        "node 1 has not heard yet"
    );
    // At a time node 1 still counts its peers as heard: it starts a round.
    c.node(1).read_index(100, 1_100);
    c.collect();
    assert_eq!(rounds_sent(&c), vec![1, 1]);
    // Its round reaches the others, who promised node 2's ballot: Nacks.
    c.settle();
    assert!(
        matches!(answer(&c, 100), Some(Err(OpError::NotLeader { .. }))),
        "the old leader answered {:?}",
        answer(&c, 100)
    );
}

#[test]
fn a_new_leader_answers_at_or_above_what_its_phase_1_recovered() {
    let mut c = Cluster::new(3);
    c.elect(1);
    // "a" is chosen by nodes 1 and 2 and acknowledged; node 2 and 3 are
    // never told it is chosen.
    c.propose(1, 10, 1, "a");
    c.persist(1);
    c.deliver_where(|from, m| from == 1 && m.to == 2);
    c.persist(2);
    c.deliver_where(|from, m| from == 2 && m.to == 1);
    c.persist(1);
    let acked = match answer(&c, 10) {
        Some(Ok(index)) => index,
        other => panic!("the append was answered {other:?}"),
    };
    c.inflight.clear();
    // Node 3 is elected by node 2's promise, which reports "a".
    c.now_ms += 1_000;
    let now = c.now_ms;
    c.node(3).tick(now);
    for _ in 0..10 {
        if c.node(3).status().role == Role::Leader {
            break;
        }
        c.persist(3);
        c.persist(2);
        c.deliver_where(|from, m| {
            from != 1 && m.to != 1 && !matches!(m.message, Message::Accept { .. })
        });
    }
    assert_eq!(c.node(3).status().role, Role::Leader);
    assert!(
        c.node(3).chosen_index() < acked,
        "the test wants a new leader that does not know the append is chosen"
    );
    read(&mut c, 3, 100);
    c.settle();
    match answer(&c, 100) {
        Some(Ok(index)) => assert!(
            index >= acked,
            "a tail after an acknowledgement at {acked} answered {index}"
        ),
        other => panic!("the tail was answered {other:?}"),
    }
}
