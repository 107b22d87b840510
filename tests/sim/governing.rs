//! Which configuration governs each index, folded from the one history the
//! ghosts build (not from any node's view): what the ghosts count an
//! index's quorum against. The rule folded is the configuration's own
//! (`Membership::apply` under the epoch it expects); the quorums counted
//! against it are the ghosts'.

use bytes::Bytes;
use paxlog::core::{Command, Index, Membership, NodeId};

#[derive(Debug)]
pub struct Governing {
    /// `(first index governed, configuration)`, ascending.
    history: Vec<(Index, Membership)>,
    /// Every index `<= folded` is folded in.
    folded: Index,
}

impl Governing {
    pub fn new(seed: &[NodeId]) -> Self {
        Governing {
            history: vec![(1, Membership::seed(seed))],
            folded: 0,
        }
    }

    pub fn folded(&self) -> Index {
        self.folded
    }

    /// The configuration that governs `index`, once every index below it
    /// is folded.
    pub fn at(&self, index: Index) -> Option<&Membership> {
        if index > self.folded + 1 {
            return None;
        }
        self.history
            .iter()
            .rev()
            .find(|(first, _)| *first <= index)
            .map(|(_, m)| m)
    }

    /// Folds the value chosen at `folded + 1`.
    pub fn fold(&mut self, index: Index, value: &Bytes) {
        assert_eq!(index, self.folded + 1, "folded in index order");
        self.folded = index;
        let Ok(Command::Reconfigure {
            expect_epoch, next, ..
        }) = Command::decode(value)
        else {
            return;
        };
        let Some((_, current)) = self.history.last() else {
            return;
        };
        if current.epoch != expect_epoch || next.epoch != expect_epoch + 1 {
            return;
        }
        // The step the leader checked: one voter at most, against the
        // configuration at that epoch (the ghost's own).
        let moved = current.voters().filter(|v| !next.is_voter(*v)).count()
            + next.voters().filter(|v| !current.is_voter(*v)).count();
        assert!(
            moved <= 1,
            "a chosen change moved {moved} voters: {current} -> {next}"
        );
        self.history.push((index + 1, next));
    }

    /// Whether `votes` hold a quorum of voters of `m`.
    pub fn is_quorum<'a>(m: &Membership, votes: impl IntoIterator<Item = &'a NodeId>) -> bool {
        let n = votes.into_iter().filter(|&&id| m.is_voter(id)).count();
        2 * n > m.voters_len()
    }

    /// The configuration after every folded index.
    pub fn latest(&self) -> &Membership {
        &self.history[self.history.len() - 1].1
    }

    /// How many configurations the history has been through.
    pub fn changes(&self) -> usize {
        self.history.len() - 1
    }
}
