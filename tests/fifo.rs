//! One writer's order on a healthy cluster: real `paxlog serve` processes,
//! one `paxlog append` process and one `Client::append_all`, each pipelining
//! 3,000 values with a window of 256; every node's log must hold each
//! writer's values in submission order. See `common` for the harness.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{block_on, TestCluster};
use paxlog::proto::Entry;

const VALUES: usize = 3000;
const WINDOW: usize = 256;

/// The submission numbers of one writer's values (`{prefix}{n}`), in index order.
fn writer_order(entries: &[Entry], prefix: &str) -> Vec<(u64, usize)> {
    entries
        .iter()
        .filter_map(|e| {
            let text = std::str::from_utf8(&e.payload).ok()?;
            let n = text.strip_prefix(prefix)?.parse().ok()?;
            Some((e.index, n))
        })
        .collect()
}

/// `(index, value before, value at index)` wherever the order goes down.
fn descents(order: &[(u64, usize)]) -> Vec<(u64, usize, usize)> {
    order
        .windows(2)
        .filter(|w| w[1].1 < w[0].1)
        .map(|w| (w[1].0, w[0].1, w[1].1))
        .collect()
}

#[test]
fn one_writers_pipelined_appends_are_chosen_in_submission_order() {
    let cluster = TestCluster::start(3);
    let cli_input: String = (0..VALUES).map(|i| format!("cli-{i}\n")).collect();
    let lib_values: Vec<Bytes> = (0..VALUES)
        .map(|i| Bytes::from(format!("lib-{i}")))
        .collect();
    let client = cluster.client();
    // Both writers at once, so each one's values interleave with the other's.
    let ((ok, stdout, stderr), lib_results) = std::thread::scope(|s| {
        let cli = s.spawn(|| {
            cluster.cli(
                &["append", "--window", &WINDOW.to_string()],
                Some(&cli_input),
            )
        });
        let lib = block_on(client.append_all(lib_values, WINDOW));
        (cli.join().expect("cli thread"), lib)
    });
    assert!(ok, "paxlog append failed: {stderr}");
    let cli_acked: Vec<u64> = stdout
        .lines()
        .map(|l| l.parse().expect("an index per line"))
        .collect();
    assert_eq!(cli_acked.len(), VALUES);
    let lib_acked: Vec<u64> = lib_results
        .into_iter()
        .map(|r| r.expect("every append is acknowledged"))
        .collect();

    let last = cli_acked
        .iter()
        .chain(&lib_acked)
        .copied()
        .max()
        .expect("some index");
    cluster.wait_for_chosen(last);
    let mut failures = Vec::new();
    for (writer, acked) in [("cli-", &cli_acked), ("lib-", &lib_acked)] {
        let ack_descents = acked.windows(2).filter(|w| w[1] < w[0]).count();
        if ack_descents > 0 {
            failures.push(format!(
                "{writer}: {ack_descents} acknowledged indexes lower than the one before"
            ));
        }
    }
    for id in cluster.ids() {
        let entries = block_on(
            cluster
                .client_for_node(id, Duration::from_secs(10))
                .read(1, Some(last)),
        )
        .expect("read from node");
        for writer in ["cli-", "lib-"] {
            let order = writer_order(&entries, writer);
            let found = descents(&order);
            eprintln!(
                "node {id}, writer {writer}: {} values, {} descents",
                order.len(),
                found.len()
            );
            if !found.is_empty() {
                let first: Vec<String> = found
                    .iter()
                    .take(10)
                    .map(|(index, before, at)| format!("index {index}: {at} after {before}"))
                    .collect();
                failures.push(format!(
                    "node {id}, writer {writer}: {} descents in {} values; first: {}",
                    found.len(),
                    order.len(),
                    first.join(", ")
                ));
            }
            let numbers: Vec<usize> = order.iter().map(|(_, n)| *n).collect();
            if found.is_empty() && numbers != (0..VALUES).collect::<Vec<_>>() {
                failures.push(format!(
                    "node {id}, writer {writer}: {} values, not each value once",
                    numbers.len()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
