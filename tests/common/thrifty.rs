//! Who a thrifty leader asks to sync, as its status shows it.

use super::TestCluster;

/// The follower the leader asks to sync and the one it does not, once the
/// leader's status shows exactly one of each (a 3-node cluster).
pub fn who_syncs(cluster: &TestCluster, leader: u64) -> (u64, u64) {
    cluster.wait_for(
        "the leader to ask one follower of two to sync",
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
            match (with(true).as_slice(), with(false).as_slice()) {
                ([eager], [lazy]) => Some((*eager, *lazy)),
                _ => None,
            }
        },
    )
}
