//! A subscription: the stream's first request was `Subscribe`, so from then
//! on the node only pushes chosen user entries on it, read through the loop
//! each time the chosen index moves.

use paxlog_net::{FrameError, FrameWriter};
use paxlog_storage::Index;
use tokio::sync::{mpsc, watch};

use super::request::{ask, Command, ReadResult};
use crate::proto::Response;

/// Entries per pushed frame of a subscription.
const SUBSCRIBE_BATCH_ENTRIES: usize = 256;

/// Pushes chosen user entries from `from` on, in order, without gaps in what
/// it covers: every frame says where the next one starts.
pub(super) async fn subscribe(
    req: u64,
    from: Index,
    mut writer: FrameWriter<Response>,
    loop_tx: mpsc::Sender<Command>,
    mut chosen: watch::Receiver<Index>,
) -> Result<(), FrameError> {
    let mut next = from.max(1);
    loop {
        let chosen_now = *chosen.borrow_and_update();
        if next <= chosen_now {
            let result = ask(&loop_tx, |reply| Command::Read {
                from: next,
                to: chosen_now,
                entries_max: SUBSCRIBE_BATCH_ENTRIES,
                reply,
            })
            .await;
            match result {
                Some(Ok(ReadResult {
                    entries,
                    next: after,
                    chosen_index,
                })) => {
                    assert!(
                        after > next || entries.is_empty(),
                        "a subscription never goes back"
                    );
                    if after <= next {
                        // Nothing readable yet at `next` (not durable locally); wait for more.
                        if chosen.changed().await.is_err() {
                            break;
                        }
                        continue;
                    }
                    next = after;
                    writer
                        .write(&Response::Entries {
                            req,
                            entries,
                            next,
                            chosen_index,
                        })
                        .await?;
                }
                Some(Err(error)) => {
                    writer.write(&Response::Error { req, error }).await?;
                    break;
                }
                None => break,
            }
        } else if chosen.changed().await.is_err() {
            break;
        }
    }
    writer.finish().await?;
    Ok(())
}
