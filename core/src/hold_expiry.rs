//! The leader expires retention holds whose owners stopped renewing them
//! (see `holds`): by its own clock only, and conditionally, so a renewal
//! chosen meanwhile wins.

use paxlog_storage::Store;

use super::holds::{HoldClock, EXPIRE_REQUEST};
use super::replica::{Replica, RoleState};
use super::{Proposal, ProposalCommand};

impl<S: Store> Replica<S> {
    pub(crate) fn maybe_expire_holds(&mut self, now_ms: u64) {
        let retry_ms = 10 * self.config.heartbeat_interval_ms;
        let RoleState::Leader(ls) = &mut self.role else {
            return;
        };
        let holds = &self.learner.holds;
        ls.hold_clocks.retain(|name, _| holds.contains_key(name));
        let mut expired = Vec::new();
        for (name, hold) in holds {
            let clock = ls.hold_clocks.entry(name.clone()).or_insert(HoldClock {
                renewed_at: hold.renewed_at,
                seen_ms: now_ms,
                proposed_ms: None,
            });
            if clock.renewed_at != hold.renewed_at {
                *clock = HoldClock {
                    renewed_at: hold.renewed_at,
                    seen_ms: now_ms,
                    proposed_ms: None,
                };
            }
            let lapsed = now_ms.saturating_sub(clock.seen_ms) >= hold.lease_ms;
            let due = clock
                .proposed_ms
                .is_none_or(|t| now_ms.saturating_sub(t) >= retry_ms);
            if lapsed && due {
                clock.proposed_ms = Some(now_ms);
                expired.push((name.clone(), hold.renewed_at));
            }
        }
        for (name, renewed_at) in expired {
            tracing::info!(
                node = self.config.node_id,
                hold = %name,
                renewed_at,
                "releasing a retention hold its owner stopped renewing"
            );
            let proposal = Proposal {
                id: EXPIRE_REQUEST,
                client_id: 0,
                seq: 0,
                floor: 0,
                command: ProposalCommand::Release {
                    name,
                    renewed_at: Some(renewed_at),
                },
                expected_ballot: None,
            };
            self.leader_propose(proposal, now_ms);
        }
    }
}
