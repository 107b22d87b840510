//! Who a thrifty leader asks to sync, as its status shows it.

use super::TestCluster;

/// The follower the leader asks to sync and the one it does not (a 3-node
/// cluster).
pub fn who_syncs(cluster: &TestCluster, leader: u64) -> (u64, u64) {
    let (eager, lazy) = sync_split(cluster, leader, 1);
    (eager[0], lazy[0])
}

/// The followers the leader asks to sync and those it does not, once its
/// status shows `eager` of them syncing and the rest not (with `n` nodes,
/// a majority less the leader: 1 of 3, 2 of 5).
pub fn sync_split(cluster: &TestCluster, leader: u64, eager: usize) -> (Vec<u64>, Vec<u64>) {
    cluster.wait_for(
        &format!("the leader to ask {eager} of its followers to sync"),
        |statuses| {
            let (_, status) = statuses.iter().find(|(id, _)| *id == leader)?;
            let peers = &status.as_ref()?.peers;
            let with = |syncs| -> Vec<u64> {
                peers
                    .iter()
                    .filter(|p| p.syncs == Some(syncs))
                    .map(|p| p.id)
                    .collect()
            };
            let (syncing, lazy) = (with(true), with(false));
            (syncing.len() == eager
                && !lazy.is_empty()
                && syncing.len() + lazy.len() == peers.len())
            .then_some((syncing, lazy))
        },
    )
}
