//! Peer input that is wrong (a bug or version skew on another node, never a
//! stranger: peers are authenticated) must not crash or mislead a node, and
//! only messages that prove a peer follows this leader keep it leading.

use bytes::Bytes;
use paxlog_storage::{Accepted, Ballot, MemStore, Store};

use super::{config, store, Cluster};
use crate::{Command, Message, NodeId, Outbound, Replica, Role};

/// Persists every write and drains every output of a lone replica.
fn drain(r: &mut Replica<MemStore>, s: &MemStore, now_ms: u64) -> Vec<Message> {
    let mut out = Vec::new();
    loop {
        let mut any = false;
        while let Some(w) = r.poll_write() {
            s.write(&w.batch).expect("write");
            r.on_persisted(w.ticket, now_ms);
            any = true;
        }
        while let Some(m) = r.poll_message() {
            out.push(m.message);
            any = true;
        }
        while r.poll_chosen().is_some() {}
        while r.poll_reply().is_some() {}
        if !any {
            return out;
        }
    }
}

#[test]
fn a_ballot_that_cannot_be_exceeded_is_never_promised() {
    let s = store(1);
    let mut r = Replica::new(config(1, 3), s.clone(), 1, 0).expect("new");
    let top = Ballot::new(u64::MAX, 2);
    r.on_message(
        2,
        Message::Prepare {
            ballot: top,
            from_index: 1,
        },
        0,
    );
    r.on_message(
        3,
        Message::Nack {
            ballot: Ballot::new(1, 1),
            promised: Ballot::new(u64::MAX, 3),
            leader: None,
        },
        0,
    );
    drain(&mut r, &s, 0);
    assert!(r.status().ballot < top, "a ballot at the top was promised");
    assert!(s.metadata().promised < top, "and persisted");
    // The next elections still pick a ballot above everything seen.
    let mut now = 0;
    let mut pre_votes = 0;
    for _ in 0..20 {
        now += 700;
        r.tick(now);
        for m in drain(&mut r, &s, now) {
            if let Message::PreVote { ballot } = m {
                assert!(ballot.counter < u64::MAX);
                pre_votes += 1;
            }
        }
        r.assert_invariants();
    }
    assert!(pre_votes > 0, "the node still campaigns");
}

#[test]
fn a_restart_over_a_promise_at_the_top_does_not_overflow() {
    let s = store(1);
    s.write(&paxlog_storage::WriteBatch {
        promise: Some(Ballot::new(u64::MAX, 2)),
        accepts: Vec::new(),
        chosen_index: None,
        trim_index: None,
        trim_state: None,
    })
    .expect("write");
    let mut r = Replica::new(config(1, 3), s.clone(), 1, 0).expect("new");
    let mut now = 0;
    for _ in 0..20 {
        now += 700;
        r.tick(now);
        drain(&mut r, &s, now);
        r.assert_invariants();
    }
    assert_ne!(r.status().role, Role::Leader);
}

/// Node 1 becomes a candidate whose own promise is durable; the promises
/// of nodes 2 and 3 are held back. Returns its ballot and those promises.
fn candidate_1(c: &mut Cluster) -> (Ballot, Vec<(NodeId, Outbound)>) {
    c.now_ms += 1_000;
    let now = c.now_ms;
    c.node(1).tick(now);
    let mut held = Vec::new();
    for _ in 0..5 {
        for id in 1..=3 {
            c.persist(id);
        }
        let (promises, rest) = std::mem::take(&mut c.inflight)
            .into_iter()
            .partition(|(_, m)| matches!(m.message, Message::Promise { .. }));
        held.extend::<Vec<_>>(promises);
        c.inflight = rest;
        c.deliver_where(|_, _| true);
    }
    held.append(&mut c.inflight);
    assert_eq!(c.node(1).status().role, Role::Candidate);
    assert!(!held.is_empty());
    (c.node(1).status().ballot, held)
}

#[test]
fn a_promise_reporting_a_huge_index_is_refused() {
    let mut c = Cluster::new(3);
    let (ballot, honest) = candidate_1(&mut c);
    let far = 2_000_000;
    let forged = Message::Promise {
        ballot,
        from_index: 1,
        entries: vec![(
            far,
            Accepted {
                ballot: Ballot::new(ballot.counter.saturating_sub(1), 2),
                value: Command::Noop.encode(),
            },
        )],
        next_index: None,
        chosen_index: 0,
        trim_index: 0,
    };
    let now = c.now_ms;
    c.node(1).on_message(2, forged, now);
    c.collect();
    assert!(
        c.node(1).status().last_index < far,
        "one no-op allocated per index up to {far}"
    );
    assert_ne!(c.node(1).status().role, Role::Leader);
    // The honest promises still elect it.
    c.inflight = honest;
    c.settle();
    assert_eq!(c.node(1).status().role, Role::Leader);
    assert!(c.node(1).status().last_index < 10);
}

#[test]
fn an_unsolicited_catchup_cannot_skip_the_log() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.propose(1, 10, 1, "a");
    c.settle();
    let now = c.now_ms;
    // Node 3 is not the leader and node 2 asked it for nothing.
    c.node(2).on_message(
        3,
        Message::Catchup {
            first_index: 1_000_001,
            values: vec![Bytes::from_static(b"x")],
            chosen_index: 1_000_001,
            trim_index: 1_000_000,
            // A well-formed table: only the request check stands in the way.
            trim_state: Some(
                crate::TrimState::new(
                    1_000_000,
                    &crate::SessionTable::new(4, 64, 8),
                    &crate::Membership::seed(&[1, 2, 3]),
                    &crate::Holds::new(),
                )
                .encode(),
            ),
        },
        now,
    );
    c.collect();
    assert!(c.node(2).status().trim_index < 1_000_000, "log skipped");
    assert!(c.node(2).status().chosen_index <= 2);
    c.settle();
    c.propose(1, 11, 2, "b");
    c.settle();
    assert_eq!(c.reply(11).map(|r| r.result.clone()), Some(Ok(3)));
}

#[test]
fn stragglers_do_not_keep_a_cut_off_leader() {
    let mut c = Cluster::new(3);
    c.elect(1);
    let ballot = c.node(1).status().ballot;
    let stale = Ballot::new(ballot.counter.saturating_sub(1), 1);
    let cut_at = c.now_ms;
    let timeout = c.node(1).config.election_timeout_max_ms;
    // Nodes 2 and 3 hear nothing from now on; node 2 keeps sending what
    // proves nothing about following ballot `ballot`.
    let stragglers = [
        Message::Nack {
            ballot,
            promised: ballot,
            leader: None,
        },
        Message::Promise {
            ballot,
            from_index: 1,
            entries: Vec::new(),
            next_index: None,
            chosen_index: 0,
            trim_index: 0,
        },
        Message::Accepted {
            ballot: stale,
            indexes: vec![1],
            chosen_index: 0,
            synced: true,
        },
        Message::PreVoteReply {
            ballot: Ballot::new(ballot.counter + 1, 1),
            granted: false,
            promised: ballot,
        },
    ];
    let mut stepped_down_at = None;
    for round in 0..40u64 {
        c.now_ms += 25;
        let now = c.now_ms;
        let m = stragglers[(round % 4) as usize].clone();
        c.node(1).on_message(2 as NodeId, m, now);
        c.node(1).tick(now);
        c.persist(1);
        c.inflight.clear();
        if stepped_down_at.is_none() && c.node(1).status().role != Role::Leader {
            stepped_down_at = Some(now);
        }
    }
    let at = stepped_down_at.expect("the cut-off leader kept leading");
    assert!(
        at - cut_at <= timeout,
        "stepped down after {} ms",
        at - cut_at
    );
}
