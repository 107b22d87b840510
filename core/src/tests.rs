//! Unit tests of each role, on a tiny hand-driven cluster over `MemStore`.

use bytes::Bytes;
use paxlog_storage::{Accepted, Ballot, Identity, MemStore, Store, WriteBatch};

use super::*;

fn store(id: NodeId) -> MemStore {
    MemStore::new(Identity {
        cluster_id: "t".into(),
        node_id: id,
    })
}

/// Bindings off: these tests count indexes (`tests/members.rs` binds).
fn config(id: NodeId, n: u64) -> Config {
    let mut c = Config::new(id, (1..=n).collect());
    c.bind_members = false;
    c
}

/// A cluster driven by hand: messages and writes move only when told.
pub(super) struct Cluster {
    nodes: Vec<Replica<MemStore>>,
    stores: Vec<MemStore>,
    inflight: Vec<(NodeId, Outbound)>,
    pending_writes: Vec<Vec<Persist>>,
    replies: Vec<Reply>,
    /// Per node: every index `poll_chosen` emitted, in order.
    emitted: Vec<Vec<Index>>,
    /// Per node: every snapshot `poll_snapshot` offered.
    offered: Vec<Vec<SnapshotMeta>>,
    now_ms: u64,
    /// The session the first election opened (index 1): appends start at 2.
    session: u64,
}

impl Cluster {
    fn new(n: u64) -> Self {
        Cluster::over((1..=n).map(store).collect())
    }

    /// A cluster of one replica per store, over whatever the stores hold.
    fn over(stores: Vec<MemStore>) -> Self {
        let n = stores.len() as u64;
        let nodes = (1..=n)
            .map(|id| {
                Replica::new(config(id, n), stores[id as usize - 1].clone(), 7, 0).expect("new")
            })
            .collect();
        Cluster {
            nodes,
            stores,
            inflight: Vec::new(),
            pending_writes: vec![Vec::new(); n as usize],
            replies: Vec::new(),
            emitted: vec![Vec::new(); n as usize],
            offered: vec![Vec::new(); n as usize],
            now_ms: 0,
            session: 0,
        }
    }

    fn node(&mut self, id: NodeId) -> &mut Replica<MemStore> {
        &mut self.nodes[id as usize - 1]
    }

    /// Collects outputs of every node (writes are held, not executed).
    fn collect(&mut self) {
        for (k, r) in self.nodes.iter_mut().enumerate() {
            while let Some(w) = r.poll_write() {
                self.pending_writes[k].push(w);
            }
            while let Some(m) = r.poll_message() {
                self.inflight.push((k as NodeId + 1, m));
            }
            while let Some(c) = r.poll_chosen() {
                self.emitted[k].push(c.index);
            }
            while let Some(rep) = r.poll_reply() {
                self.replies.push(rep);
            }
            while let Some(s) = r.poll_snapshot() {
                self.offered[k].push(s);
            }
        }
    }

    fn persist(&mut self, id: NodeId) {
        self.collect();
        let k = id as usize - 1;
        for w in std::mem::take(&mut self.pending_writes[k]) {
            if w.sync {
                self.stores[k].write(&w.batch).expect("write");
            } else {
                self.stores[k].write_unsynced(&w.batch).expect("write");
            }
            let now = self.now_ms;
            self.nodes[k].on_persisted(w.ticket, now);
        }
        self.collect();
    }

    fn deliver_where(&mut self, keep: impl Fn(NodeId, &Outbound) -> bool) -> usize {
        self.collect();
        let msgs = std::mem::take(&mut self.inflight);
        let mut n = 0;
        for (from, m) in msgs {
            if keep(from, &m) {
                let now = self.now_ms;
                let (to, envelope) = m.envelope();
                self.node(to).on_message(from, envelope, now);
                n += 1;
            }
        }
        self.collect();
        n
    }

    /// Runs everything to quiescence: all writes persisted, all messages delivered.
    fn settle(&mut self) {
        for _ in 0..50 {
            for id in 1..=self.nodes.len() as NodeId {
                self.persist(id);
            }
            if self.deliver_where(|_, _| true) == 0
                && self.pending_writes.iter().all(|w| w.is_empty())
            {
                return;
            }
        }
        panic!("cluster did not settle");
    }

    fn elect(&mut self, id: NodeId) {
        self.now_ms += 1_000;
        let now = self.now_ms;
        self.node(id).tick(now);
        self.settle();
        assert_eq!(self.node(id).status().role, Role::Leader);
        if self.session == 0 {
            self.session = self.register(id);
        }
    }

    /// Opens a session through leader `id`; its id is its index.
    fn register(&mut self, id: NodeId) -> u64 {
        let now = self.now_ms;
        let p = Proposal {
            id: 0,
            client_id: 0,
            seq: 0,
            floor: 0,
            command: ProposalCommand::Register { supersedes: None },
            expected_ballot: None,
        };
        self.node(id).propose(p, now);
        self.settle();
        let reply = self
            .replies
            .iter()
            .rposition(|r| r.id == 0)
            .expect("registered");
        self.replies.remove(reply).result.expect("a session")
    }

    fn propose(&mut self, id: NodeId, req: RequestId, seq: u64, payload: &'static str) {
        let now = self.now_ms;
        let p = Proposal {
            id: req,
            client_id: self.session,
            seq,
            floor: 1,
            command: ProposalCommand::Append(Bytes::from(payload)),
            expected_ballot: None,
        };
        self.node(id).propose(p, now);
        self.collect();
    }

    /// One round with node `dead` down: every other node persists, and
    /// every message not to or from `dead` is delivered.
    fn round_without(&mut self, dead: NodeId) {
        for id in (1..=self.nodes.len() as NodeId).filter(|&id| id != dead) {
            self.persist(id);
        }
        self.deliver_where(|from, m| from != dead && m.to != dead);
    }

    fn reply(&self, req: RequestId) -> Option<&Reply> {
        self.replies.iter().find(|r| r.id == req)
    }
}

#[test]
fn promise_is_released_only_after_its_write_persisted() {
    let mut r = Replica::new(config(1, 3), store(1), 1, 0).expect("new");
    r.on_message(
        2,
        Message::Prepare {
            ballot: Ballot::new(5, 2),
            from_index: 1,
        },
        0,
    );
    assert!(
        r.poll_message().is_none(),
        "a promise must wait for its write"
    );
    let w = r.poll_write().expect("promise write");
    assert_eq!(w.batch.promise, Some(Ballot::new(5, 2)));
    assert!(r.poll_message().is_none());
    r.on_persisted(w.ticket, 0);
    let out = r.poll_message().expect("promise after persist");
    assert!(matches!(out.message, Message::Promise { ballot, .. } if ballot == Ballot::new(5, 2)));
}

#[test]
fn accept_below_promise_is_refused() {
    let mut r = Replica::new(config(1, 3), store(1), 1, 0).expect("new");
    r.on_message(
        2,
        Message::Prepare {
            ballot: Ballot::new(5, 2),
            from_index: 1,
        },
        0,
    );
    let accept = Message::Accept {
        ballot: Ballot::new(4, 3),
        first_index: 1,
        values: vec![Command::Noop.encode()],
        chosen_index: 0,
        sync: true,
    };
    r.on_message(3, accept, 0);
    let w = r.poll_write().expect("promise write");
    assert!(
        w.batch.accepts.is_empty(),
        "nothing accepted below the promise"
    );
    r.on_persisted(w.ticket, 0);
    let msgs: Vec<Outbound> = std::iter::from_fn(|| r.poll_message()).collect();
    assert!(msgs.iter().any(|o| o.to == 3
        && matches!(o.message, Message::Nack { promised, .. } if promised == Ballot::new(5, 2))));
}

#[test]
fn accept_carries_its_promise_in_the_same_batch() {
    let mut r = Replica::new(config(1, 3), store(1), 1, 0).expect("new");
    let accept = Message::Accept {
        ballot: Ballot::new(3, 2),
        first_index: 1,
        values: vec![Command::Noop.encode()],
        chosen_index: 0,
        sync: true,
    };
    r.on_message(2, accept, 0);
    let w = r.poll_write().expect("write");
    assert_eq!(w.batch.promise, Some(Ballot::new(3, 2)));
    assert_eq!(w.batch.accepts.len(), 1);
    assert!(r.poll_message().is_none(), "Accepted waits for the write");
    r.on_persisted(w.ticket, 0);
    assert!(
        matches!(r.poll_message().map(|o| o.message), Some(Message::Accepted { indexes, .. }) if indexes == vec![1])
    );
}

#[test]
fn three_nodes_elect_and_choose() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.propose(1, 10, 1, "a");
    c.settle();
    assert_eq!(c.reply(10).map(|r| r.result.clone()), Some(Ok(2)));
    for id in 1..=3 {
        c.now_ms += 100;
        let t = c.now_ms;
        c.node(id).tick(t);
    }
    c.settle();
    assert_eq!(c.node(1).status().chosen_index, 2);
    let read = c
        .node(1)
        .read_chosen(
            2,
            paxlog_storage::ReadLimit {
                entries_max: 10,
                bytes_max: 1 << 20,
            },
        )
        .expect("read");
    assert!(matches!(&read[0].1, Command::Append { payload, .. } if payload == &Bytes::from("a")));
}

#[test]
fn leader_counts_its_own_accept_only_after_persisting() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.propose(1, 10, 1, "a");
    // Only node 2 receives and persists the Accept; the leader's write waits.
    c.deliver_where(|_, m| m.to == 2);
    c.persist(2);
    c.deliver_where(|_, m| m.to == 1);
    assert!(
        c.reply(10).is_none(),
        "one durable accept of three is not a quorum"
    );
    c.persist(1);
    assert_eq!(c.reply(10).map(|r| r.result.clone()), Some(Ok(2)));
}

#[test]
fn new_leader_adopts_the_highest_accepted_value() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.propose(1, 10, 1, "kept");
    // The accept reaches node 2 only; then node 1 is gone.
    c.deliver_where(|_, m| m.to == 2);
    c.persist(2);
    c.inflight.clear();
    c.now_ms += 5_000;
    let now = c.now_ms;
    c.node(3).tick(now);
    // Node 1 is down: drop everything to and from it.
    for _ in 0..10 {
        c.round_without(1);
    }
    assert_eq!(c.node(3).status().role, Role::Leader);
    let read = c
        .node(3)
        .read_chosen(
            2,
            paxlog_storage::ReadLimit {
                entries_max: 1,
                bytes_max: 1 << 20,
            },
        )
        .expect("read");
    assert!(
        matches!(&read[0].1, Command::Append { payload, .. } if payload == &Bytes::from("kept"))
    );
}

#[test]
fn duplicate_append_returns_the_first_index() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.propose(1, 10, 1, "a");
    c.settle();
    c.propose(1, 11, 2, "b");
    c.settle();
    c.propose(1, 12, 1, "a");
    c.settle();
    assert_eq!(c.reply(12).map(|r| r.result.clone()), Some(Ok(2)));
    assert_eq!(
        c.node(1).status().last_index,
        3,
        "no new entry for a duplicate"
    );
}

#[test]
fn fencing_and_size_and_redirect_errors() {
    let mut c = Cluster::new(3);
    c.elect(1);
    let now = c.now_ms;
    let session = c.session;
    let fenced = Proposal {
        id: 1,
        client_id: session,
        seq: 1,
        floor: 1,
        command: ProposalCommand::Append(Bytes::from("x")),
        expected_ballot: Some(Ballot::new(999, 1)),
    };
    c.node(1).propose(fenced, now);
    let big = Proposal {
        id: 2,
        client_id: session,
        seq: 2,
        floor: 1,
        command: ProposalCommand::Append(Bytes::from(vec![0u8; 2 << 20])),
        expected_ballot: None,
    };
    c.node(1).propose(big, now);
    let redirect = Proposal {
        id: 3,
        client_id: session,
        seq: 3,
        floor: 1,
        command: ProposalCommand::Append(Bytes::from("y")),
        expected_ballot: None,
    };
    c.node(2).propose(redirect, now);
    c.collect();
    assert!(matches!(
        c.reply(1).map(|r| &r.result),
        Some(Err(OpError::Fenced { .. }))
    ));
    assert!(matches!(
        c.reply(2).map(|r| &r.result),
        Some(Err(OpError::TooLarge { .. }))
    ));
    assert_eq!(
        c.reply(3).map(|r| r.result.clone()),
        Some(Err(OpError::NotLeader {
            leader_hint: Some(1)
        }))
    );
}

/// Request `id`: session `client_id`'s seq 1, appended only under ballot
/// `expected`.
fn append_if(id: RequestId, client_id: u64, expected: Ballot) -> Proposal {
    Proposal {
        id,
        client_id,
        seq: 1,
        floor: 1,
        command: ProposalCommand::Append(Bytes::from("fenced write")),
        expected_ballot: Some(expected),
    }
}

/// An `append_if` whose first copy was chosen under ballot b, retried with
/// the same `(client_id, seq)` and b after a leader change: the retry is the
/// same append, so it gets the first index; `Fenced` would leave the client
/// unable ever to learn that it happened.
#[test]
fn a_retried_append_if_chosen_before_a_leader_change_gets_its_first_index() {
    let mut c = Cluster::new(3);
    c.elect(1);
    let b = c.node(1).status().ballot;
    let session = c.session;
    let append_if = |id| append_if(id, session, b);
    let now = c.now_ms;
    c.node(1).propose(append_if(10), now);
    c.settle();
    assert_eq!(c.reply(10).map(|r| r.result.clone()), Some(Ok(2)));
    c.elect(2);
    assert_ne!(c.node(2).status().ballot, b, "a new ballot leads");
    let now = c.now_ms;
    c.node(2).propose(append_if(11), now);
    c.settle();
    assert_eq!(c.reply(11).map(|r| r.result.clone()), Some(Ok(2)));
    // A new append under the old ballot is still fenced.
    let fresh = Proposal {
        seq: 2,
        ..append_if(12)
    };
    c.node(2).propose(fresh, now);
    c.collect();
    assert!(matches!(
        c.reply(12).map(|r| &r.result),
        Some(Err(OpError::Fenced { .. }))
    ));
}

/// The same with the first copy accepted but not yet known chosen when the
/// leader changes: the new leader re-proposes it, and the retry joins it.
#[test]
fn a_retried_append_if_in_flight_across_a_leader_change_joins_the_first_copy() {
    let mut c = Cluster::new(3);
    c.elect(1);
    let b = c.node(1).status().ballot;
    let session = c.session;
    let append_if = |id| append_if(id, session, b);
    let now = c.now_ms;
    c.node(1).propose(append_if(10), now);
    // The accept reaches node 2 only; then node 1 is gone.
    c.deliver_where(|_, m| m.to == 2);
    c.persist(2);
    c.inflight.clear();
    c.now_ms += 5_000;
    let now = c.now_ms;
    c.node(2).tick(now);
    for _ in 0..10 {
        if c.node(2).status().role == Role::Leader {
            break;
        }
        c.round_without(1);
    }
    assert_eq!(c.node(2).status().role, Role::Leader);
    assert_eq!(c.node(2).status().chosen_index, 1, "still in flight");
    let now = c.now_ms;
    c.node(2).propose(append_if(11), now);
    for _ in 0..10 {
        c.round_without(1);
    }
    assert_eq!(c.reply(11).map(|r| r.result.clone()), Some(Ok(2)));
}

#[test]
fn leader_without_quorum_steps_down_and_fails_fast() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.propose(1, 10, 1, "a");
    c.persist(1);
    c.inflight.clear(); // followers never hear it
    c.now_ms += 1_000;
    let now = c.now_ms;
    c.node(1).tick(now);
    c.collect();
    assert_eq!(
        c.reply(10).map(|r| r.result.clone()),
        Some(Err(OpError::Indeterminate))
    );
    assert_ne!(c.node(1).status().role, Role::Leader);
    c.propose(1, 11, 2, "b");
    assert!(matches!(
        c.reply(11).map(|r| &r.result),
        Some(Err(OpError::NotLeader { .. }))
    ));
}

#[test]
fn suspect_store_never_votes() {
    let s = store(1);
    s.mark_suspect("test");
    let mut r = Replica::new(config(1, 3), s, 1, 0).expect("new");
    assert!(r.status().suspect);
    r.on_message(
        2,
        Message::Prepare {
            ballot: Ballot::new(5, 2),
            from_index: 1,
        },
        0,
    );
    let accept = Message::Accept {
        ballot: Ballot::new(5, 2),
        first_index: 1,
        values: vec![Command::Noop.encode()],
        chosen_index: 0,
        sync: true,
    };
    r.on_message(2, accept, 0);
    r.tick(10_000);
    assert!(r.poll_write().is_none());
    assert!(r.poll_message().is_none());
}

#[test]
fn restart_recovers_promise_and_accepted_entries() {
    let s = store(1);
    let batch = WriteBatch {
        promise: Some(Ballot::new(7, 3)),
        accepts: vec![(
            1,
            Accepted {
                ballot: Ballot::new(7, 3),
                value: Command::Noop.encode(),
            },
        )],
        chosen_index: None,
        trim_index: None,
        trim_state: None,
    };
    s.write(&batch).expect("write");
    let mut r = Replica::new(config(1, 3), s, 1, 0).expect("new");
    assert_eq!(r.status().ballot, Ballot::new(7, 3));
    assert_eq!(r.status().last_index, 1);
    r.on_message(
        2,
        Message::Prepare {
            ballot: Ballot::new(6, 2),
            from_index: 1,
        },
        0,
    );
    assert!(matches!(
        r.poll_message().map(|o| o.message),
        Some(Message::Nack { .. })
    ));
}

#[test]
fn storage_failure_stops_all_output() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.propose(1, 10, 1, "a");
    c.node(1).on_storage_failed();
    assert!(c.node(1).is_failed());
    c.settle();
    assert!(
        c.reply(10).is_none(),
        "a failed leader acknowledges nothing"
    );
}

#[test]
fn invalid_config_is_a_typed_error() {
    let bad = Config::new(3, vec![1, 2, 2, 3]);
    assert!(matches!(
        Replica::new(bad, store(4), 1, 0),
        Err(CoreError::Config(_))
    ));
}

#[test]
fn single_node_cluster_leads_and_chooses_alone() {
    let mut c = Cluster::new(1);
    c.elect(1);
    c.propose(1, 10, 1, "solo");
    c.settle();
    assert_eq!(c.reply(10).map(|r| r.result.clone()), Some(Ok(2)));
}

/// `command` as request `req`, outside any session.
pub(super) fn untracked(req: RequestId, command: ProposalCommand) -> Proposal {
    Proposal {
        id: req,
        client_id: 0,
        seq: 0,
        floor: 0,
        command,
        expected_ballot: None,
    }
}

/// Node `id` proposes `command` as request `req` (no session), and the
/// cluster settles.
pub(super) fn propose_command(
    c: &mut Cluster,
    id: NodeId,
    req: RequestId,
    command: ProposalCommand,
) {
    let now = c.now_ms;
    c.node(id).propose(untracked(req, command), now);
    c.settle();
}

/// A snapshot at `index` held by node 1, as node 1's application publishes it.
pub(super) fn snapshot_of(index: Index) -> ProposalCommand {
    ProposalCommand::Snapshot {
        index,
        size_bytes: 100,
        crc32c: 0xC0FFEE,
        holder: 1,
    }
}

/// Three nodes, node 1 leading, five appends chosen (indexes 2 to 6); then
/// node 1 publishes a snapshot at `snapshot` (request 98, none if 0) and is
/// asked (request 99) to trim up to `upto`.
pub(super) fn five_appends_then_trim(snapshot: Index, upto: Index) -> Cluster {
    let mut c = Cluster::new(3);
    c.elect(1);
    for seq in 1..=5 {
        c.propose(1, seq, seq, "x");
    }
    c.settle();
    if snapshot > 0 {
        propose_command(&mut c, 1, 98, snapshot_of(snapshot));
    }
    propose_command(&mut c, 1, 99, ProposalCommand::Trim(upto));
    c
}

#[test]
fn reads_below_the_trim_point_name_the_first_index_held() {
    let mut c = five_appends_then_trim(3, 3);
    c.node(1).set_applied(8);
    c.settle();
    assert_eq!(c.node(1).status().trim_index, 3);
    let limit = paxlog_storage::ReadLimit {
        entries_max: 10,
        bytes_max: 1 << 20,
    };
    assert!(matches!(
        c.node(1).read_chosen(2, limit),
        Err(CoreError::Trimmed { index: 2, first: 4 })
    ));
    assert_eq!(
        c.node(1)
            .read_chosen(4, limit)
            .expect("read")
            .first()
            .map(|e| e.0),
        Some(4)
    );
}

/// `paxlog trim --upto 999999` on a short log once trimmed everything on
/// every node, each at its own applied index: now refused, nothing trimmed.
#[test]
fn a_trim_above_the_chosen_index_is_refused_and_trims_nothing() {
    let mut c = five_appends_then_trim(6, 999_999);
    let chosen = c.node(1).status().chosen_index;
    assert!(chosen >= 5, "the five appends are chosen: {chosen}");
    assert_eq!(
        c.reply(99).map(|r| r.result.clone()),
        Some(Err(OpError::TrimAboveChosen {
            upto: 999_999,
            chosen
        }))
    );
    assert_eq!(
        c.node(1).status().last_index,
        chosen,
        "nothing was proposed"
    );
    for id in 1..=3 {
        let applied = c.node(id).status().chosen_index;
        c.node(id).set_applied(applied);
    }
    c.settle();
    for id in 1..=3 {
        assert_eq!(c.node(id).status().trim_index, 0, "node {id}");
    }
}

#[test]
fn promise_is_bounded_and_continues_from_next_index() {
    let s = store(1);
    let accepts = (1..=10)
        .map(|i| {
            (
                i,
                Accepted {
                    ballot: Ballot::new(1, 2),
                    value: Command::Noop.encode(),
                },
            )
        })
        .collect();
    s.write(&WriteBatch {
        promise: Some(Ballot::new(1, 2)),
        accepts,
        chosen_index: None,
        trim_index: None,
        trim_state: None,
    })
    .expect("write");
    let mut cfg = config(1, 3);
    cfg.limits.catchup_entries_max = 4;
    let mut r = Replica::new(cfg, s.clone(), 1, 0).expect("new");
    r.on_message(
        3,
        Message::Prepare {
            ballot: Ballot::new(2, 3),
            from_index: 1,
        },
        0,
    );
    let w = r.poll_write().expect("promise write");
    s.write(&w.batch).expect("write");
    r.on_persisted(w.ticket, 0);
    let Some(Message::Promise {
        entries,
        next_index,
        ..
    }) = r.poll_message().map(|o| o.message)
    else {
        panic!("expected a promise");
    };
    assert_eq!(entries.len(), 4);
    assert_eq!(next_index, Some(5));
    r.on_message(
        3,
        Message::Prepare {
            ballot: Ballot::new(2, 3),
            from_index: 9,
        },
        0,
    );
    let Some(Message::Promise {
        entries,
        next_index,
        ..
    }) = r.poll_message().map(|o| o.message)
    else {
        panic!("expected the rest of the promise");
    };
    assert_eq!(entries.iter().map(|e| e.0).collect::<Vec<_>>(), vec![9, 10]);
    assert_eq!(next_index, None);
}

#[test]
fn leader_keeps_the_window_and_gets_busy_beyond_uncommitted_bytes() {
    let mut c = Cluster::new(3);
    c.elect(1);
    let cfg = &mut c.nodes[0].config;
    cfg.limits.window_entries_max = 3;
    cfg.limits.batch_entries_max = 2;
    cfg.limits.uncommitted_bytes_max = 60; // about four encoded appends
    for seq in 1..=10 {
        c.propose(1, seq, seq, "0123456789");
    }
    c.collect();
    let sent_to_2: usize = c
        .inflight
        .iter()
        .filter_map(|(_, o)| match &o.message {
            Message::Accept { values, .. } if o.to == 2 => Some(values.len()),
            _ => None,
        })
        .sum();
    assert_eq!(sent_to_2, 3, "no more than the window in flight");
    assert!(c
        .inflight
        .iter()
        .all(|(_, o)| !matches!(&o.message, Message::Accept { values, .. } if values.len() > 2)));
    assert!(
        c.replies.iter().any(|r| r.result == Err(OpError::Busy)),
        "beyond uncommitted_bytes_max proposals get Busy"
    );
    c.settle();
    assert!(c.replies.iter().filter(|r| r.result.is_ok()).count() >= 3);
}

#[test]
fn a_node_that_lost_contact_alone_cannot_depose_a_live_leader() {
    let mut c = Cluster::new(3);
    c.elect(1);
    let ballot = c.node(1).status().ballot;
    // Node 3 hears nothing for a while; nodes 1 and 2 keep talking.
    for _ in 0..20 {
        c.now_ms += 50;
        let now = c.now_ms;
        c.node(1).tick(now);
        c.node(2).tick(now);
        c.persist(1);
        c.persist(2);
        c.deliver_where(|from, m| from != 3 && m.to != 3);
    }
    let now = c.now_ms;
    c.node(3).tick(now);
    c.collect();
    assert!(
        c.inflight
            .iter()
            .any(|(from, o)| *from == 3 && matches!(o.message, Message::PreVote { .. })),
        "node 3's election timer fired"
    );
    c.settle();
    assert_eq!(c.node(1).status().role, Role::Leader);
    assert_eq!(c.node(1).status().ballot, ballot, "no ballot was raised");
    assert!(c.node(3).status().ballot <= ballot);
}

mod catchup;
mod chunking;
mod follower_read;
mod invariants;
mod peer_input;
mod read_index;
mod reads;
mod sessions;
mod snapshots;
mod thrifty;
