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
    c.inflight.clear();
    let now = c.now_ms;
    // Node 3 answers the id node 2 sent to node 1, far ahead of anything chosen.
    let forged = Message::ReadIndexReply {
        id: 0,
        index: Some(1_000),
    };
    c.node(2).on_message(3, forged, now);
    c.collect();
    assert_eq!(answer(&c, 100), None);
    // Node 1 refusing is taken: the client is told to ask again.
    let refused = Message::ReadIndexReply { id: 0, index: None };
    c.node(2).on_message(1, refused, now);
    c.collect();
    assert!(matches!(
        answer(&c, 100),
        Some(Err(OpError::NotLeader { .. }))
    ));
}
