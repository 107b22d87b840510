//! SIGKILL crash test with real processes: a child writes synced batches and
//! acknowledges each; we kill it at random moments and check that every
//! acknowledged batch survived intact and that no batch is visible in part.

#[path = "../src/bin/paxlog-storage-crashchild/batch.rs"]
mod batch;
mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use paxlog_storage::{Health, ReadLimit, RocksStore, Store};
use rand::{rngs::StdRng, Rng, SeedableRng};

const KILLS_MIN: u32 = 20;
const KILLS_TARGET: u32 = 60;
/// Bounds the run; the test fails if it cannot reach `KILLS_MIN` in time.
const RUN_TIME_MAX: Duration = Duration::from_secs(120);
const SIGKILL: i32 = 9;

/// Checks the directory after a kill; returns the last durable batch.
fn verify(dir: &Path, acked_max: Option<u64>) -> Option<u64> {
    let store = RocksStore::open(dir, batch::identity()).expect("reopen after SIGKILL");
    assert_eq!(
        store.health(),
        Health::Ok,
        "a SIGKILL must only ever tear the tail"
    );
    let meta = store.metadata();
    assert_eq!(
        meta.chosen_index % batch::ENTRIES_PER_BATCH,
        0,
        "chosen index {meta:?}"
    );
    let durable = (meta.chosen_index / batch::ENTRIES_PER_BATCH).checked_sub(1);
    assert!(
        durable >= acked_max,
        "batch {acked_max:?} was acknowledged, {durable:?} is durable"
    );
    let Some(last) = durable else {
        assert_eq!(store.last_index(), 0);
        return None;
    };
    // The scalar records of the last batch, all together.
    assert_eq!(meta.promised, batch::ballot(last));
    assert_eq!(meta.trim_index, batch::trim_after(last));
    // Nothing beyond the last whole batch: no partial batch is visible.
    assert_eq!(store.last_index(), meta.chosen_index);
    let beyond = ReadLimit {
        entries_max: 1,
        bytes_max: usize::MAX,
    };
    assert!(store
        .range(meta.chosen_index + 1, u64::MAX, beyond)
        .expect("range")
        .is_empty());
    // Every batch still held, every entry byte for byte.
    let first_batch = meta.trim_index / batch::ENTRIES_PER_BATCH;
    for n in first_batch..=last {
        let want = batch::batch(n);
        for (index, accepted) in &want.accepts {
            let got = store.get(*index).expect("read entry");
            assert_eq!(got.as_ref(), Some(accepted), "batch {n} index {index}");
        }
    }
    Some(last)
}

#[test]
fn sigkill_never_loses_an_acknowledged_batch() {
    let seed = common::seed("sigkill_never_loses_an_acknowledged_batch");
    let mut rng = StdRng::seed_from_u64(seed);
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("data");
    let started = Instant::now();
    let (mut kills, mut acks_total) = (0u32, 0u64);
    let mut durable: Option<u64> = None;

    while kills < KILLS_TARGET && started.elapsed() < RUN_TIME_MAX {
        let mut child = Command::new(env!("CARGO_BIN_EXE_paxlog-storage-crashchild"))
            .arg(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn crash child");
        let stdout = child.stdout.take().expect("child stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        // 0 kills the child during open, before its first write.
        let acks_wanted = rng.gen_range(0..=12u32);
        let mut acked_max = durable;
        for _ in 0..acks_wanted {
            let line = lines
                .next()
                .expect("child exited before it was killed")
                .expect("read child stdout");
            let n: u64 = line
                .strip_prefix("ACK ")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("unexpected child output {line:?}"));
            assert!(
                acked_max.is_none_or(|m| n == m + 1),
                "ACK {n} after {acked_max:?}"
            );
            acked_max = Some(n);
            acks_total += 1;
        }
        // Not synchronization: moves the kill to a random point inside the
        // next write (or the open) rather than always just after an ACK.
        std::thread::sleep(Duration::from_micros(rng.gen_range(0..3_000)));
        child.kill().expect("send SIGKILL");
        let status = child.wait().expect("reap child");
        assert_eq!(
            status.signal(),
            Some(SIGKILL),
            "child was not killed: {status}"
        );
        kills += 1;
        // Drain: anything it acknowledged before dying also counts.
        for line in lines {
            let line = line.expect("read child stdout");
            if let Some(n) = line.strip_prefix("ACK ").and_then(|n| n.parse().ok()) {
                acked_max = Some(n);
                acks_total += 1;
            }
        }
        let now_durable = verify(&dir, acked_max);
        assert!(
            now_durable >= durable,
            "durable batch went back: {durable:?} -> {now_durable:?}"
        );
        durable = now_durable;
    }
    println!(
        "kills = {kills}, acknowledged batches = {acks_total}, last durable batch = {durable:?}, \
         elapsed = {:?}",
        started.elapsed()
    );
    assert!(kills >= KILLS_MIN, "only {kills} kills in {RUN_TIME_MAX:?}");
    assert!(acks_total > 0, "the child never acknowledged a batch");
}
