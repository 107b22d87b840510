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
        let leader = match self.leader.filter(|&l| l != self.config.node_id) {
            Some(l) if !self.failed && self.follower_reads.len() < READS_WAITING_MAX => l,
            Some(_) if !self.failed => {
                let result = Err(OpError::Busy);
                return self.io.reply(Reply {
                    id: request,
                    result,
                });
            }
            _ => {
                let result = Err(OpError::NotLeader { leader_hint: None });
                return self.io.reply(Reply {
                    id: request,
                    result,
                });
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
                let leader_hint = self.leader.filter(|&l| l != self.config.node_id);
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
        let reads = &mut self.follower_reads;
        let mut i = 0;
        while i < reads.answered.len() {
            if reads.answered[i].1 <= chosen_index {
                if let Some((asked, index)) = reads.answered.remove(i) {
                    self.io.reply(Reply {
                        id: asked.request,
                        result: Ok(index),
                    });
                }
            } else {
                i += 1;
            }
        }
    }

    /// Reads the leader did not answer, or whose index this node did not
    /// learn, within the longest election timeout: the client asks again.
    pub(crate) fn expire_follower_reads(&mut self, now_ms: u64) {
        let timeout = self.config.election_timeout_max_ms;
        let late = |a: &Asked| now_ms.saturating_sub(a.sent_ms) >= timeout;
        let reads = &mut self.follower_reads;
        let mut expired: Vec<RequestId> = Vec::new();
        reads.asked.retain(|_, a| {
            let keep = !late(a);
            if !keep {
                expired.push(a.request);
            }
            keep
        });
        reads.answered.retain(|(a, _)| {
            let keep = !late(a);
            if !keep {
                expired.push(a.request);
            }
            keep
        });
        let leader_hint = self.leader.filter(|&l| l != self.config.node_id);
        for id in expired {
            self.io.reply(Reply {
                id,
                result: Err(OpError::NotLeader { leader_hint }),
            });
        }
    }
}
