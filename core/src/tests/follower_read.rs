//! Tails served by a follower through its leader's read index
//! (`follower_read.rs`).

use super::read_index::{answer, read};
use super::Cluster;
use crate::{Message, OpError};

#[test]
fn a_follower_serves_a_tail_through_its_leader_and_writes_nothing() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.propose(1, 10, 1, "a");
    c.settle();
    let acked = match answer(&c, 10) {
        Some(Ok(index)) => index,
        other => panic!("append answered {other:?}"),
    };
    read(&mut c, 2, 100);
    let asked: Vec<_> = c
        .inflight
        .iter()
        .filter(|(from, m)| *from == 2 && matches!(m.message, Message::ReadIndexRequest { .. }))
        .collect();
    assert_eq!(asked.len(), 1, "one request to the leader");
    assert_eq!(asked[0].1.to, 1);
    assert_eq!(answer(&c, 100), None);
    c.deliver_where(|_, _| true);
    assert!(
        c.pending_writes.iter().all(Vec::is_empty),
        "a tail writes nothing"
    );
    c.settle();
    assert_eq!(answer(&c, 100), Some(Ok(acked)));
    assert!(c.node(2).chosen_index() >= acked);
}

#[test]
fn a_follower_read_nobody_answers_fails_after_an_election_timeout() {
    let mut c = Cluster::new(3);
    c.elect(1);
    read(&mut c, 2, 100);
    c.inflight.clear(); // the request is lost
    let now = c.now_ms + 599;
    c.node(2).tick(now);
    c.collect();
    assert_eq!(answer(&c, 100), None, "not before the timeout");
    c.node(2).tick(now + 1);
    c.collect();
    assert!(matches!(
        answer(&c, 100),
        Some(Err(OpError::NotLeader { .. }))
    ));
}

#[test]
fn an_answer_from_a_node_not_asked_is_ignored() {
    let mut c = Cluster::new(3);
    c.elect(1);
    read(&mut c, 2, 100);
    let id = c
        .inflight
        .iter()
        .find_map(|(_, m)| match m.message {
            Message::ReadIndexRequest { id } => Some(id),
            _ => None,
        })
        .expect("a request to the leader");
    c.inflight.clear();
    let now = c.now_ms;
    // Node 3 answers the id node 2 sent to node 1, far ahead of anything chosen.
    let forged = Message::ReadIndexReply {
        id,
        index: Some(1_000),
    };
    c.node(2).on_message(3, forged, now);
    c.collect();
    assert_eq!(answer(&c, 100), None);
    // Node 1 refusing is taken: the client is told to ask again.
    let refused = Message::ReadIndexReply { id, index: None };
    c.node(2).on_message(1, refused, now);
    c.collect();
    assert!(matches!(
        answer(&c, 100),
        Some(Err(OpError::NotLeader { .. }))
    ));
}

/// Regression (sim seed 2634): a follower restarted while its leader still
/// had a read-index request of its previous life to answer. Both lives
/// numbered their requests from 0, so the late answer, an index from before
/// appends acknowledged since, answered the new life's tail.
#[test]
fn an_answer_to_a_previous_life_answers_no_tail_of_this_one() {
    let mut c = Cluster::new(3);
    c.elect(1);
    read(&mut c, 2, 100);
    let asked = |c: &Cluster| {
        c.inflight.iter().find_map(|(from, m)| match m.message {
            Message::ReadIndexRequest { id } if *from == 2 => Some(id),
            _ => None,
        })
    };
    let old = asked(&c).expect("a request to the leader");
    c.inflight.clear();
    c.nodes[1] = crate::Replica::new(super::config(2, 3), c.stores[1].clone(), 8, c.now_ms)
        .expect("restart");
    c.now_ms += 100;
    let now = c.now_ms;
    c.node(1).tick(now);
    c.settle();
    read(&mut c, 2, 101);
    let new = asked(&c).expect("a request to the leader");
    c.inflight.clear();
    let chosen = c.node(2).chosen_index();
    let late = crate::Outbound {
        to: 2,
        message: Message::ReadIndexReply {
            id: old,
            index: Some(chosen),
        },
        epoch: 0,
        incarnation: 0,
    };
    c.inflight.push((1, late));
    c.deliver_where(|_, _| true);
    c.settle();
    assert_eq!(
        answer(&c, 101),
        None,
        "the previous life's answer (id {old}) taken for this one's (id {new})"
    );
}
