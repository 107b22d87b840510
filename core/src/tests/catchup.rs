//! A follower thousands of entries behind catches up in replies of
//! thousands of entries, polled out one by one, while the debug checks
//! (every test and the `ci` profile run them) stay a constant cost per
//! check: walking the whole mirror every 16th poll made a catch-up
//! quadratic in the reply, and a busy cluster's lagging follower never
//! caught up (`nemesis_mix`, seed 6803080278781746613).

use bytes::Bytes;

use super::Cluster;
use crate::debug_checks::MIRRORED_PER_CHECK;
use crate::{Proposal, ProposalCommand};

/// Appends chosen while node 3 is cut off: one catch-up reply at the
/// default `catchup_entries_max` (4,096), which node 3 mirrors whole and
/// polls out one entry at a time.
const BEHIND: u64 = 3_000;

fn append(c: &mut Cluster, seq: u64) {
    let p = Proposal {
        id: seq,
        client_id: c.session,
        seq,
        floor: seq,
        command: ProposalCommand::Append(Bytes::from_static(b"v")),
        expected_ballot: None,
    };
    let now = c.now_ms;
    c.node(1).propose(p, now);
}

#[cfg(debug_assertions)]
#[test]
fn a_follower_thousands_behind_catches_up_at_a_constant_check_cost_per_poll() {
    let mut c = Cluster::new(3);
    c.elect(1);
    for seq in 1..=BEHIND {
        append(&mut c, seq);
        if seq % 128 == 0 {
            c.round_without(3);
        }
    }
    for _ in 0..4 {
        c.round_without(3);
    }
    let target = c.node(1).status().chosen_index;
    assert!(target > BEHIND, "the leader chose the appends ({target})");
    assert!(c.node(3).status().chosen_index < 10, "node 3 was cut off");

    let checks = &c.node(3).debug_checks;
    let before = (checks.checks.get(), checks.walked_entries.get());
    let mut rounds = 0;
    while c.node(3).status().chosen_index < target {
        rounds += 1;
        assert!(rounds <= 20, "node 3 caught up within 20 heartbeats");
        c.now_ms += 2 * c.node(1).config.heartbeat_interval_ms;
        let now = c.now_ms;
        c.node(1).tick(now);
        c.settle();
    }
    let checks = &c.node(3).debug_checks;
    let polled = checks.checks.get() - before.0;
    let walked = checks.walked_entries.get() - before.1;
    println!("node 3: {polled} checks walked {walked} mirrored entries in {rounds} rounds");
    assert!(walked > 0, "the catch-up's checks walked the mirror");
    assert!(
        walked <= MIRRORED_PER_CHECK * polled,
        "the walks cost at most {MIRRORED_PER_CHECK} mirrored entries per check: \
         {walked} over {polled} checks"
    );
}
