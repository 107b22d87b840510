//! One test per `Invariant:` line: break it on purpose on a replica built
//! here and see `assert_invariants` name it.

use bytes::Bytes;
use paxlog_storage::{Ballot, MemStore};

use super::{config, store, Cluster};
use crate::candidate::Candidate;
use crate::leader_state::Leader;
use crate::replica::{Replica, RoleState};
use crate::{Proposal, ProposalCommand};

/// A 3-node cluster whose node 1 leads with index 1 chosen and index 2
/// accepted by itself only (so it is in the leader's log and mirrored).
fn leading() -> Cluster {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.propose(1, 10, 1, "a");
    c.settle();
    c.propose(1, 11, 2, "b");
    c.persist(1);
    c.node(1).assert_invariants();
    c
}

fn fresh() -> Replica<MemStore> {
    let r = Replica::new(config(1, 3), store(1), 1, 0).expect("new");
    r.assert_invariants();
    r
}

fn leader(r: &mut Replica<MemStore>) -> &mut Leader {
    match &mut r.role {
        RoleState::Leader(ls) => ls,
        _ => panic!("not leading"),
    }
}

// ---- acceptor

#[test]
#[should_panic(expected = "Invariant: every accepted entry's ballot <= promised")]
fn entry_above_promise() {
    let mut c = leading();
    let r = c.node(1);
    if let Some(a) = r.acceptor.entries.get_mut(&3) {
        a.ballot = Ballot::new(a.ballot.counter + 1, 3);
    }
    r.assert_invariants();
}

#[test]
#[should_panic(expected = "Invariant: max_seen >= promised")]
fn max_seen_below_promise() {
    let mut c = leading();
    c.node(1).acceptor.max_seen = Ballot::ZERO;
    c.node(1).assert_invariants();
}

#[test]
#[should_panic(expected = "Invariant: mirrored entries in (trim_index, last_index]")]
fn mirrored_entry_beyond_last_index() {
    let mut c = leading();
    let r = c.node(1);
    let a = r.acceptor.entries[&3].clone();
    r.acceptor.entries.insert(9, a);
    r.assert_invariants();
}

#[test]
#[should_panic(expected = "Invariant: chosen_index <= last_index")]
fn chosen_beyond_last_index() {
    let mut r = fresh();
    r.learner.chosen_index = 5;
    r.learner.durable_chosen_index = 5;
    r.assert_invariants();
}

#[test]
#[should_panic(expected = "Invariant: a suspect node is a follower")]
fn suspect_leader() {
    let mut c = leading();
    c.node(1).acceptor.suspect = true;
    c.node(1).assert_invariants();
}

// ---- learner

#[test]
#[should_panic(expected = "Invariant: dedup_index <= chosen_index")]
fn dedup_beyond_chosen() {
    let mut c = leading();
    c.node(1).learner.dedup_index += 1;
    c.node(1).assert_invariants();
}

#[test]
#[should_panic(expected = "Invariant: durable_chosen_index <= chosen_index")]
fn durable_chosen_beyond_chosen() {
    let mut c = leading();
    c.node(1).learner.durable_chosen_index += 1;
    c.node(1).assert_invariants();
}

#[test]
#[should_panic(expected = "Invariant: every chosen index above durable_chosen_index is mirrored")]
fn unsynced_chosen_entry_not_mirrored() {
    let mut c = leading();
    let r = c.node(1);
    r.learner.durable_chosen_index = 0;
    r.acceptor.entries.remove(&1);
    r.assert_invariants();
}

#[test]
#[should_panic(expected = "Invariant: trim_index <= applied_index")]
fn trim_beyond_applied() {
    let mut c = leading();
    let r = c.node(1);
    r.learner.trim_index = 1;
    r.learner.applied_index = 0;
    r.assert_invariants();
}

#[test]
#[should_panic(expected = "Invariant: trim_index <= emitted_index")]
fn trim_beyond_emitted() {
    let mut c = leading();
    let r = c.node(1);
    r.learner.trim_index = 1;
    r.learner.applied_index = 1;
    r.learner.emitted_index = 0;
    r.assert_invariants();
}

#[test]
#[should_panic(expected = "Invariant: emitted_index <= dedup_index")]
fn emitted_beyond_dedup() {
    let mut c = leading();
    c.node(1).learner.emitted_index = 3;
    c.node(1).assert_invariants();
}

#[test]
#[should_panic(expected = "Invariant: every hidden index in (trim_index, dedup_index]")]
fn hidden_beyond_dedup() {
    let mut c = leading();
    c.node(1)
        .learner
        .hidden
        .insert(9, crate::Hidden::DuplicateOf(1));
    c.node(1).assert_invariants();
}

#[test]
#[should_panic(expected = "Invariant: every pending_trims key in (applied_index, dedup_index]")]
fn pending_trim_beyond_dedup() {
    let mut r = fresh();
    r.learner.pending_trims.insert(1, 1);
    r.assert_invariants();
}

// ---- io

#[test]
#[should_panic(expected = "Invariant: every staged accept is in the acceptor's mirror")]
fn staged_accept_not_mirrored() {
    let mut c = leading();
    let now = c.now_ms;
    let session = c.session;
    let r = c.node(1);
    let p = Proposal {
        id: 12,
        client_id: session,
        seq: 3,
        floor: 1,
        command: ProposalCommand::Append(Bytes::from_static(b"c")),
        expected_ballot: None,
    };
    r.propose(p, now);
    r.acceptor.entries.remove(&4);
    r.assert_invariants();
}

#[test]
#[should_panic(expected = "Invariant: in-flight tickets are consecutive")]
fn ticket_gap() {
    let mut c = leading();
    c.node(1).io.next_ticket += 1;
    c.node(1).assert_invariants();
}

// ---- leader

#[test]
#[should_panic(expected = "Invariant: leader ballot == promised")]
fn leader_ballot_not_promised() {
    let mut c = leading();
    let ls = leader(c.node(1));
    ls.ballot = Ballot::new(ls.ballot.counter + 1, 1);
    c.node(1).assert_invariants();
}

#[test]
#[should_panic(expected = "Invariant: leader log covers exactly (chosen_index, next_index)")]
fn leader_log_gap() {
    let mut c = leading();
    leader(c.node(1)).next_index += 1;
    c.node(1).assert_invariants();
}

#[test]
#[should_panic(expected = "Invariant: every leader log index is mirrored at its ballot")]
fn leader_log_not_mirrored_at_ballot() {
    let mut c = leading();
    if let Some(a) = c.node(1).acceptor.entries.get_mut(&3) {
        a.ballot = Ballot::ZERO;
    }
    c.node(1).assert_invariants();
}

#[test]
#[should_panic(expected = "Invariant: uncommitted_bytes == sum of the leader log's values")]
fn uncommitted_bytes_off() {
    let mut c = leading();
    leader(c.node(1)).uncommitted_bytes += 1;
    c.node(1).assert_invariants();
}

#[test]
#[should_panic(expected = "Invariant: every inflight key's index in (chosen_index, next_index)")]
fn inflight_key_already_chosen() {
    let mut c = leading();
    leader(c.node(1)).inflight_keys.insert((9, 1), 1);
    c.node(1).assert_invariants();
}

#[test]
#[should_panic(expected = "Invariant: progress match_index < next_index <= leader next_index")]
fn progress_next_not_above_match() {
    let mut c = leading();
    if let Some(p) = leader(c.node(1)).peers.get_mut(&2) {
        p.next_index = p.match_index;
    }
    c.node(1).assert_invariants();
}

#[test]
#[should_panic(expected = "Invariant: every sent Accept ends in (match_index, next_index)")]
fn progress_sent_already_matched() {
    let mut c = leading();
    if let Some(p) = leader(c.node(1)).peers.get_mut(&2) {
        p.sent.push_back((p.match_index, 0));
    }
    c.node(1).assert_invariants();
}

#[test]
#[should_panic(expected = "Invariant: inflight_bytes == sum of sent bytes")]
fn progress_inflight_bytes_off() {
    let mut c = leading();
    if let Some(p) = leader(c.node(1)).peers.get_mut(&2) {
        p.inflight_bytes += 1;
    }
    c.node(1).assert_invariants();
}

// ---- candidate and replica

#[test]
#[should_panic(expected = "Invariant: candidate ballot == promised")]
fn candidate_ballot_not_promised() {
    let mut r = fresh();
    r.role = RoleState::Candidate(Candidate {
        ballot: Ballot::new(9, 1),
        from_index: 1,
        promises: Default::default(),
        adopted: Default::default(),
        chosen: Default::default(),
        max_trim: 0,
        configs: Vec::new(),
        reported: Vec::new(),
        asked: Default::default(),
    });
    r.assert_invariants();
}

#[test]
#[should_panic(expected = "Invariant: only a leader has waiters")]
fn follower_with_waiters() {
    let mut r = fresh();
    r.waiters.insert(1, vec![7]);
    r.assert_invariants();
}
