//! Simulated clients driving proposals into the replicas (see `client.rs`).

use bytes::Bytes;
use paxlog::core::{Index, NodeId, OpError, Proposal, ProposalCommand};
use rand::Rng;

use super::{bulk, Event, World, TOPOLOGY_SETTLE_MS};
use crate::client::{request_id, Pending, RequestInfo, SHALLOW_WINDOW};

/// An attempt unanswered this long is resent (to another node).
const ATTEMPT_TIMEOUT_MS: u64 = 400;
/// New appends one client issues per step at most.
const NEW_PER_STEP_MAX: u64 = 16;

impl World {
    pub(super) fn client_step(&mut self, c: usize) {
        let now = self.now_ms;
        let bulk = self.clients[c].bulk;
        let next = self.rng.gen_range(if bulk { bulk::STEP_MS } else { 5..40 });
        self.schedule(next, Event::Client { client: c });
        // The deep client keeps its pipeline: cutting it would forgo what it
        // is there for (many appends in flight across leader changes).
        if self.healed_at_ms.is_none()
            && self.clients[c].window == SHALLOW_WINDOW
            && !bulk
            && self.rng.gen_range(0..1000) < self.client_restart_per_mille
        {
            self.restart_client(c);
        }
        let client = &self.clients[c];
        let needs_session =
            client.session.is_none() || (client.broken && client.pending.is_empty());
        if needs_session {
            if client
                .registering_ms
                .is_some_and(|t| now < t + ATTEMPT_TIMEOUT_MS)
            {
                return;
            }
            let supersedes = client.session.filter(|_| client.broken);
            if client.registering_ms.is_some() {
                self.retarget(c);
            }
            self.clients[c].registering_ms = Some(now);
            let command = ProposalCommand::Register { supersedes };
            return self.send_proposal(c, None, Bytes::new(), command);
        }
        // A deep pipeline only drains once it progressed after the heal, so
        // a run ends.
        let drain_only = client.window > SHALLOW_WINDOW
            && self.healed_at_ms.is_some()
            && client.acked_after_heal > 0;
        if !client.broken && !drain_only {
            let room = client.window - (client.next_seq - client.floor());
            let new_max = if bulk { 1 } else { NEW_PER_STEP_MAX };
            for _ in 0..room.min(new_max) {
                let payload = self.payload(c);
                let client = &mut self.clients[c];
                let seq = client.next_seq;
                client.next_seq += 1;
                client.pending.insert(
                    seq,
                    Pending {
                        payload,
                        deadline_ms: 0,
                        resend: true,
                    },
                );
            }
        }
        let client = &self.clients[c];
        if client
            .pending
            .values()
            .any(|p| !p.resend && now >= p.deadline_ms)
        {
            // Timed out: maybe the node is gone; try another one.
            self.retarget(c);
        }
        // Every due append, in seq order, as the real client resubmits.
        let due: Vec<(u64, Bytes)> = self.clients[c]
            .pending
            .iter()
            .filter(|(_, p)| p.resend || now >= p.deadline_ms)
            .map(|(&s, p)| (s, p.payload.clone()))
            .collect();
        let Some(session) = self.clients[c].session else {
            return;
        };
        for (seq, payload) in due {
            if let Some(p) = self.clients[c].pending.get_mut(&seq) {
                p.resend = false;
                p.deadline_ms = now + ATTEMPT_TIMEOUT_MS;
            }
            let command = ProposalCommand::Append(payload.clone());
            self.send_proposal(c, Some((session, seq)), payload, command);
        }
    }

    /// The client process restarts without its session, as one that does
    /// not persist it: what it had in flight may still be chosen in the old
    /// session, which no one uses again and which stays in the session table
    /// until evicted. This is what makes the table evict (`SESSIONS_MAX` in
    /// `inv_acked.rs`); a session still in use evicted with them breaks, and
    /// its client supersedes it.
    fn restart_client(&mut self, c: usize) {
        let client = &mut self.clients[c];
        client.session = None;
        client.registering_ms = None;
        client.broken = false;
        client.next_seq = 1;
        client.pending.clear();
        self.stats.client_restarts += 1;
        self.trace(&format!("client {c} restarts without its session"));
    }

    /// Mixed sizes up to the largest value the limit allows.
    fn payload(&mut self, c: usize) -> Bytes {
        if self.clients[c].bulk {
            return self.bulk_payload(c);
        }
        let client = &self.clients[c];
        let tag = format!("c{c}s{}n{}", client.next_seq, client.sessions_opened);
        // 256-byte values: the command's envelope (tag, session, seq, floor,
        // length) takes at most 40 bytes of it.
        let max = 256 - 40;
        let len = match self.rng.gen_range(0..20) {
            0 => max,
            1..=5 => self.rng.gen_range(tag.len()..=max),
            _ => tag.len(),
        };
        let mut bytes = tag.into_bytes();
        bytes.resize(len.max(bytes.len()), b'.');
        Bytes::from(bytes)
    }

    fn retarget(&mut self, c: usize) {
        let k = self.rng.gen_range(0..self.members.len());
        self.clients[c].target = self.members[k];
    }

    fn send_proposal(
        &mut self,
        c: usize,
        key: Option<(u64, u64)>,
        payload: Bytes,
        command: ProposalCommand,
    ) {
        let now = self.now_ms;
        let target = self.clients[c].target;
        let floor = self.clients[c].floor();
        self.next_attempt += 1;
        let id = request_id(c, self.next_attempt);
        self.requests.insert(
            id,
            RequestInfo {
                client: c,
                key,
                payload,
                tail: false,
            },
        );
        let (client_id, seq) = key.unwrap_or((0, 0));
        self.trace(&format!(
            "propose client {c} key {key:?} floor {floor} to {target}"
        ));
        let proposal = Proposal {
            id,
            client_id,
            seq,
            floor,
            command,
            expected_ballot: None,
        };
        let Some(r) = self.nodes.get_mut(&target).and_then(|n| n.replica.as_mut()) else {
            return;
        };
        r.propose(proposal, now);
        self.drain(target);
    }

    /// A new leader was elected: every client resends what is unsettled
    /// there at its next step, in seq order, as a client that follows leader
    /// changes does. Retries then race the originals across leaderships,
    /// which is how one pair gets chosen twice and exactly-once is tested.
    pub(super) fn redirect_pending(&mut self, leader: NodeId) {
        for client in &mut self.clients {
            client.target = leader;
            for p in client.pending.values_mut() {
                p.resend = true;
            }
        }
    }

    pub(super) fn on_reply(&mut self, node: NodeId, id: u64, result: Result<Index, OpError>) {
        let Some(info) = self.requests.get(&id).cloned() else {
            return;
        };
        if info.tail {
            return self.on_tail_reply(node, id, result);
        }
        self.trace(&format!("reply {id} from {node}: {result:?}"));
        let (c, now) = (info.client, self.now_ms);
        if let Ok(index) = result {
            // Delivered to the client, whatever it makes of it: no tail
            // asked from now on may be below it (`inv_tail`).
            self.checkers.on_acknowledged(index, now);
        }
        let Some((session, seq)) = info.key else {
            return self.on_registered(c, result);
        };
        if self.clients[c].session != Some(session) {
            return;
        }
        match result {
            Ok(index) => {
                self.checkers.on_ack(session, seq, &info.payload, index);
                self.stats.acked += 1;
                let client = &mut self.clients[c];
                if client.pending.remove(&seq).is_some() {
                    // Progress after the heal: a deep pipeline may still be
                    // draining appends issued before it.
                    if self.healed_at_ms.is_some() {
                        client.acked_after_heal += 1;
                    }
                    // Progress under a topology: chosen once it settled,
                    // whenever issued. Under a chained or constrained
                    // topology a deep pipeline drains slowly (seed 8: 160
                    // in flight at about 50 chosen per second), so what is
                    // issued after the settle, behind it, may only be
                    // chosen after the heal.
                    let settled = self
                        .topology_at_ms
                        .is_some_and(|t| now >= t + TOPOLOGY_SETTLE_MS);
                    if settled && self.healed_at_ms.is_none() {
                        self.stats.acked_degraded += 1;
                    }
                }
            }
            Err(
                OpError::SessionExpired { .. }
                | OpError::BelowFloor { .. }
                | OpError::Fenced { .. }
                | OpError::TooLarge { .. }
                | OpError::BadRequest(_)
                | OpError::Trimmed { .. },
            ) => {
                // Failed for good: every later seq would wait for it forever.
                let client = &mut self.clients[c];
                if client.pending.remove(&seq).is_some() {
                    client.broken = true;
                    self.stats.sessions_broken += 1;
                }
            }
            Err(e) => {
                self.follow_hint(c, &e);
                if let Some(p) = self.clients[c].pending.get_mut(&seq) {
                    p.resend = true;
                }
            }
        }
    }

    fn on_registered(&mut self, c: usize, result: Result<Index, OpError>) {
        let client = &mut self.clients[c];
        if client.registering_ms.is_none() {
            return;
        }
        match result {
            Ok(index) => {
                client.session = Some(index);
                client.registering_ms = None;
                client.broken = false;
                client.next_seq = 1;
                client.pending.clear();
                client.sessions_opened += 1;
            }
            Err(e) => {
                client.registering_ms = None;
                self.follow_hint(c, &e);
            }
        }
    }

    fn follow_hint(&mut self, c: usize, e: &OpError) {
        match e {
            OpError::NotLeader {
                leader_hint: Some(h),
            } => self.clients[c].target = *h,
            OpError::NotLeader { leader_hint: None } => self.retarget(c),
            _ => {}
        }
    }
}
