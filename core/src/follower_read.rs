//! Linearizable tails served by a follower: it asks its leader for a read
//! index (`Message::ReadIndexRequest`), which the leader confirms with a
//! read round exactly as for its own tails (`read_index.rs`), and answers
//! the client with that index once it has learned it chosen. The leader
//! received the request after the client sent it, so the index is at or
//! above every append acknowledged before the client asked.
//!
//! A request the leader never answers (it died, the message was lost)
//! fails after the longest election timeout with `NotLeader`, and the
//! client asks again. Only an answer from the node asked, to an id still
//! waiting, is taken.

use paxlog_storage::{Index, NodeId, Store};

use super::read_state::{Asked, READS_WAITING_MAX};
use super::replica::Replica;
use super::{Message, OpError, Reply, RequestId};

impl<S: Store> Replica<S> {
    pub(crate) fn follower_read_index(&mut self, request: RequestId, now_ms: u64) {
        let target = match self.leader_hint().filter(|_| !self.failed) {
            None => Err(OpError::NotLeader { leader_hint: None }),
            Some(_) if self.follower_reads.len() >= READS_WAITING_MAX => Err(OpError::Busy),
            Some(leader) => Ok(leader),
        };
        let leader = match target {
            Ok(leader) => leader,
            Err(e) => {
                return self.io.reply(Reply {
                    id: request,
                    result: Err(e),
                })
            }
        };
        let reads = &mut self.follower_reads;
        let id = reads.next_id;
        reads.next_id += 1;
        reads.asked.insert(
            id,
            Asked {
                request,
                leader,
                sent_ms: now_ms,
            },
        );
        self.io.send(leader, Message::ReadIndexRequest { id });
    }

    pub(crate) fn on_read_index_reply(&mut self, from: NodeId, id: u64, index: Option<Index>) {
        let reads = &mut self.follower_reads;
        let Some(asked) = reads.asked.get(&id).copied() else {
            // Expired, or never asked: nothing waits for it.
            return;
        };
        if asked.leader != from {
            // Not the node we asked: it proves nothing.
            return;
        }
        reads.asked.remove(&id);
        match index {
            Some(index) => {
                reads.answered.push_back((asked, index));
                self.serve_follower_reads();
            }
            None => {
                let leader_hint = self.leader_hint();
                self.io.reply(Reply {
                    id: asked.request,
                    result: Err(OpError::NotLeader { leader_hint }),
                });
            }
        }
    }

    /// Answers every read whose index is chosen here.
    pub(crate) fn serve_follower_reads(&mut self) {
        let chosen_index = self.learner.chosen_index;
        let mut ready: Vec<(RequestId, Index)> = Vec::new();
        self.follower_reads.answered.retain(|&(asked, index)| {
            let chosen = index <= chosen_index;
            if chosen {
                ready.push((asked.request, index));
            }
            !chosen
        });
        for (id, index) in ready {
            self.io.reply(Reply {
                id,
                result: Ok(index),
            });
        }
    }

    /// Reads the leader did not answer, or whose index this node did not
    /// learn, within the longest election timeout: the client asks again.
    pub(crate) fn expire_follower_reads(&mut self, now_ms: u64) {
        let timeout = self.config.election_timeout_max_ms;
        let mut expired: Vec<RequestId> = Vec::new();
        let mut keep = |a: &Asked| {
            let late = now_ms.saturating_sub(a.sent_ms) >= timeout;
            if late {
                expired.push(a.request);
            }
            !late
        };
        let reads = &mut self.follower_reads;
        reads.asked.retain(|_, a| keep(a));
        reads.answered.retain(|(a, _)| keep(a));
        let leader_hint = self.leader_hint();
        for id in expired {
            self.io.reply(Reply {
                id,
                result: Err(OpError::NotLeader { leader_hint }),
            });
        }
    }
}
