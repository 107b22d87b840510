//! Which unsynced batches a power loss leaves behind.
//!
//! A thrifty follower writes accepts unsynced (`Config::thrifty`), so its WAL
//! can hold many batches past its last sync. A power cut keeps any of them:
//! none, a prefix (the kernel wrote back the file in order), or runs around
//! holes (a later page reached the disk before an earlier one, and RocksDB's
//! reader skips a zeroed block without a word). Every pattern must be as safe
//! as losing them all, since no leader counted any of them.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::World;

/// Chance, per batch, that a run of kept or lost batches ends (`Holes`).
const RUN_END_PER_MILLE: u32 = 250;

#[derive(Clone, Copy, Debug)]
pub(super) enum Survivors {
    None,
    Prefix { draw: u64 },
    Holes { draw: u64 },
}

impl Survivors {
    /// One flag per unsynced batch, oldest first: whether it survives.
    pub(super) fn pick(self, batches: usize) -> Vec<bool> {
        match self {
            Survivors::None => vec![false; batches],
            Survivors::Prefix { draw } => {
                let kept = ChaCha8Rng::seed_from_u64(draw).gen_range(0..=batches);
                (0..batches).map(|position| position < kept).collect()
            }
            Survivors::Holes { draw } => {
                let mut rng = ChaCha8Rng::seed_from_u64(draw);
                let mut keeping = rng.gen_bool(0.5);
                (0..batches)
                    .map(|_| {
                        if rng.gen_ratio(RUN_END_PER_MILLE, 1_000) {
                            keeping = !keeping;
                        }
                        keeping
                    })
                    .collect()
            }
        }
    }
}

impl World {
    /// Drawn from a stream of its own, so that seeds without unsynced writes
    /// run as they did before this model existed.
    pub(super) fn survivors(&mut self) -> Survivors {
        let draw = self.crash_rng.gen();
        match self.crash_rng.gen_range(0..3) {
            0 => Survivors::None,
            1 => Survivors::Prefix { draw },
            _ => Survivors::Holes { draw },
        }
    }
}
