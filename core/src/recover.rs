//! Building a replica over a store: recovery after a crash or a restart.

use std::collections::BTreeMap;

use paxlog_storage::{Accepted, Ballot, Health, ReadLimit, Store};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::acceptor_state::AcceptorState;
use super::config::validate;
use super::fold::{fold, fold_membership};
use super::holds::{fold_hold, Holds};
use super::io::Io;
use super::learner_state::LearnerState;
use super::read_state::{FollowerReads, READ_IDS_START_MAX};
use super::replica::{Replica, RoleState};
use super::sessions::{Fold, SessionTable, TrimState};
use super::snapshot_meta::fold_snapshot;
use super::{Command, Config, CoreError, Membership, Mutation};

/// Entries read from the store per step while recovering.
const RECOVER_CHUNK: usize = 4096;

impl<S: Store> Replica<S> {
    pub fn new(config: Config, store: S, seed: u64, now_ms: u64) -> Result<Self, CoreError> {
        validate(&config)?;
        let meta = store.metadata();
        let incarnation = store.incarnation();
        let suspect = matches!(store.health(), Health::Suspect { .. });
        let mut promised = meta.promised;
        if config.mutated(Mutation::ForgetPromiseOnRestart) {
            promised = Ballot::ZERO;
        }
        let mut entries = BTreeMap::new();
        let last_index = store.last_index().max(meta.trim_index);
        let mut from = meta.chosen_index.max(meta.trim_index) + 1;
        let limit = ReadLimit {
            entries_max: RECOVER_CHUNK,
            bytes_max: usize::MAX,
        };
        while from <= last_index {
            let chunk = store.range(from, last_index, limit)?;
            let Some(&(last, _)) = chunk.last() else {
                break;
            };
            entries.extend(chunk);
            from = last + 1;
        }
        let mut rng =
            ChaCha8Rng::seed_from_u64(seed ^ config.node_id.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        // A previous life's read-index requests may still be answered: the
        // ids of this one start elsewhere, so such an answer matches none.
        let follower_reads = FollowerReads {
            next_id: rng.gen_range(0..READ_IDS_START_MAX),
            ..FollowerReads::default()
        };
        let limits = &config.limits;
        let (sessions_max, seqs_max, window) = (
            limits.sessions_max,
            limits.session_seqs_max,
            limits.session_window,
        );
        // The table at the trim point, written with the trim; every chosen
        // entry above it is replayed onto it below.
        let trim_state = store.trim_state()?;
        let (trim_table, trim_membership, trim_holds) = match &trim_state {
            Some(bytes) => {
                let state = TrimState::decode(bytes).map_err(|reason| CoreError::Decode {
                    index: meta.trim_index,
                    reason: format!("the session table stored with the trim point: {reason}"),
                })?;
                if state.at != meta.trim_index {
                    return Err(CoreError::Decode {
                        index: meta.trim_index,
                        reason: format!(
                            "the session table stored with the trim point is at index {}",
                            state.at
                        ),
                    });
                }
                let table = state.table(sessions_max, seqs_max, window);
                (table, state.membership, state.holds)
            }
            None => {
                if meta.trim_index > 0 {
                    tracing::warn!(
                        trim_index = meta.trim_index,
                        "no session table stored with the trim point (written by an older \
                         version): retries of appends below it are not recognised"
                    );
                }
                let seed = Membership::seed(&config.members);
                (
                    SessionTable::new(sessions_max, seqs_max, window),
                    seed,
                    Holds::new(),
                )
            }
        };
        let max_seen = promised.max(
            entries
                .values()
                .map(|a: &Accepted| a.ballot)
                .max()
                .unwrap_or_default(),
        );
        let mut replica = Replica {
            config,
            store,
            rng,
            now_ms,
            chosen_flushed_ms: now_ms,
            failed: false,
            appends_proposed: (0, 0),
            acceptor: AcceptorState {
                promised,
                max_seen,
                entries,
                last_index,
                suspect,
            },
            learner: LearnerState {
                chosen_index: meta.chosen_index.max(meta.trim_index),
                durable_chosen_index: meta.chosen_index.max(meta.trim_index),
                trim_index: meta.trim_index,
                emitted_index: meta.trim_index,
                applied_index: meta.trim_index,
                dedup_index: meta.trim_index,
                sessions: trim_table.clone(),
                hidden: BTreeMap::new(),
                trim_fold_index: meta.trim_index,
                trim_sessions: trim_table,
                membership: trim_membership.clone(),
                trim_membership,
                trim_state,
                trim_target: meta.trim_index,
                pending_trims: BTreeMap::new(),
                snapshot: None,
                behind_trim: false,
                snapshot_offered: 0,
                holds: trim_holds.clone(),
                trim_holds,
            },
            waiters: BTreeMap::new(),
            io: Io::new(),
            role: RoleState::Follower,
            debug_checks: Default::default(),
            leader: None,
            leader_contact_ms: None,
            election_deadline_ms: 0,
            peer_contact_ms: BTreeMap::new(),
            catchup_sent_ms: None,
            catchup_asked: BTreeMap::new(),
            pre_vote: None,
            follower_reads,
            incarnation,
            peer_incarnation: BTreeMap::new(),
            peer_chosen: BTreeMap::new(),
        };
        replica.replay_chosen()?;
        replica.reset_election_deadline(now_ms);
        replica.debug_assert_invariants();
        Ok(replica)
    }

    /// Folds every chosen entry above the trim point into the session table,
    /// exactly as when they were first chosen: same effective appends, same
    /// hidden ones, same pending trims. No replies come out of a replay.
    fn replay_chosen(&mut self) -> Result<(), CoreError> {
        while self.learner.dedup_index < self.learner.chosen_index {
            let index = self.learner.dedup_index + 1;
            let command = self.command_at(index)?;
            if let Some(Fold::Hidden(hidden)) = fold(&mut self.learner.sessions, index, &command) {
                self.learner.hidden.insert(index, hidden);
            }
            if let Command::Trim { upto } = command {
                let upto = self.trim_cut(upto);
                self.learner.pending_trims.insert(index, upto);
            }
            fold_membership(&mut self.learner.membership, &command);
            fold_snapshot(&mut self.learner.snapshot, index, &command);
            fold_hold(&mut self.learner.holds, index, &command);
            self.learner.dedup_index = index;
        }
        Ok(())
    }
}
