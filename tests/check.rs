//! `paxlog check health` and `paxlog check perf` against real nodes, by
//! exit code (issue 16): health passes on a whole cluster and fails, naming
//! the node, once one is SIGKILLed or under an fsync bound no disk meets;
//! perf passes under bounds any cluster meets and fails under one no
//! cluster meets. And an error says its cause once.

mod common;

use std::process::{Command, Stdio};

use common::{exe, TestCluster};

/// Runs the CLI against the cluster; returns (exit code, stdout, stderr).
fn paxlog(cluster: &TestCluster, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(exe())
        .args(args)
        .arg("--cluster")
        .arg(&cluster.cluster_path)
        .stdin(Stdio::null())
        .output()
        .expect("run paxlog");
    (
        out.status.code().expect("exited, not killed"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn health_passes_on_a_whole_cluster_and_fails_when_a_node_is_killed() {
    let mut cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader();
    // Every node has synced something (its registration of the leader's
    // ballot), so each reports an fsync p99.
    let (code, stdout, stderr) = paxlog(&cluster, &["append", "first"]);
    assert_eq!(code, 0, "{stderr}");
    // The fsync bound is checked on its own below: a healthy verdict under
    // the default 100 ms would hinge on the disk at that moment (seen:
    // fsync p99 193–203 ms on every node right after CI's build).
    let (code, stdout_health, stderr) =
        paxlog(&cluster, &["check", "health", "--fsync-p99-max", "1h"]);
    assert_eq!(
        code, 0,
        "healthy cluster:\n{stdout_health}{stderr}\n(append said {stdout})"
    );
    assert!(stdout_health.contains("PASS"), "{stdout_health}");
    assert!(
        stdout_health.contains(&format!("node {leader} leads")),
        "{stdout_health}"
    );

    // No synced write takes under a microsecond: this bound fails the
    // check, and its line is the only one that fails.
    let (code, stdout, stderr) = paxlog(&cluster, &["check", "health", "--fsync-p99-max", "0s"]);
    assert_eq!(code, 1, "an fsync bound no disk meets:\n{stdout}{stderr}");
    let failed: Vec<&str> = stdout.lines().filter(|l| l.contains("FAILED")).collect();
    assert!(
        !failed.is_empty() && failed.iter().all(|l| l.contains("fsync p99")),
        "only the fsync line fails:\n{stdout}"
    );

    // Bounds any cluster meets: a disk in writeback (the fsync stalls
    // above) would fail the default 100 ms p99 and make this a test of
    // the disk. The failing side follows, under a bound no cluster meets.
    let (code, stdout, stderr) = paxlog(
        &cluster,
        &[
            "check",
            "perf",
            "--duration",
            "2s",
            "--clients",
            "8",
            "--p99-max",
            "1h",
            "--min-throughput",
            "1",
        ],
    );
    assert_eq!(
        code, 0,
        "perf under bounds any cluster meets:\n{stdout}{stderr}"
    );
    assert!(
        stdout.contains("appends/s") && stdout.contains("p99"),
        "{stdout}"
    );
    let (code, stdout, stderr) = paxlog(
        &cluster,
        &[
            "check",
            "perf",
            "--duration",
            "1s",
            "--min-throughput",
            "100000000",
            "-o",
            "json",
        ],
    );
    assert_eq!(code, 1, "no cluster does 10^8 appends/s:\n{stdout}{stderr}");
    let verdict: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(verdict["ok"], false, "{verdict}");

    let victim = cluster
        .ids()
        .into_iter()
        .find(|&id| id != leader)
        .expect("a follower");
    cluster.kill_node(victim);
    let (code, stdout, stderr) = paxlog(&cluster, &["check", "health", "--timeout", "2s"]);
    assert_eq!(
        code, 1,
        "a killed node must fail the check:\n{stdout}{stderr}"
    );
    assert!(stdout.contains("FAIL"), "{stdout}");
    assert!(
        stdout.contains(&format!("node {victim} (")),
        "the unreachable node is named:\n{stdout}"
    );
    println!("healthy:\n{stdout_health}\nnode {victim} killed:\n{stdout}");
}

#[test]
fn a_missing_cluster_file_is_reported_once() {
    let out = Command::new(exe())
        .args(["status", "--cluster", "/nonexistent/cluster.toml"])
        .output()
        .expect("run paxlog");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(
        stderr.matches("No such file or directory").count(),
        1,
        "the cause once: {stderr}"
    );
    assert!(stderr.contains("/nonexistent/cluster.toml"), "{stderr}");
}

#[test]
fn a_listing_into_a_closed_pipe_ends_quietly() {
    // The nodes are not started: status lists them unreachable, quickly.
    let cluster = TestCluster::new(3);
    let (reader, writer) = std::io::pipe().expect("a pipe");
    // Closed before paxlog writes a byte: its first write fails with EPIPE.
    drop(reader);
    let out = Command::new(exe())
        .args(["status", "--timeout", "200ms", "--cluster"])
        .arg(&cluster.cluster_path)
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("run paxlog");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}
