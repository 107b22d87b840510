//! Replica configuration.

use paxlog_storage::NodeId;

/// Tunables of one replica. Every bound the core keeps is here.
#[derive(Clone, Debug)]
pub struct Config {
    pub node_id: NodeId,
    /// 3 or 5 members, including `node_id`.
    pub members: Vec<NodeId>,
    pub heartbeat_interval_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Per acceptor, entries sent and not yet acknowledged.
    pub window_entries_max: usize,
    pub window_bytes_max: usize,
    /// Per Accept message and per write batch.
    pub batch_entries_max: usize,
    pub batch_bytes_max: usize,
    /// Beyond it proposals get `Busy`.
    pub uncommitted_bytes_max: usize,
    /// Beyond it proposals get `TooLarge`.
    pub value_bytes_max: usize,
    pub dedup_clients_max: usize,
    pub dedup_window_per_client: usize,
    /// Per catch-up or promise message.
    pub catchup_entries_max: usize,
    pub catchup_bytes_max: usize,
    /// A chosen index that no write carried along is synced at most this
    /// late; a restart relearns anything newer from its peers.
    pub chosen_flush_interval_ms: u64,
    /// Test-only: break one safety rule on purpose so the simulation can
    /// prove it notices. Absent from builds without `sim-mutations`.
    #[cfg(feature = "sim-mutations")]
    pub mutation: Mutation,
}

/// One deliberately broken rule (test builds only).
#[cfg(feature = "sim-mutations")]
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
}

impl Config {
    pub fn new(node_id: NodeId, members: Vec<NodeId>) -> Self {
        Config {
            node_id,
            members,
            heartbeat_interval_ms: 50,
            election_timeout_min_ms: 300,
            election_timeout_max_ms: 600,
            window_entries_max: 1024,
            window_bytes_max: 8 << 20,
            batch_entries_max: 256,
            batch_bytes_max: 1 << 20,
            uncommitted_bytes_max: 64 << 20,
            value_bytes_max: 1 << 20,
            dedup_clients_max: 10_000,
            dedup_window_per_client: 64,
            catchup_entries_max: 512,
            catchup_bytes_max: 4 << 20,
            chosen_flush_interval_ms: 100,
            #[cfg(feature = "sim-mutations")]
            mutation: Mutation::None,
        }
    }

    /// Whether `m` is the active mutation (always false in normal builds).
    #[allow(unused_variables)]
    pub(crate) fn mutated(&self, m: &'static str) -> bool {
        #[cfg(feature = "sim-mutations")]
        {
            let active = match self.mutation {
                Mutation::None => "",
                Mutation::SkipValueAdoption => "skip_value_adoption",
                Mutation::ReplyBeforePersist => "reply_before_persist",
                Mutation::AcceptBelowPromise => "accept_below_promise",
                Mutation::WrongQuorum => "wrong_quorum",
                Mutation::ForgetPromiseOnRestart => "forget_promise_on_restart",
            };
            active == m
        }
        #[cfg(not(feature = "sim-mutations"))]
        false
    }

    pub(crate) fn peers(&self) -> impl Iterator<Item = NodeId> + '_ {
        let me = self.node_id;
        self.members.iter().copied().filter(move |&m| m != me)
    }

    pub(crate) fn quorum(&self) -> usize {
        if self.mutated("wrong_quorum") {
            return self.members.len() / 2;
        }
        super::quorum::quorum_size(self.members.len())
    }
}
