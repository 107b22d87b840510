//! Building a replica over a store: recovery after a crash or a restart.

use std::collections::BTreeMap;

use paxlog_storage::{Accepted, Ballot, Health, ReadLimit, Store};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::acceptor_state::AcceptorState;
use super::config::validate;
use super::dedup::DedupTable;
use super::io::Io;
use super::learner_state::LearnerState;
use super::replica::{Replica, RoleState};
use super::{Command, Config, CoreError, Mutation};

/// Entries read from the store per step while recovering.
const RECOVER_CHUNK: usize = 4096;
/// At most this many chosen entries are replayed to rebuild the dedup table.
const DEDUP_REBUILD_ENTRIES_MAX: u64 = 100_000;

impl<S: Store> Replica<S> {
    pub fn new(config: Config, store: S, seed: u64, now_ms: u64) -> Result<Self, CoreError> {
        validate(&config)?;
        let meta = store.metadata();
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
        let rng =
            ChaCha8Rng::seed_from_u64(seed ^ config.node_id.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let dedup = DedupTable::new(
            config.limits.dedup_clients_max,
            config.limits.dedup_window_per_client,
        );
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
                dedup_index: 0,
                dedup,
                duplicates: BTreeMap::new(),
                pending_trims: BTreeMap::new(),
            },
            waiters: BTreeMap::new(),
            io: Io::new(),
            role: RoleState::Follower,
            leader: None,
            leader_contact_ms: None,
            election_deadline_ms: 0,
            peer_contact_ms: BTreeMap::new(),
            catchup_sent_ms: None,
            catchup_asked: BTreeMap::new(),
            pre_vote: None,
        };
        replica.rebuild_dedup()?;
        replica.reset_election_deadline(now_ms);
        replica.debug_assert_invariants();
        Ok(replica)
    }

    fn rebuild_dedup(&mut self) -> Result<(), CoreError> {
        let from = (self.learner.trim_index + 1).max(
            self.learner
                .chosen_index
                .saturating_sub(DEDUP_REBUILD_ENTRIES_MAX)
                + 1,
        );
        self.learner.dedup_index = from - 1;
        // Replays only; no replies or trims come out of a rebuild.
        while self.learner.dedup_index < self.learner.chosen_index {
            let index = self.learner.dedup_index + 1;
            if let Command::Append { client_id, seq, .. } = self.command_at(index)? {
                self.learner.dedup.record(client_id, seq, index);
            }
            self.learner.dedup_index = index;
        }
        Ok(())
    }
}
