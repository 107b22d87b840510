//! CI smoke test: a tiny run of every system through the real benchmark
//! binary. It asserts only that each system started, took appends and
//! stopped, never a speed: the machine is shared and noisy.

use std::collections::BTreeSet;
use std::process::Command;

#[test]
fn every_system_completes_a_tiny_run() {
    let out = tempfile::tempdir().expect("tempdir");
    let result = Command::new(env!("CARGO_BIN_EXE_paxlog-bench"))
        .args([
            "--systems",
            "paxlog,openraft,etcd,floor",
            "--clients",
            "1,4",
            "--payload",
            "64",
            "--duration",
            "1s",
            "--warmup",
            "300ms",
            "--out",
        ])
        .arg(out.path())
        .output()
        .expect("run paxlog-bench");
    let stdout = String::from_utf8_lossy(&result.stdout);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        result.status.success(),
        "paxlog-bench failed ({}):\n{stdout}\n{stderr}",
        result.status
    );
    let rows: Vec<serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(out.path().join("results.json")).expect("results.json"),
    )
    .expect("results.json parses");
    let mut seen = BTreeSet::new();
    for row in &rows {
        let system = row["system"].as_str().expect("system").to_string();
        assert!(
            row["appends"].as_u64().expect("appends") > 0,
            "{system} acknowledged nothing"
        );
        seen.insert((system, row["clients"].as_u64().expect("clients")));
    }
    for system in ["paxlog", "openraft", "etcd", "floor"] {
        for clients in [1, 4] {
            assert!(
                seen.contains(&(system.to_string(), clients)),
                "no row for {system} with {clients} clients: {rows:?}"
            );
        }
    }
    // The physical limits were measured, the QUIC probe included: no probe
    // round trip takes 0 µs, and a failed probe fails the run above.
    let run: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.path().join("run.json")).expect("run.json"),
    )
    .expect("run.json parses");
    for key in ["fsync_p50_us", "loopback_rtt_p50_us", "quic_rtt_p50_us"] {
        assert!(
            run["limits"][key].as_u64().is_some_and(|us| us > 0),
            "limits.{key} missing or 0: {run}"
        );
    }
    for file in ["results.md", "throughput-64B.svg", "latency-cdf-64B-4c.svg"] {
        assert!(out.path().join(file).exists(), "{file} missing");
    }
    assert!(
        !out.path().join("work").exists(),
        "node directories were left behind"
    );
}
