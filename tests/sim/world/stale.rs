//! The `StaleAccepted` scenario: Accepted messages of a ballot reach its
//! leader after that node lost the lead and won it again at a higher ballot.
//!
//! How it is built: every Accepted is slow (`SLOW_MIN_MS..=SLOW_MAX_MS`, longer
//! than a crash, a restart and an election), and every 300–700 ms the
//! leader crashes in the middle of its next Accept broadcast: one peer gets
//! it, the others and the leader's own (not yet durable) write do not. That value is then
//! accepted by a minority only. When the same node leads again (about one
//! election in `n`), the Accepted of its previous ballot for those indexes
//! arrive while it leads the new one, before any Accepted of the new ballot
//! (sent later, just as slow). A leader counting them (`CountStaleAccepted`)
//! learns a value no quorum accepted at one ballot, which `inv_chosen` sees.

use paxlog::core::{Message, NodeId, Role};
use rand::Rng;

use super::{Event, Scenario, World};

const SLOW_MIN_MS: u64 = 700;
const SLOW_MAX_MS: u64 = 1_200;

impl World {
    /// Extra delay for `message` from `from` (0 outside the scenario, or once
    /// healed); may decide that `from` crashes mid-broadcast.
    pub(super) fn stale_scenario_send(&mut self, from: NodeId, message: &Message) -> u64 {
        if self.p.scenario != Scenario::StaleAccepted || self.healed_at_ms.is_some() {
            return 0;
        }
        match message {
            Message::Accepted { .. } => self.rng.gen_range(SLOW_MIN_MS..=SLOW_MAX_MS),
            Message::Accept { ballot, .. } if self.stale_armed => {
                // This Accept leaves; nothing after it (see `send`).
                self.stale_armed = false;
                self.crashing = Some(from);
                let epoch = self.nodes[&from].epoch;
                self.schedule(0, Event::Crash { node: from, epoch });
                self.trace(&format!("leader {from} crashes mid-broadcast at {ballot}"));
                0
            }
            _ => 0,
        }
    }

    /// Counts Accepted of an older ballot reaching its node while it leads a newer one.
    pub(super) fn note_stale_accepted(&mut self, to: NodeId, message: &Message) {
        if self.p.scenario != Scenario::StaleAccepted {
            return;
        }
        let Message::Accepted { ballot, .. } = message else {
            return;
        };
        let Some(r) = self.nodes[&to].replica.as_ref() else {
            return;
        };
        let status = r.status();
        if ballot.node == to && status.role == Role::Leader && status.ballot > *ballot {
            self.stats.stale_accepted += 1;
        }
    }
}
