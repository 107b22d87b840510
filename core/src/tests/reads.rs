//! Reads never skip a chosen index: a hole in a node's log is an error the
//! reader sees, not a shorter answer (issue 12: a run of acknowledged
//! entries once went missing from what `paxlog read` returned).

use paxlog_storage::ReadLimit;

use super::Cluster;
use crate::CoreError;

const ALL: ReadLimit = ReadLimit {
    entries_max: usize::MAX,
    bytes_max: usize::MAX,
};

/// Seen failing before the check: node 1 answered indexes 2, 3 and 5 with
/// index 4 silently left out.
#[test]
fn a_read_over_a_lost_index_fails_instead_of_skipping_it() {
    let mut c = Cluster::new(3);
    c.elect(1);
    for (req, payload) in [(10, "a"), (11, "b"), (12, "c"), (13, "d")] {
        c.propose(1, req, req - 9, payload);
    }
    c.settle();
    // The application takes what is chosen, and once the chosen index is
    // durable the mirror lets the entries go: reads then come from the store.
    c.now_ms += 1_000;
    let now = c.now_ms;
    c.node(1).tick(now);
    c.persist(1);
    let chosen = c.node(1).status().chosen_index;
    assert_eq!(chosen, 5, "a registration and four appends");
    let whole = c.node(1).read_user_entries(1, chosen, ALL).expect("read");
    assert_eq!(whole.entries.len(), 4);
    assert!(
        !c.node(1).acceptor.entries.contains_key(&4),
        "index 4 is read from the store, not the mirror"
    );
    c.stores[0].lose_entry(4);
    match c.node(1).read_user_entries(1, chosen, ALL) {
        Err(CoreError::Missing { index: 4 }) => {}
        other => panic!("a read over the lost index 4 answered {other:?}"),
    }
    let past = c.node(1).read_user_entries(5, chosen, ALL);
    assert_eq!(
        past.map(|r| r.entries.len()).ok(),
        Some(1),
        "what lies past the hole is still readable"
    );
}
