//! The trim point never passes the newest published snapshot, and a node
//! that catches up below it hands its application that snapshot instead of
//! silently skipping the prefix (issue 14).

use super::{five_appends_then_trim, propose_command, snapshot_of, untracked, Cluster};
use crate::{OpError, ProposalCommand};

/// Every node says its application applied all it knows chosen.
fn apply_all(c: &mut Cluster) {
    heartbeat(c);
    for id in 1..=3 {
        let chosen = c.node(id).status().chosen_index;
        c.node(id).set_applied(chosen);
    }
    c.settle();
}

/// Node 1, the leader, tells the others what is chosen.
fn heartbeat(c: &mut Cluster) {
    c.now_ms += 100;
    let now = c.now_ms;
    c.node(1).tick(now);
    c.settle();
}

/// Before snapshots a trim with nothing published trimmed the prefix on
/// every node, and a node behind it could never rebuild its application.
#[test]
fn a_trim_with_no_snapshot_published_is_refused_and_trims_nothing() {
    let mut c = five_appends_then_trim(0, 3);
    assert_eq!(
        c.reply(99).map(|r| r.result.clone()),
        Some(Err(OpError::TrimAboveSnapshot {
            upto: 3,
            snapshot: 0
        }))
    );
    apply_all(&mut c);
    for id in 1..=3 {
        assert_eq!(c.node(id).status().trim_index, 0, "node {id}");
    }
}

#[test]
fn a_trim_above_the_newest_snapshot_is_refused_and_one_at_it_trims_everywhere() {
    let mut c = five_appends_then_trim(4, 5);
    assert_eq!(
        c.reply(99).map(|r| r.result.clone()),
        Some(Err(OpError::TrimAboveSnapshot {
            upto: 5,
            snapshot: 4
        }))
    );
    propose_command(&mut c, 1, 100, ProposalCommand::Trim(4));
    assert!(matches!(c.reply(100).map(|r| &r.result), Some(Ok(_))));
    apply_all(&mut c);
    for id in 1..=3 {
        let status = c.node(id).status();
        assert_eq!(status.trim_index, 4, "node {id}");
        let snapshot = status.snapshot.expect("the snapshot is known everywhere");
        assert_eq!((snapshot.index, snapshot.crc32c), (4, 0xC0FFEE));
    }
}

#[test]
fn a_snapshot_of_an_index_not_chosen_yet_is_refused() {
    let mut c = five_appends_then_trim(0, 0);
    let chosen = c.node(1).status().chosen_index;
    propose_command(&mut c, 1, 100, snapshot_of(chosen + 1));
    assert_eq!(
        c.reply(100).map(|r| r.result.clone()),
        Some(Err(OpError::SnapshotAboveChosen {
            index: chosen + 1,
            chosen
        }))
    );
    assert!(c.node(2).status().snapshot.is_none());
}

/// Seen failing with mutation `SkipWithoutSnapshot` (the old behaviour):
/// node 3 emitted index 8 right after index 2, its application silently
/// missing 3 to 7.
#[test]
fn a_node_behind_the_trim_point_installs_the_snapshot_then_goes_on_after_it() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.propose(1, 1, 1, "x");
    c.settle();
    assert_eq!(c.emitted[2], vec![1], "node 3 applied the registration");
    for seq in 2..=8 {
        c.propose(1, seq, seq, "x");
        c.round_without(3);
    }
    for _ in 0..3 {
        c.round_without(3);
    }
    let chosen = c.node(1).status().chosen_index;
    assert_eq!(chosen, 9);
    let now = c.now_ms;
    for (req, command) in [(98, snapshot_of(7)), (99, ProposalCommand::Trim(7))] {
        c.node(1).propose(untracked(req, command), now);
        for _ in 0..4 {
            c.round_without(3);
        }
    }
    c.now_ms += 100;
    let now = c.now_ms;
    c.node(1).tick(now);
    c.round_without(3);
    c.round_without(3);
    for id in 1..=2 {
        let chosen = c.node(id).status().chosen_index;
        c.node(id).set_applied(chosen);
        assert_eq!(c.node(id).status().trim_index, 7, "node {id} trimmed");
    }
    // Node 3 comes back; a new append makes the leader talk to it.
    c.propose(1, 9, 9, "y");
    c.settle();
    let status = c.node(3).status();
    assert_eq!(
        status.trim_index, 7,
        "node 3 caught up below the trim point"
    );
    let before = c.emitted[2].clone();
    assert!(
        before.iter().copied().eq(1..=before.len() as u64) && before.len() < 7,
        "node 3 emitted only what it had before the trim point: {before:?}"
    );
    let offered: Vec<_> = c.offered[2].iter().map(|s| s.index).collect();
    assert_eq!(offered, vec![7]);
    c.node(3).on_snapshot_installed(7);
    c.settle();
    let last = c.node(3).status().chosen_index;
    let mut expected = before;
    expected.extend(8..=last);
    assert_eq!(
        c.emitted[2], expected,
        "the snapshot, then every index after it"
    );
    assert_eq!(c.offered[2].len(), 1, "offered once");
}

fn hold(name: &str, index: crate::Index, lease_ms: u64) -> ProposalCommand {
    ProposalCommand::Hold {
        name: name.into(),
        index,
        lease_ms,
    }
}

/// A slow reader's hold keeps the log above it: a trim past it is refused
/// by name, one at it trims everywhere, and once released the trim goes on
/// to the snapshot.
#[test]
fn a_live_hold_bounds_trims_until_it_is_released() {
    let mut c = five_appends_then_trim(6, 0);
    propose_command(&mut c, 1, 100, hold("reader", 3, 60_000));
    propose_command(&mut c, 1, 101, ProposalCommand::Trim(6));
    assert_eq!(
        c.reply(101).map(|r| r.result.clone()),
        Some(Err(OpError::TrimPastHold {
            upto: 6,
            hold: "reader".into(),
            index: 3
        }))
    );
    propose_command(&mut c, 1, 102, ProposalCommand::Trim(3));
    apply_all(&mut c);
    for id in 1..=3 {
        let status = c.node(id).status();
        assert_eq!(status.trim_index, 3, "node {id}");
        assert_eq!(
            status.holds.get("reader").map(|h| h.index),
            Some(3),
            "node {id}"
        );
    }
    let release = ProposalCommand::Release {
        name: "reader".into(),
        renewed_at: None,
    };
    propose_command(&mut c, 1, 103, release);
    propose_command(&mut c, 1, 104, ProposalCommand::Trim(6));
    assert!(matches!(c.reply(104).map(|r| &r.result), Some(Ok(_))));
    apply_all(&mut c);
    for id in 1..=3 {
        assert_eq!(c.node(id).status().trim_index, 6, "node {id}");
    }
}

/// The leader releases a hold its owner stopped renewing, by its own clock,
/// and only once the lease ran out since the last renewal.
#[test]
fn a_hold_not_renewed_within_its_lease_is_released_by_the_leader() {
    let mut c = five_appends_then_trim(0, 0);
    let held = |c: &mut Cluster| {
        (1..=3)
            .map(|id| c.node(id).status().holds.len())
            .collect::<Vec<_>>()
    };
    propose_command(&mut c, 1, 100, hold("reader", 3, 1_000));
    heartbeat(&mut c);
    assert_eq!(held(&mut c), vec![1, 1, 1]);
    // 700 ms on, renewed: its lease starts again.
    for _ in 0..7 {
        heartbeat(&mut c);
    }
    propose_command(&mut c, 1, 101, hold("reader", 4, 1_000));
    for _ in 0..7 {
        heartbeat(&mut c);
    }
    assert_eq!(
        held(&mut c),
        vec![1, 1, 1],
        "renewed 700 ms ago: still held"
    );
    for _ in 0..5 {
        heartbeat(&mut c);
    }
    heartbeat(&mut c);
    assert_eq!(
        held(&mut c),
        vec![0, 0, 0],
        "1.3 s without a renewal: released"
    );
}
