//! The session table's rules, one by one.

use crate::sessions::*;

#[test]
fn effective_seqs_are_contiguous_and_retries_answer_the_first_index() {
    let mut t = SessionTable::new(4, 64, 8);
    t.register(3, None);
    assert_eq!(t.append(3, 1, 1, 4), Fold::Effective);
    assert_eq!(
        t.append(3, 3, 1, 5),
        Fold::Hidden(Hidden::Refused(Refusal::OutOfOrder { expected: 2 }))
    );
    assert_eq!(t.append(3, 2, 1, 6), Fold::Effective);
    assert_eq!(t.append(3, 1, 1, 7), Fold::Hidden(Hidden::DuplicateOf(4)));
    assert_eq!(t.lookup(3, 2), Lookup::Effective(6));
    assert_eq!(
        t.append(9, 1, 1, 8),
        Fold::Hidden(Hidden::Refused(Refusal::SessionExpired))
    );
}

#[test]
fn floor_forgets_acknowledged_seqs_and_window_bounds_the_rest() {
    let mut t = SessionTable::new(4, 64, 2);
    t.register(1, None);
    assert_eq!(t.append(1, 1, 1, 2), Fold::Effective);
    assert_eq!(t.append(1, 2, 1, 3), Fold::Effective);
    assert_eq!(
        t.append(1, 3, 1, 4),
        Fold::Hidden(Hidden::Refused(Refusal::WindowFull))
    );
    assert_eq!(t.append(1, 3, 2, 5), Fold::Effective);
    assert_eq!(
        t.lookup(1, 1),
        Lookup::Refused(Refusal::BelowFloor { floor: 2 })
    );
    t.assert_invariants();
}

#[test]
fn a_superseded_session_takes_no_new_seq_but_still_answers_retries() {
    let mut t = SessionTable::new(4, 64, 8);
    t.register(1, None);
    assert_eq!(t.append(1, 1, 1, 2), Fold::Effective);
    t.register(3, Some(1));
    assert_eq!(t.append(1, 1, 1, 4), Fold::Hidden(Hidden::DuplicateOf(2)));
    assert_eq!(
        t.append(1, 2, 1, 5),
        Fold::Hidden(Hidden::Refused(Refusal::SessionExpired))
    );
}

#[test]
fn eviction_is_least_recently_used_and_bounded_in_sessions_and_seqs() {
    let mut t = SessionTable::new(2, 3, 8);
    t.register(1, None);
    t.register(2, None);
    assert_eq!(t.append(1, 1, 1, 3), Fold::Effective);
    t.register(4, None);
    assert_eq!(t.len(), 2);
    assert_eq!(t.lookup(2, 1), Lookup::Refused(Refusal::SessionExpired));
    assert_eq!(t.append(4, 1, 1, 5), Fold::Effective);
    assert_eq!(t.append(4, 2, 1, 6), Fold::Effective);
    assert_eq!(t.append(4, 3, 1, 7), Fold::Effective);
    assert_eq!(t.len(), 1, "the seq bound evicted session 1");
    t.assert_invariants();
}

#[test]
fn trim_state_round_trips_and_refuses_garbage() {
    let mut t = SessionTable::new(4, 64, 8);
    t.register(1, None);
    t.append(1, 1, 1, 2);
    let holds = [(
        "backup".to_string(),
        crate::Hold {
            index: 2,
            lease_ms: 1_000,
            renewed_at: 3,
        },
    )]
    .into();
    let state = TrimState::new(3, &t, &crate::Membership::seed(&[1]), &holds);
    let back = TrimState::decode(&state.encode()).expect("decodes");
    assert_eq!(back, state);
    assert_eq!(back.table(4, 64, 8), t);
    assert!(TrimState::decode(b"\xff\xff\xff").is_err());
}

/// Issue 11, hole 2: a node started over a log that holds a retried append
/// twice (the retry reached a new leader while the original survived on a
/// minority that a later leader adopted) hides the second copy, and answers
/// a retry with the first index, exactly as the nodes that never restarted
/// do: the session table is rebuilt from the whole chosen log.
/// Seen failing on f8f3c80 (the dedup table): the restarted nodes emitted
/// index 3 with `duplicate_of: None`.
#[test]
fn a_restarted_node_hides_the_duplicates_the_others_hide() {
    use bytes::Bytes;
    use paxlog_storage::{Accepted, Ballot, Store, WriteBatch};

    use super::{config, store};
    use crate::{Command, Replica};

    let append = |seq: u64, payload: &'static str| Command::Append {
        client_id: 1,
        seq,
        floor: 1,
        payload: Bytes::from(payload),
    };
    let log = [
        Command::Register { supersedes: None },
        append(1, "first"),
        append(1, "first"),
        append(2, "second"),
    ];
    let accepts: Vec<_> = log
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let accepted = Accepted {
                ballot: Ballot::new(1, 1),
                value: c.encode(),
            };
            (i as u64 + 1, accepted)
        })
        .collect();
    for id in 1..=3 {
        let s = store(id);
        s.write(&WriteBatch {
            promise: Some(Ballot::new(1, 1)),
            accepts: accepts.clone(),
            chosen_index: Some(4),
            trim_index: None,
            trim_state: None,
        })
        .expect("seed");
        let mut r = Replica::new(config(id, 3), s, 7, 0).expect("start over the log");
        let mut emitted = Vec::new();
        while let Some(chosen) = r.poll_chosen() {
            emitted.push((chosen.index, chosen.hidden));
        }
        assert_eq!(
            emitted,
            [
                (1, None),
                (2, None),
                (3, Some(Hidden::DuplicateOf(2))),
                (4, None)
            ],
            "node {id}"
        );
        assert_eq!(r.learner.sessions.lookup(1, 1), Lookup::Effective(2));
    }
}
