//! Disk faults on a live node (issue 12): its disk fills up (ENOSPC) or an
//! fsync fails (EIO, injected with `strace`). The node stops (fail-stop: the
//! process exits), nothing it acknowledged is lost, the others keep
//! serving, and once it restarts on a healthy disk it holds everything.

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::disk::{self, LoopDisk};
use common::{block_on, TestCluster};

const WINDOW: usize = 32;

/// Appends batches of `bytes`-sized values until `stop` says so (checked
/// after each batch) or `batches_max` batches are done; returns what was
/// acknowledged (value → index), how many appends failed, and whether
/// `stop` said so.
fn write_until(
    cluster: &mut TestCluster,
    tag: &str,
    bytes: usize,
    batches_max: usize,
    mut stop: impl FnMut(&mut TestCluster) -> bool,
) -> (BTreeMap<Bytes, u64>, usize, bool) {
    let client = cluster.client_with_timeout(Duration::from_secs(20));
    let mut acked = BTreeMap::new();
    let mut failed = 0;
    for batch in 0..batches_max {
        let values: Vec<Bytes> = (0..WINDOW)
            .map(|i| {
                let mut v = format!("{tag}-{batch}-{i}-").into_bytes();
                v.resize(bytes, b'x');
                Bytes::from(v)
            })
            .collect();
        for (value, result) in values
            .iter()
            .zip(block_on(client.append_all(values.clone(), WINDOW)))
        {
            match result {
                Ok(index) => {
                    acked.insert(value.clone(), index);
                }
                Err(_) => failed += 1,
            }
        }
        if stop(cluster) {
            return (acked, failed, true);
        }
    }
    (acked, failed, false)
}

/// Every acknowledged value at its index on every node.
fn assert_held_everywhere(cluster: &TestCluster, acked: &BTreeMap<Bytes, u64>) {
    let last = acked.values().copied().max().expect("acknowledged appends");
    cluster.wait_for_chosen(last);
    for id in cluster.ids() {
        let entries = block_on(
            cluster
                .client_for_node(id, Duration::from_secs(10))
                .read(1, Some(last)),
        )
        .expect("read");
        let at: BTreeMap<u64, &Bytes> = entries.iter().map(|e| (e.index, &e.payload)).collect();
        let missing = acked.iter().filter(|(v, i)| at.get(i) != Some(v)).count();
        assert_eq!(missing, 0, "node {id} lacks {missing} acknowledged appends");
    }
}

#[test]
fn a_full_disk_stops_the_node_and_it_recovers_on_a_larger_one() {
    if let Some(why) = disk::unavailable() {
        println!("skipping: {why}");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cluster = TestCluster::new(3);
    let full = 3;
    let mut disk = LoopDisk::create_sized(
        dir.path().join("small.img"),
        dir.path().join("small"),
        32 << 20,
    );
    let store = disk.mount_point().join("store");
    std::fs::create_dir(&store).expect("store");
    let data = cluster.data_dir(full);
    std::fs::create_dir_all(data.parent().expect("parent")).expect("data parent");
    std::os::unix::fs::symlink(&store, &data).expect("link");
    for id in cluster.ids() {
        cluster.start_node(id);
    }
    cluster.wait_for_leader();

    let mut exit = None;
    let (mut acked, failed, _) = write_until(&mut cluster, "fill", 64 << 10, 200, |c| {
        exit = c.exited();
        exit.is_some()
    });
    let (id, status) = exit.expect("a node exited");
    assert_eq!(id, full, "the node whose disk filled up stopped");
    assert!(!status.success(), "node {id} exited with {status}");
    let log = cluster.log(full);
    assert!(
        log.contains("No space left on device") && log.contains("fail-stop"),
        "node {full} stopped for another reason:\n{log}"
    );
    println!(
        "node {full} stopped on ENOSPC after {} acknowledged 64 KiB appends ({failed} failed)",
        acked.len()
    );
    // The other two keep serving.
    let (more, failed, _) = write_until(&mut cluster, "after", 1024, 1, |_| true);
    assert_eq!(failed, 0, "appends failed with two healthy nodes");
    acked.extend(more);

    disk.grow(256 << 20);
    cluster.start_node(full);
    assert_held_everywhere(&cluster, &acked);
}

/// `strace` attached to a running node, failing every fdatasync and fsync
/// with EIO from the moment it is attached.
struct Injector(Child);

impl Injector {
    fn attach(pid: u32) -> Injector {
        let child = Command::new("strace")
            .args([
                "-f",
                "-qq",
                "-e",
                "trace=fdatasync,fsync",
                "-e",
                "inject=fdatasync,fsync:error=EIO",
                "-o",
                "/dev/null",
                "-p",
                &pid.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start strace (is it installed?)");
        Injector(child)
    }
}

impl Drop for Injector {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_failed_fsync_stops_the_leader_and_nothing_it_acknowledged_is_lost() {
    failed_fsync_stops(true);
}

/// A follower syncs in its own loop (`--follower-sync loop`, the default),
/// not on the writer thread: its failure must stop it just the same.
#[test]
fn a_failed_fsync_in_a_followers_loop_stops_it_and_nothing_acknowledged_is_lost() {
    failed_fsync_stops(false);
}

fn failed_fsync_stops(leader_fails: bool) {
    if std::env::var_os("CI").is_none() && Command::new("strace").arg("-V").output().is_err() {
        println!("skipping: strace is not installed");
        return;
    }
    let mut cluster = TestCluster::new(3);
    for id in cluster.ids() {
        cluster.start_node(id);
    }
    let leader = cluster.wait_for_leader();
    let target = if leader_fails {
        leader
    } else {
        let follower = cluster.ids().into_iter().find(|&id| id != leader);
        follower.expect("a follower")
    };
    let (mut acked, _, _) = write_until(&mut cluster, "before", 256, 4, |_| false);
    let injector = Injector::attach(cluster.pid(target));
    let started = Instant::now();
    let mut exit = None;
    // Bounded by time, not by a count of batches: strace takes hold of the
    // node's threads only some time after it starts (seen: 60,128 appends
    // acknowledged before the first injected EIO, and once more than 2,000
    // batches, which failed this test when it was bounded by 2,000).
    let (during, failed, _) = write_until(&mut cluster, "during", 256, usize::MAX, |c| {
        exit = c.exited();
        exit.is_some() || started.elapsed() > common::WAIT_MAX
    });
    let (id, status) = exit.expect("the node stopped after its fsync failed");
    assert_eq!(id, target);
    assert!(!status.success(), "node {id} exited with {status}");
    let log = cluster.log(target);
    assert!(
        log.contains("Input/output error") && log.contains("fail-stop"),
        "node {target} stopped for another reason:\n{log}"
    );
    let role = if leader_fails { "leader" } else { "follower" };
    println!(
        "{role} {target} stopped on EIO from fsync; {} acknowledged while it failed, {failed} failed",
        during.len()
    );
    acked.extend(during);
    drop(injector);
    let (after, failed, _) = write_until(&mut cluster, "after", 256, 1, |_| true);
    assert_eq!(failed, 0, "appends failed with two healthy nodes");
    acked.extend(after);
    cluster.start_node(target);
    assert_held_everywhere(&cluster, &acked);
}
