//! Runs `examples/kv.rs` (three in-process nodes, published snapshots, a
//! trim, and a replica with an empty state directory rebuilt from a peer's
//! snapshot plus the log) as a test, so CI fails when the example would.

#[allow(dead_code)]
#[path = "../examples/kv.rs"]
mod kv;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kv_example_checks_out() {
    let summary = tokio::time::timeout(std::time::Duration::from_secs(120), kv::run())
        .await
        .expect("the kv example finished in time")
        .unwrap_or_else(|e| panic!("kv example failed: {e}"));
    assert!(summary.contains("3 replicas equal"), "{summary}");
    assert!(
        summary.contains("rebuilt from a peer's snapshot"),
        "{summary}"
    );
}
