//! The core is sans-IO by construction: its normal dependency graph holds
//! no async runtime, no transport and no database.

use std::path::Path;
use std::process::Command;

/// Crates whose presence would mean the core can do I/O (or links RocksDB).
const FORBIDDEN: [&str; 4] = ["tokio", "quinn", "rocksdb", "librocksdb-sys"];

#[test]
fn core_depends_on_no_io_crate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("paxlog-core lives one level below the workspace root");
    let output = Command::new(env!("CARGO"))
        .current_dir(root)
        .args([
            "tree",
            "-p",
            "paxlog-core",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--offline",
        ])
        .output()
        .expect("run cargo tree");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let found: Vec<&str> = stdout
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| FORBIDDEN.contains(name))
        .collect();
    assert!(
        found.is_empty(),
        "paxlog-core must stay free of I/O, but its dependency graph contains {found:?}:\n{stdout}"
    );
}
