//! README's runbook "replace a dead node", run line by line against a real
//! `paxlog dev`, exactly as a reader would type it (with the built `paxlog`
//! first on `PATH`); then the cluster must serve with node 4 in node 3's place.
//! And `paxlog dev` itself outlives whoever reads its output.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Instant;

use common::{exe, WAIT_MAX};

/// The runbook's lines, from the README block after its marker.
fn runbook() -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let marker = "<!-- runbook: replace a dead node -->";
    let after = readme.split_once(marker).expect("the runbook marker").1;
    let block = after
        .split_once("```sh\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .expect("the runbook's sh block")
        .0;
    block
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

/// Kills every process whose command line names `dir` (the dev cluster's
/// nodes) or that runs in `root` (the runbook's node 4), even when the test
/// fails.
struct Cleanup {
    dev: Child,
    dir: std::path::PathBuf,
    /// The test's directory, every runbook line's working directory.
    root: std::path::PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = self.dev.kill();
        let _ = self.dev.wait();
        let needle = self.dir.to_string_lossy().into_owned();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            // The runbook's node 4 names its paths relative to the test's
            // directory, its working directory: match that too.
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cwd = std::fs::read_link(entry.path().join("cwd")).unwrap_or_default();
            let ours = cwd.starts_with(&self.root) && pid != std::process::id() as i32;
            if ours || String::from_utf8_lossy(&cmdline).contains(&needle) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

/// Starts `paxlog dev --dir paxlog-dev` in `root`, its stdout piped to the
/// caller and its stderr to `stderr`; the cleanup owns it.
fn start_dev(root: &std::path::Path, stderr: Stdio) -> (Cleanup, ChildStdout) {
    let mut dev = Command::new(exe())
        .args(["dev", "--dir", "paxlog-dev"])
        .current_dir(root)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("paxlog dev");
    let stdout = dev.stdout.take().expect("stdout");
    let cleanup = Cleanup {
        dev,
        dir: root.join("paxlog-dev"),
        root: root.to_path_buf(),
    };
    (cleanup, stdout)
}

/// `paxlog dev`'s stderr and the end of each node's log, for a start that
/// failed (seen once in CI with nothing else to go on).
fn why_not_up(stderr: &std::path::Path, logs: &std::path::Path) -> String {
    const TAIL_LINES: usize = 20;
    let mut report = format!(
        "paxlog dev's stderr:\n{}",
        std::fs::read_to_string(stderr).unwrap_or_default()
    );
    let mut paths: Vec<_> = std::fs::read_dir(logs)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    paths.sort();
    for path in paths {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(TAIL_LINES)..];
        report += &format!(
            "--- {} (last {TAIL_LINES} lines)\n{}\n",
            path.display(),
            tail.join("\n")
        );
    }
    report
}

#[test]
fn the_replace_a_dead_node_runbook_works_verbatim() {
    let lines = runbook();
    assert!(lines.len() >= 5, "runbook: {lines:?}");
    let tmp = tempfile::tempdir().expect("tempdir");
    let bin = exe().parent().expect("exe dir").to_path_buf();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let stderr_path = tmp.path().join("dev-stderr.log");
    let stderr = std::fs::File::create(&stderr_path).expect("dev-stderr.log");
    let (cleanup, stdout) = start_dev(tmp.path(), Stdio::from(stderr));
    // `paxlog dev` says so once it has appended and read back.
    let mut lines_out = BufReader::new(stdout).lines();
    let ready = lines_out
        .by_ref()
        .map_while(Result::ok)
        .any(|line| line.contains("The cluster is running"));
    assert!(
        ready,
        "paxlog dev did not come up\n{}",
        why_not_up(&stderr_path, &tmp.path().join("paxlog-dev/logs"))
    );
    // Keep reading: `paxlog dev` goes on printing, and closing its stdout
    // under it would make it fail and take the whole cluster down with it.
    std::thread::spawn(move || lines_out.for_each(drop));

    let started = Instant::now();
    for line in &lines {
        let out = Command::new("bash")
            .args(["-c", line])
            .current_dir(tmp.path())
            .env("PATH", &path)
            .stdin(Stdio::null())
            .output()
            .expect("bash");
        println!("$ {line}\n{}", String::from_utf8_lossy(&out.stdout));
        assert!(
            out.status.success(),
            "runbook line failed: {line}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            started.elapsed() < WAIT_MAX * 4,
            "the runbook took too long"
        );
    }

    let cluster = tmp.path().join("paxlog-dev/cluster.toml");
    let cluster = cluster.to_str().expect("utf-8 path");
    let list = Command::new(exe())
        .args(["members", "list", "--json", "--cluster", cluster])
        .output()
        .expect("members list");
    let json: serde_json::Value = serde_json::from_slice(&list.stdout).expect("members list JSON");
    let voters: Vec<u64> = json["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter(|m| m["role"] == "voter")
        .filter_map(|m| m["id"].as_u64())
        .collect();
    assert_eq!(voters, vec![1, 2, 4], "{json}");
    let append = Command::new(exe())
        .args(["append", "--cluster", cluster, "after-the-replace"])
        .output()
        .expect("append");
    assert!(
        append.status.success(),
        "append after the replace: {}",
        String::from_utf8_lossy(&append.stderr)
    );
    drop(cleanup);
}

/// `paxlog dev` is the cluster's owner: a reader of its output that goes
/// away (`paxlog dev | head`, this test's harness) must not make it panic and
/// take its nodes down. Both its streams are closed, then a node dies (a line
/// on stderr) and Ctrl-C comes (a line on stdout): it must still stop its
/// nodes and exit cleanly. Before the fix it died "failed printing to
/// stdout: Broken pipe" (exit 101), which is what made the runbook flaky.
#[test]
fn dev_outlives_a_closed_stdout_and_stderr() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut cleanup, stdout) = start_dev(tmp.path(), Stdio::piped());
    let stderr = cleanup.dev.stderr.take().expect("stderr");
    let dev_pid = cleanup.dev.id();
    // Its last line before it serves; everything it prints later goes
    // into closed pipes.
    let last_seen = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|line| line.contains("Press Ctrl-C to stop"));
    assert!(last_seen, "paxlog dev did not come up");
    drop(stderr);

    let file = paxlog::cluster::ClusterFile::load(&tmp.path().join("paxlog-dev/cluster.toml"))
        .expect("cluster file");
    let pids: Vec<i32> = file
        .nodes
        .iter()
        .map(|n| n.pid.expect("dev records each node's pid") as i32)
        .collect();
    let victim = nix::unistd::Pid::from_raw(pids[0]);
    nix::sys::signal::kill(victim, nix::sys::signal::Signal::SIGKILL).expect("kill node 1");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(dev_pid as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("Ctrl-C to paxlog dev");
    let status = cleanup.dev.wait().expect("wait for paxlog dev");
    assert!(status.success(), "paxlog dev exited {status}");
    // It stopped the nodes it owns: their pids are gone (reaped by it).
    for pid in &pids[1..] {
        let alive = std::path::Path::new(&format!("/proc/{pid}")).exists();
        assert!(!alive, "node process {pid} outlived paxlog dev");
    }
}
