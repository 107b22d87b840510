//! Thrifty Paxos (`thrifty.rs`): who syncs, what counts, and the fallback.

use super::*;

/// Heartbeat rounds for `ms`: every node ticks each 50 ms, and everything
/// is delivered and persisted in between.
fn run_for(c: &mut Cluster, ms: u64) {
    for _ in 0..ms / 50 {
        c.now_ms += 50;
        let now = c.now_ms;
        for id in 1..=3 {
            c.node(id).tick(now);
        }
        c.settle();
    }
}

/// Past the new leader's settling period, a tick has picked who syncs.
fn thrifty_cluster() -> Cluster {
    let mut c = Cluster::new(3);
    c.elect(1);
    run_for(&mut c, 1_000);
    c
}

/// An Accept of one no-op at `first_index`, from the leader of `ballot`.
fn noop_accept(ballot: Ballot, first_index: Index, sync: bool) -> Message {
    Message::Accept {
        ballot,
        first_index,
        values: vec![Command::Noop.encode()],
        chosen_index: 0,
        sync,
    }
}

/// The `sync` flag of the Accept in flight to each of nodes 2 and 3.
fn accept_syncs(c: &mut Cluster) -> Vec<(NodeId, bool)> {
    c.collect();
    c.inflight
        .iter()
        .filter_map(|(_, o)| match &o.message {
            Message::Accept { sync, .. } => Some((o.to, *sync)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_leader_asks_one_follower_of_two_to_sync_and_counts_only_its_answer() {
    let mut c = thrifty_cluster();
    c.propose(1, 10, 1, "a");
    assert_eq!(accept_syncs(&mut c), vec![(2, true), (3, false)]);
    c.persist(1);
    // Both get their Accept; node 2's write waits, so only node 3 answers.
    c.deliver_where(|_, m| m.to != 1);
    c.collect();
    let lazy = &c.pending_writes[2];
    assert!(
        !lazy.is_empty() && lazy.iter().all(|w| !w.sync),
        "node 3 writes without a sync: {lazy:?}"
    );
    c.persist(3);
    assert_eq!(c.stores[2].staged_batches(), 1, "written, not synced");
    let answers = c.deliver_where(|from, m| {
        from == 3 && matches!(m.message, Message::Accepted { synced: false, .. })
    });
    assert_eq!(answers, 1);
    assert!(
        c.reply(10).is_none(),
        "the leader and an unsynced answer are not a quorum"
    );
    c.persist(2);
    c.deliver_where(|from, _| from == 2);
    assert_eq!(c.reply(10).map(|r| r.result.clone()), Some(Ok(2)));
}

#[test]
fn an_accept_that_raises_the_promise_is_synced_though_the_leader_did_not_ask() {
    let mut r = Replica::new(config(1, 3), store(1), 1, 0).expect("new");
    r.on_message(2, noop_accept(Ballot::new(3, 2), 1, false), 0);
    let w = r.poll_write().expect("write");
    assert!(w.sync, "a promise is never written unsynced");
    r.on_persisted(w.ticket, 0);
    assert!(matches!(
        r.poll_message().map(|o| o.message),
        Some(Message::Accepted { synced: true, .. })
    ));
}

/// A lazy acceptor's unsynced accepts reach a Promise only through a sync.
#[test]
fn a_promise_behind_an_unsynced_write_waits_for_a_sync() {
    let mut r = Replica::new(config(1, 3), store(1), 1, 0).expect("new");
    let ballot = Ballot::new(3, 2);
    r.on_message(2, noop_accept(ballot, 1, true), 0);
    let w = r.poll_write().expect("write");
    r.on_persisted(w.ticket, 0);
    while r.poll_message().is_some() {}
    r.on_message(2, noop_accept(ballot, 2, false), 0);
    let lazy = r.poll_write().expect("write");
    assert!(!lazy.sync);
    r.on_persisted(lazy.ticket, 0);
    assert!(matches!(
        r.poll_message().map(|o| o.message),
        Some(Message::Accepted { synced: false, .. })
    ));
    // The same ballot's Prepare again (a delayed copy): the Promise reports
    // index 2, so it must not leave before index 2 and the promise are synced.
    let prepare = Message::Prepare {
        ballot,
        from_index: 1,
    };
    r.on_message(2, prepare, 0);
    assert!(r.poll_message().is_none(), "the Promise waits for a sync");
    let sync = r.poll_write().expect("a sync of what was written unsynced");
    assert!(sync.sync && sync.batch.is_empty(), "{sync:?}");
    r.on_persisted(sync.ticket, 0);
    assert!(matches!(
        r.poll_message().map(|o| o.message),
        Some(Message::Promise { ref entries, .. }) if entries.len() == 2
    ));
}

#[test]
fn unsynced_writes_in_a_row_are_bounded() {
    let mut r = Replica::new(config(1, 3), store(1), 1, 0).expect("new");
    let ballot = Ballot::new(3, 2);
    let mut syncs = Vec::new();
    for index in 1..=(2 * crate::io::UNSYNCED_BATCHES_MAX as Index) {
        r.on_message(2, noop_accept(ballot, index, false), 0);
        let w = r.poll_write().expect("write");
        syncs.push(w.sync);
        r.on_persisted(w.ticket, 0);
        while r.poll_message().is_some() {}
    }
    // The first raised the promise; then one sync per UNSYNCED_BATCHES_MAX.
    let at: Vec<usize> = (0..syncs.len()).filter(|&k| syncs[k]).collect();
    assert_eq!(at, vec![0, crate::io::UNSYNCED_BATCHES_MAX]);
}

/// An unsynced batch may outlive the unsynced ones before it (a hole in the
/// WAL: `storage/tests/rocks_wal_hole.rs`), so it never says their accepts
/// are chosen: the chosen index waits for a synced batch, at the latest the
/// periodic flush.
#[test]
fn a_chosen_index_is_written_only_by_a_synced_batch() {
    let mut r = Replica::new(config(1, 3), store(1), 1, 0).expect("new");
    let ballot = Ballot::new(3, 2);
    let mut written = Vec::new();
    for index in 1..=10 {
        let mut accept = noop_accept(ballot, index, index == 1);
        if let Message::Accept { chosen_index, .. } = &mut accept {
            *chosen_index = index - 1;
        }
        r.on_message(2, accept, 0);
        while let Some(w) = r.poll_write() {
            r.on_persisted(w.ticket, 0);
            written.push(w);
        }
        while r.poll_message().is_some() {}
    }
    let unsynced: Vec<&Persist> = written.iter().filter(|w| !w.sync).collect();
    assert_eq!(unsynced.len(), 9, "{written:?}");
    assert!(
        unsynced.iter().all(|w| w.batch.chosen_index.is_none()),
        "an unsynced batch carries a chosen index: {unsynced:?}"
    );
    assert_eq!(r.status().chosen_index, 9);
    let flush_ms = config(1, 3).chosen_flush_interval_ms;
    r.tick(flush_ms);
    let w = r.poll_write().expect("the periodic flush");
    assert!(w.sync && w.batch.chosen_index == Some(9), "{w:?}");
}

#[test]
fn a_stall_makes_every_follower_sync_and_resends_what_is_not_chosen() {
    let mut c = thrifty_cluster();
    c.propose(1, 10, 1, "a");
    assert_eq!(accept_syncs(&mut c), vec![(2, true), (3, false)]);
    // Node 2, the one that syncs, is gone: node 3's answers count for nothing.
    for _ in 0..3 {
        c.round_without(2);
    }
    assert!(c.reply(10).is_none());
    c.now_ms += 2 * 50;
    let now = c.now_ms;
    c.node(1).tick(now);
    let resent = accept_syncs(&mut c);
    assert!(
        resent.contains(&(3, true)),
        "index 2 goes to node 3 again, to be synced: {resent:?}"
    );
    for _ in 0..3 {
        c.round_without(2);
    }
    assert_eq!(c.reply(10).map(|r| r.result.clone()), Some(Ok(2)));
}

#[test]
fn without_thrifty_every_follower_syncs() {
    let stores: Vec<MemStore> = (1..=3).map(store).collect();
    let mut c = Cluster::over(stores);
    for id in 1..=3 {
        let mut config = config(id, 3);
        config.thrifty = false;
        c.nodes[id as usize - 1] =
            Replica::new(config, c.stores[id as usize - 1].clone(), 7, 0).expect("new");
    }
    c.elect(1);
    run_for(&mut c, 1_000);
    c.propose(1, 10, 1, "a");
    assert_eq!(accept_syncs(&mut c), vec![(2, true), (3, true)]);
}

/// Regression: a go-back empties a dead peer's window and restarts its
/// clock, so by its window alone a dead peer looked as if it kept up and
/// could be the one asked to sync, which costs a stall.
#[test]
fn a_dead_follower_is_never_the_one_asked_to_sync() {
    let mut c = Cluster::new(3);
    c.elect(1);
    for _ in 0..20 {
        c.now_ms += 50;
        let now = c.now_ms;
        for id in [1, 3] {
            c.node(id).tick(now);
        }
        c.round_without(2);
    }
    c.propose(1, 10, 1, "a");
    assert_eq!(accept_syncs(&mut c), vec![(2, false), (3, true)]);
}
