//! Replica configuration.

use paxlog_storage::NodeId;

use super::{CoreError, Limits};

/// Tunables of one replica. Every size bound is in [`Limits`].
#[derive(Clone, Debug)]
pub struct Config {
    pub node_id: NodeId,
    /// The seed configuration (every one a voter, at epoch 0), as the
    /// cluster file lists it; the log's reconfigurations take over from it.
    /// A node not listed joins as a learner once a change adds it.
    pub members: Vec<NodeId>,
    pub heartbeat_interval_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Every size bound, and how they nest.
    pub limits: Limits,
    /// A chosen index that no write carried along is synced at most this
    /// late; a restart relearns anything newer from its peers.
    pub chosen_flush_interval_ms: u64,
    /// The leader binds each unbound member to the incarnation it hears it
    /// with (`membership`). Off only in unit tests that count indexes.
    pub bind_members: bool,
    /// Thrifty: a leader asks only enough acceptors to sync each Accept to
    /// make a quorum with itself; the others write it unsynced, and their
    /// answers count toward nothing. A cluster of 3 then syncs twice per
    /// batch instead of three times. When the chosen index stalls for two
    /// heartbeat intervals, every acceptor is asked to sync again for an
    /// election timeout (`thrifty`).
    pub thrifty: bool,
    /// Test-only: break one safety rule on purpose so the simulation can
    /// prove it notices. Absent from builds without `sim-mutations`.
    #[cfg(feature = "sim-mutations")]
    pub mutation: Mutation,
}

/// One deliberately broken rule. The type exists in every build so call
/// sites compile everywhere; only `sim-mutations` builds can activate one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mutation {
    #[default]
    None,
    /// A new leader ignores the values reported in promises.
    SkipValueAdoption,
    /// Promise and Accepted messages leave before their write is durable.
    ReplyBeforePersist,
    /// An acceptor accepts at ballots below its promise.
    AcceptBelowPromise,
    /// A quorum is counted as `n / 2` instead of `n / 2 + 1`.
    WrongQuorum,
    /// A restarted acceptor starts from promise zero.
    ForgetPromiseOnRestart,
    /// A candidate keeps the first value reported for an index, not the one
    /// with the highest ballot.
    AdoptFirstReported,
    /// A leader counts Accepted messages of a lower ballot towards its quorum.
    CountStaleAccepted,
    /// A follower treats its accepted entries as chosen at any ballot, up to
    /// the leader's chosen index.
    ChosenAtAnyBallot,
    /// A promise that raises only the ballot's node id is never synced.
    UnsyncedNodeIdPromise,
    /// A leader counts its own accept before its write is durable.
    OwnAcceptBeforeDurable,
    /// A value learned as chosen is kept in memory only, while the chosen
    /// index covering it is synced.
    LearnedValueUnsynced,
    /// A retry chosen a second time is answered with the duplicate's index.
    AnswerDuplicateIndex,
    /// A leader answers a linearizable tail without a confirming round.
    ReadWithoutRound,
    /// A new leader answers a linearizable tail with its chosen index,
    /// ignoring the range its Phase 1 recovered.
    ReadIgnoresRecovered,
    /// A leader counts a change's own index against the configuration the
    /// change introduces (a configuration used before it is chosen).
    ChangeCountedByNewConfig,
    /// A leader counts learners' acknowledgements towards its quorums.
    LearnerAcksCounted,
    /// A leader proposes a trim above its chosen index.
    TrimAboveChosen,
    /// Trims pass the newest published snapshot (the leader does not refuse
    /// them and nodes do not cut them to it).
    TrimPastSnapshot,
    /// A node that caught up below the trim point goes on emitting after it
    /// without the application installing a snapshot (a silent jump).
    SkipWithoutSnapshot,
    /// Trims pass a live retention hold (neither refused nor cut).
    TrimPastHold,
    /// A leader counts unsynced Accepted answers (`Config::thrifty`) toward
    /// its quorums.
    CountUnsyncedAccepted,
}

impl Config {
    pub fn new(node_id: NodeId, members: Vec<NodeId>) -> Self {
        Config {
            node_id,
            members,
            heartbeat_interval_ms: 50,
            election_timeout_min_ms: 300,
            election_timeout_max_ms: 600,
            limits: Limits::default(),
            chosen_flush_interval_ms: 100,
            bind_members: true,
            thrifty: true,
            #[cfg(feature = "sim-mutations")]
            mutation: Mutation::None,
        }
    }

    /// Whether `m` is the active mutation (always false without `sim-mutations`).
    #[cfg(feature = "sim-mutations")]
    pub(crate) fn mutated(&self, m: Mutation) -> bool {
        m != Mutation::None && self.mutation == m
    }

    /// Whether some rule is broken on purpose.
    #[cfg(feature = "sim-mutations")]
    pub(crate) fn any_mutation(&self) -> bool {
        self.mutation != Mutation::None
    }

    /// Whether some rule is broken on purpose.
    #[cfg(not(feature = "sim-mutations"))]
    pub(crate) fn any_mutation(&self) -> bool {
        false
    }

    /// Whether `m` is the active mutation (always false without `sim-mutations`).
    #[cfg(not(feature = "sim-mutations"))]
    pub(crate) fn mutated(&self, _m: Mutation) -> bool {
        false
    }
}

pub(crate) fn validate(config: &Config) -> Result<(), CoreError> {
    let n = config.members.len();
    if config.node_id == 0 || config.members.contains(&0) {
        return Err(CoreError::Config("0 is not a valid node id".into()));
    }
    let mut sorted = config.members.clone();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.len() != n {
        return Err(CoreError::Config("duplicate member ids".into()));
    }
    super::Membership::seed(&config.members)
        .check()
        .map_err(|e| CoreError::Config(format!("seed members: {e}")))?;
    if config.election_timeout_min_ms == 0
        || config.election_timeout_min_ms > config.election_timeout_max_ms
        || config.heartbeat_interval_ms == 0
        || config.heartbeat_interval_ms >= config.election_timeout_min_ms
    {
        return Err(CoreError::Config(
            "need 0 < heartbeat_interval_ms < election_timeout_min_ms <= election_timeout_max_ms"
                .into(),
        ));
    }
    config.limits.check().map_err(CoreError::Config)?;
    Ok(())
}
