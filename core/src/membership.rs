//! Who votes, who only learns, and how that changes: the configuration is
//! a pure function of the chosen log, like the session table.
//!
//! A member is `(node id, incarnation)`: the incarnation is the random id a
//! data directory gets when it is created (`Store::incarnation`), so a node
//! restarted on a wiped (or replaced) directory is not the member that gave
//! the earlier promises, and its votes do not count. A member's incarnation
//! is 0 ("unbound", any incarnation counts) only at cluster birth (the seed
//! configuration from the cluster file) and for a learner just added; the
//! leader binds it as soon as it hears the node (a [`Change::Bind`] step).
//!
//! # The rule (why one index never gets two values across a change)
//!
//! A [`Command::Reconfigure`](super::Command) chosen at index `i` governs
//! every index after `i`; it is effective only if the configuration at `i`
//! still has the epoch it expects (so of two changes raced against the same
//! epoch exactly one takes effect, wherever the other lands), and each step
//! moves at most one voter. Then:
//!
//! - **Phase 2** counts index `k` against the configuration of the chosen
//!   prefix below `k`. The leader's chosen index only ever advances through
//!   consecutive indexes, so when `k` is counted every index below it,
//!   every change included, is chosen: `k` is counted against the one
//!   configuration the log says governs it (`leader.rs`).
//! - **Phase 1** covers every index from the candidate's chosen index to
//!   infinity, which several configurations may govern. The candidate needs
//!   complete promises from a quorum of its own configuration *and* of every
//!   configuration named by a change any promise reports above it (a
//!   fixpoint: the new voters are asked too, and may report newer changes).
//!   If a change was chosen at `j` by a quorum of the configuration before
//!   it, the candidate's quorum of that configuration includes one of its
//!   acceptors, which reports it (any value at `j` at a higher ballot is the
//!   same value), so the candidate also gathers the next configuration; by
//!   induction it reaches the configuration that chose any index `k` above
//!   and meets the quorum that chose it. Reports from extra acceptors are
//!   real proposals, so adopting the highest ballot among a superset of a
//!   quorum keeps Paxos's argument (`candidate.rs`).
//! - **One voter per step.** A leader may hold, below an index it proposes,
//!   an unchosen non-change that a later leader replaces with a change
//!   recovered from an older ballot; then an index chosen by a quorum of
//!   configuration `C` is governed by `C'`. The change needed the epoch of
//!   `C`, so at most one such change sits below it, and because `C` and `C'`
//!   differ by one voter every quorum of one meets every quorum of the
//!   other. So "replace" is add-learner, bind, promote, remove (a 2- or
//!   4-voter middle state is allowed), never a swap in one step.
//! - **α = 1.** The leader proposes nothing after a change until the change
//!   is chosen (new appends get `Busy` for that round trip and the client
//!   retries), and a change only when the previous one is chosen. Recovered
//!   entries beyond an unchosen change are still re-proposed. It costs one
//!   pipeline drain per change; changes are rare.
//! - **Learners** receive Accepts and heartbeats (so a promoted node is
//!   current) but their acknowledgements and promises count for no quorum
//!   in which they are not voters, and they never campaign.
//! - **A trim keeps the configuration**: the configuration at the trim
//!   point is written with the trim state and travels with it in catch-up.
//! - **A restore from backup is a replace**: a restored directory has the
//!   old incarnation and old promises, which the incarnation cannot tell.
//! - **Epoch 0** (the seed, unbound) does not detect a wipe: the first
//!   leader binds every seed member it has heard, so the window is cluster
//!   birth.

use paxlog_storage::NodeId;
use serde::{Deserialize, Serialize};

/// Members (voters and learners) at most, so every set here is bounded.
pub const MEMBERS_MAX: usize = 9;
/// Voters at most.
pub const VOTERS_MAX: usize = 7;

/// The longest member address kept (an IPv6 socket address is at most 47).
pub const ADDR_BYTES_MAX: usize = 64;

/// Bytes a configuration costs encoded, at most: every member's id,
/// incarnation and flag as varints and its address.
pub const MEMBERSHIP_STATE_BYTES: usize = 16 + MEMBERS_MAX * (24 + ADDR_BYTES_MAX);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub id: NodeId,
    /// 0: unbound, any incarnation counts (see the module docs).
    pub incarnation: u64,
    pub voter: bool,
    /// Where peers dial it; empty: the cluster file's address.
    pub addr: String,
}

/// One configuration.
/// Invariant: members sorted by id, ids unique and nonzero, at least one
/// voter, at most [`MEMBERS_MAX`] members and [`VOTERS_MAX`] voters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    pub epoch: u64,
    pub members: Vec<Member>,
}

/// One step of a reconfiguration (moves at most one voter).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// A new member that receives the log and does not vote.
    AddLearner { id: NodeId, addr: String },
    /// A bound learner becomes a voter.
    Promote { id: NodeId },
    /// A voter or learner leaves.
    Remove { id: NodeId },
    /// An unbound member is bound to the incarnation the leader heard.
    Bind { id: NodeId, incarnation: u64 },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ChangeError {
    #[error(
        "the configuration is at epoch {current}, not the expected {expected}; nothing changed"
    )]
    Stale { expected: u64, current: u64 },
    #[error("node {0} is already a member")]
    AlreadyMember(NodeId),
    #[error("node {0} is not a member")]
    NotMember(NodeId),
    #[error("node {0} is already a voter")]
    AlreadyVoter(NodeId),
    #[error("node {0} has no bound incarnation yet (the leader binds it once it hears from it; start the node first)")]
    Unbound(NodeId),
    #[error("node {0} is already bound to an incarnation")]
    AlreadyBound(NodeId),
    #[error("removing node {0} would leave no voter")]
    LastVoter(NodeId),
    #[error("a configuration holds at most {MEMBERS_MAX} members and {VOTERS_MAX} voters")]
    TooMany,
    #[error("0 is not a valid node id or incarnation")]
    Zero,
    #[error("address {0:?} is not host:port")]
    BadAddr(String),
    #[error("the configuration the change carries is malformed")]
    Malformed,
}

impl Membership {
    /// The configuration at cluster birth: every listed node votes, unbound.
    pub fn seed(ids: &[NodeId]) -> Membership {
        let mut members: Vec<Member> = ids
            .iter()
            .map(|&id| Member {
                id,
                incarnation: 0,
                voter: true,
                addr: String::new(),
            })
            .collect();
        members.sort_by_key(|m| m.id);
        members.dedup_by_key(|m| m.id);
        Membership { epoch: 0, members }
    }

    pub fn member(&self, id: NodeId) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    pub fn is_member(&self, id: NodeId) -> bool {
        self.member(id).is_some()
    }

    pub fn is_voter(&self, id: NodeId) -> bool {
        self.member(id).is_some_and(|m| m.voter)
    }

    pub fn voters(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.members.iter().filter(|m| m.voter).map(|m| m.id)
    }

    pub fn voters_len(&self) -> usize {
        self.members.iter().filter(|m| m.voter).count()
    }

    /// Votes needed so that any two quorums of this configuration meet.
    pub fn quorum(&self) -> usize {
        super::quorum::quorum_size(self.voters_len())
    }

    /// Whether `id` in `incarnation` is this configuration's member `id`
    /// (an unbound member matches any incarnation).
    pub fn matches(&self, id: NodeId, incarnation: u64) -> bool {
        self.member(id)
            .is_some_and(|m| m.incarnation == 0 || m.incarnation == incarnation)
    }

    /// Checks the structural invariant (of a seed, or one sent by a peer).
    pub fn check(&self) -> Result<(), String> {
        if self.members.len() > MEMBERS_MAX || self.voters_len() > VOTERS_MAX {
            return Err(ChangeError::TooMany.to_string());
        }
        if self.voters_len() == 0 {
            return Err("a configuration needs at least one voter".into());
        }
        let sorted = self.members.windows(2).all(|w| w[0].id < w[1].id);
        if !sorted || self.members.iter().any(|m| m.id == 0) {
            return Err("member ids must be nonzero, unique and sorted".into());
        }
        Ok(())
    }

    /// The configuration after `change` at epoch + 1, if the step is valid.
    pub fn apply(&self, change: &Change) -> Result<Membership, ChangeError> {
        let mut next = self.clone();
        next.epoch += 1;
        match change {
            Change::AddLearner { id, addr } => {
                if *id == 0 {
                    return Err(ChangeError::Zero);
                }
                if self.is_member(*id) {
                    return Err(ChangeError::AlreadyMember(*id));
                }
                let too_long = addr.len() > ADDR_BYTES_MAX;
                if too_long || addr.parse::<std::net::SocketAddr>().is_err() {
                    return Err(ChangeError::BadAddr(addr.clone()));
                }
                if self.members.len() >= MEMBERS_MAX {
                    return Err(ChangeError::TooMany);
                }
                next.members.push(Member {
                    id: *id,
                    incarnation: 0,
                    voter: false,
                    addr: addr.clone(),
                });
                next.members.sort_by_key(|m| m.id);
            }
            Change::Promote { id } => {
                let m = self.member(*id).ok_or(ChangeError::NotMember(*id))?;
                if m.voter {
                    return Err(ChangeError::AlreadyVoter(*id));
                }
                if m.incarnation == 0 {
                    return Err(ChangeError::Unbound(*id));
                }
                if self.voters_len() >= VOTERS_MAX {
                    return Err(ChangeError::TooMany);
                }
                next.members
                    .iter_mut()
                    .filter(|m| m.id == *id)
                    .for_each(|m| m.voter = true);
            }
            Change::Remove { id } => {
                let m = self.member(*id).ok_or(ChangeError::NotMember(*id))?;
                if m.voter && self.voters_len() == 1 {
                    return Err(ChangeError::LastVoter(*id));
                }
                next.members.retain(|m| m.id != *id);
            }
            Change::Bind { id, incarnation } => {
                let m = self.member(*id).ok_or(ChangeError::NotMember(*id))?;
                if *incarnation == 0 {
                    return Err(ChangeError::Zero);
                }
                if m.incarnation != 0 {
                    return Err(ChangeError::AlreadyBound(*id));
                }
                next.members
                    .iter_mut()
                    .filter(|m| m.id == *id)
                    .for_each(|m| m.incarnation = *incarnation);
            }
        }
        debug_assert!(next.check().is_ok(), "a valid step keeps the invariant");
        let moved = self
            .members
            .iter()
            .filter(|m| m.voter)
            .filter(|m| !next.is_voter(m.id))
            .count()
            + next
                .members
                .iter()
                .filter(|m| m.voter)
                .filter(|m| !self.is_voter(m.id))
                .count();
        assert!(moved <= 1, "Invariant: a step moves at most one voter");
        Ok(next)
    }
}

impl std::fmt::Display for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "epoch {} [", self.epoch)?;
        for (k, m) in self.members.iter().enumerate() {
            let sep = if k == 0 { "" } else { " " };
            let role = if m.voter { "" } else { "~" };
            write!(f, "{sep}{role}{}", m.id)?;
        }
        f.write_str("]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound(m: &Membership) -> Membership {
        let mut m = m.clone();
        for (k, member) in m.members.iter_mut().enumerate() {
            member.incarnation = 100 + k as u64;
        }
        m
    }

    #[test]
    fn replace_is_add_bind_promote_remove_and_quorums_of_each_step_meet() {
        let mut m = bound(&Membership::seed(&[1, 2, 3]));
        let steps = [
            Change::AddLearner {
                id: 4,
                addr: "127.0.0.1:7004".into(),
            },
            Change::Bind {
                id: 4,
                incarnation: 9,
            },
            Change::Promote { id: 4 },
            Change::Remove { id: 1 },
        ];
        for step in &steps {
            let next = m.apply(step).expect("valid step");
            assert_eq!(next.epoch, m.epoch + 1);
            // Every quorum of one meets every quorum of the other.
            let a: Vec<NodeId> = m.voters().collect();
            let b: Vec<NodeId> = next.voters().collect();
            let shared = a.iter().filter(|id| b.contains(id)).count();
            assert!(m.quorum() + next.quorum() > a.len() + b.len() - shared);
            m = next;
        }
        assert_eq!(m.voters().collect::<Vec<_>>(), vec![2, 3, 4]);
        assert!(m.matches(4, 9) && !m.matches(4, 8));
    }

    #[test]
    fn invalid_steps_are_refused() {
        let m = Membership::seed(&[1]);
        assert_eq!(
            m.apply(&Change::Remove { id: 1 }),
            Err(ChangeError::LastVoter(1))
        );
        assert_eq!(
            m.apply(&Change::Promote { id: 2 }),
            Err(ChangeError::NotMember(2))
        );
        let m = m
            .apply(&Change::AddLearner {
                id: 2,
                addr: "127.0.0.1:1".into(),
            })
            .expect("add");
        assert_eq!(
            m.apply(&Change::Promote { id: 2 }),
            Err(ChangeError::Unbound(2))
        );
        assert!(matches!(
            m.apply(&Change::AddLearner {
                id: 3,
                addr: "nowhere".into()
            }),
            Err(ChangeError::BadAddr(_))
        ));
    }
}
