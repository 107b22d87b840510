//! README's two lines must share one build of RocksDB's C++ (~11 CPU-minutes
//! in the `ci` profile). `cargo run --profile ci -- dev` resolves features for
//! the default members, the test line for the whole workspace; when the two
//! sets differ (the benchmark's proc-macros turn on more features of `syn`,
//! `regex` and friends, which RocksDB's bindgen build script also uses), Cargo
//! builds librocksdb-sys twice. `default-members` listing every member keeps
//! them equal; this test compares what `cargo tree` resolves both ways.

use std::process::Command;

/// The feature graph Cargo resolves, as sorted unique lines.
fn resolved(extra: &[&str]) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(&cargo)
        .args(["tree", "--offline", "--locked", "--prefix", "none"])
        .args(["-e", "features,normal,build", "--no-dedupe"])
        .args(extra)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap_or_else(|e| panic!("running {cargo} tree: {e}"));
    assert!(
        out.status.success(),
        "cargo tree {extra:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines.dedup();
    lines
}

#[test]
fn the_dev_line_and_the_test_line_resolve_the_same_features() {
    let default_members = resolved(&[]);
    let workspace = resolved(&["--workspace"]);
    assert!(
        default_members
            .iter()
            .any(|l| l.starts_with("librocksdb-sys ")),
        "the default members do not reach RocksDB at all"
    );
    let only_default: Vec<_> = default_members
        .iter()
        .filter(|l| !workspace.contains(l))
        .collect();
    let only_workspace: Vec<_> = workspace
        .iter()
        .filter(|l| !default_members.contains(l))
        .collect();
    assert!(
        only_default.is_empty() && only_workspace.is_empty(),
        "`cargo run` (default members) and `--workspace` resolve different features, so \
         RocksDB would be built twice: only with the default members {only_default:?}; \
         only with --workspace {only_workspace:?}"
    );
}
