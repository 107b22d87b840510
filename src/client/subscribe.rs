//! The subscription stream: every chosen user entry from an index on, in
//! order, resumed from the next index on a fresh stream (possibly another
//! node) whenever one ends. Below the trim point it delivers the newest
//! published snapshot instead of the trimmed prefix, then goes on after it.

use std::collections::VecDeque;
use std::time::Instant;

use futures::stream::{self, Stream};
use paxlog_net::{FrameReader, FrameWriter};
use paxlog_storage::{Index, NodeId};

use super::retry::Backoff;
use super::{frame_max, Client, ClientError};
use crate::core::{OpError, SnapshotMeta};
use crate::proto::{Entry, Request, Response};

/// One item of [`Client::subscribe`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    Entry(Entry),
    /// The entries up to `meta.index` are trimmed: load this snapshot
    /// ([`Client::fetch_snapshot`]); the next delivery is after it.
    Snapshot(SnapshotMeta),
}

struct Subscription {
    /// Kept open: dropping it would end the stream.
    _writer: FrameWriter<Request>,
    reader: FrameReader<Response>,
}

impl Client {
    /// Every chosen user entry from `from` on, in order, without gaps or
    /// repeats, following new entries as they are chosen. Survives node
    /// failures by resuming elsewhere from the next index.
    pub fn subscribe(&self, from: Index) -> impl Stream<Item = Result<Delivery, ClientError>> + '_ {
        stream::unfold(
            (
                from.max(1),
                VecDeque::<Delivery>::new(),
                None::<Subscription>,
            ),
            move |(mut next, mut buffered, mut sub)| async move {
                loop {
                    if let Some(entry) = buffered.pop_front() {
                        return Some((Ok(entry), (next, buffered, sub)));
                    }
                    if sub.is_none() {
                        match self.open_subscription(next).await {
                            Ok(s) => sub = Some(s),
                            Err(e) => return Some((Err(e), (next, buffered, None))),
                        }
                    }
                    let Some(s) = sub.as_mut() else { continue };
                    match s.reader.read().await {
                        Ok(Some(Response::Entries {
                            entries,
                            next: after,
                            ..
                        })) => {
                            for entry in entries {
                                // Invariant: a subscription never repeats or reorders.
                                if entry.index >= next {
                                    buffered.push_back(Delivery::Entry(entry));
                                }
                            }
                            next = next.max(after);
                        }
                        Ok(Some(Response::Error {
                            error: OpError::Trimmed { index, first },
                            ..
                        })) => {
                            let trimmed = OpError::Trimmed { index, first };
                            return Some(match self.newest_snapshot().await {
                                // The snapshot covers the trimmed prefix.
                                Ok(Some(meta)) if meta.index + 1 >= first && meta.index >= next => {
                                    let after = meta.index + 1;
                                    (Ok(Delivery::Snapshot(meta)), (after, buffered, None))
                                }
                                // A prefix trimmed with no snapshot (before
                                // snapshots existed): say so, go on after it.
                                Ok(_) => (Err(ClientError::Op(trimmed)), (first, buffered, None)),
                                Err(e) => {
                                    Backoff::new().sleep().await;
                                    (Err(e), (next, buffered, None))
                                }
                            });
                        }
                        Ok(_) | Err(_) => {
                            sub = None;
                            Backoff::new().sleep().await;
                        }
                    }
                }
            },
        )
    }

    async fn open_subscription(&self, from: Index) -> Result<Subscription, ClientError> {
        let deadline = Instant::now() + self.inner.timeout;
        let mut last = ClientError::Unreachable("no node answered".into());
        let ids: Vec<NodeId> = self.node_ids();
        let mut backoff = Backoff::new();
        while Instant::now() < deadline {
            for id in &ids {
                match self.connect(*id).await {
                    Ok(conn) => match conn.open_bi().await {
                        Ok((send, recv)) => {
                            let mut writer = FrameWriter::<Request>::new(send, frame_max());
                            let req = self.next_req();
                            if let Err(e) = writer.write(&Request::Subscribe { req, from }).await {
                                last = ClientError::Unreachable(e.to_string());
                                continue;
                            }
                            return Ok(Subscription {
                                _writer: writer,
                                reader: FrameReader::new(recv, frame_max()),
                            });
                        }
                        Err(e) => last = ClientError::Unreachable(e.to_string()),
                    },
                    Err(e) => last = e,
                }
            }
            backoff.sleep().await;
        }
        Err(last)
    }
}
