//! Simulated clients driving proposals into the replicas.

use bytes::Bytes;
use paxlog::core::{Index, NodeId, OpError, Proposal, ProposalCommand};
use rand::Rng;

use super::{Event, World, TOPOLOGY_SETTLE_MS};
use crate::client::{request_id, Pending, RequestInfo};

impl World {
    pub(super) fn client_step(&mut self, c: usize) {
        let now = self.now_ms;
        let next = self.rng.gen_range(5..40);
        self.schedule(next, Event::Client { client: c });
        let client = &mut self.clients[c];
        let retry = match &mut client.pending {
            None => {
                client.seq += 1;
                let payload = Bytes::from(format!("c{}s{}", client.id, client.seq));
                client.pending = Some(Pending {
                    seq: client.seq,
                    payload,
                    deadline_ms: 0,
                    started_ms: now,
                    resend: true,
                });
                false
            }
            Some(p) if p.resend => false,
            Some(p) if now >= p.deadline_ms => true,
            Some(_) => return,
        };
        if retry {
            // Timed out: maybe the node is gone; try another one.
            let k = self.rng.gen_range(0..self.members.len());
            self.clients[c].target = self.members[k];
        }
        let client = &mut self.clients[c];
        let Some(p) = client.pending.as_mut() else {
            return;
        };
        p.resend = false;
        p.deadline_ms = now + 400;
        let (seq, payload, target, client_id) =
            (p.seq, p.payload.clone(), client.target, client.id);
        self.next_attempt += 1;
        let id = request_id(c, self.next_attempt);
        self.requests.insert(
            id,
            RequestInfo {
                client: c,
                client_id,
                seq,
                payload: payload.clone(),
            },
        );
        self.trace(&format!("propose client {client_id} seq {seq} to {target}"));
        let proposal = Proposal {
            id,
            client_id,
            seq,
            command: ProposalCommand::Append(payload),
            expected_ballot: None,
        };
        let Some(r) = self.nodes.get_mut(&target).and_then(|n| n.replica.as_mut()) else {
            return;
        };
        r.propose(proposal, now);
        self.drain(target);
    }

    /// A new leader was elected: every client with an append in flight
    /// resends it there at its next step, as a client that follows leader
    /// changes does. Retries then race the original across leaderships,
    /// which is how one pair gets chosen twice and exactly-once is tested.
    pub(super) fn redirect_pending(&mut self, leader: NodeId) {
        for client in &mut self.clients {
            if let Some(p) = client.pending.as_mut() {
                client.target = leader;
                p.resend = true;
            }
        }
    }

    pub(super) fn on_reply(&mut self, node: NodeId, id: u64, result: Result<Index, OpError>) {
        let Some(info) = self.requests.get(&id).cloned() else {
            return;
        };
        self.trace(&format!("reply {id} from {node}: {result:?}"));
        let client = &mut self.clients[info.client];
        let current = client.pending.as_ref().is_some_and(|p| p.seq == info.seq);
        match result {
            Ok(index) => {
                self.checkers
                    .on_ack(info.client_id, info.seq, &info.payload, index);
                self.stats.acked += 1;
                if current {
                    let started = client.pending.as_ref().map_or(0, |p| p.started_ms);
                    if self.healed_at_ms.is_some_and(|h| started >= h) {
                        client.acked_after_heal += 1;
                    }
                    let settled = self
                        .topology_at_ms
                        .is_some_and(|t| started >= t + TOPOLOGY_SETTLE_MS);
                    if settled && self.healed_at_ms.is_none() {
                        self.stats.acked_degraded += 1;
                    }
                    client.pending = None;
                }
            }
            Err(e) => {
                if !current {
                    return;
                }
                if let OpError::NotLeader {
                    leader_hint: Some(h),
                } = e
                {
                    client.target = h;
                } else if let OpError::NotLeader { leader_hint: None } = e {
                    let k = self.rng.gen_range(0..self.members.len());
                    client.target = self.members[k];
                }
                if let Some(p) = client.pending.as_mut() {
                    p.resend = true;
                }
            }
        }
    }
}
