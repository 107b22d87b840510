//! A real scrape (issue 16): Debian's Prometheus scrapes a 3-node cluster,
//! and the commit-latency quantile and each peer's lag are read back through
//! Prometheus's HTTP query API, as a dashboard would. Under `CI` a missing
//! `prometheus` fails the test instead of skipping it.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use bytes::Bytes;
use common::workload::wait_until;
use common::{block_on, dashboard_exprs, http_get, TestCluster, WAIT_MAX};

/// The Prometheus server; killed and reaped when dropped, pass or fail.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address Prometheus says it bound: with port 0 the kernel picks it, so
/// no other process can take it between our choice and Prometheus's bind.
fn listening_on(log: &str) -> Option<SocketAddr> {
    log.lines()
        .filter(|line| line.contains("msg=\"Listening on\""))
        .find_map(|line| line.split("address=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.parse().ok())
}

fn start_prometheus(cluster: &TestCluster) -> Option<Prometheus> {
    let targets: Vec<String> = cluster
        .file
        .nodes
        .iter()
        .map(|n| format!("'{}'", n.admin.expect("admin address")))
        .collect();
    let dir = cluster.dir.path().join("prometheus");
    std::fs::create_dir_all(&dir).expect("prometheus dir");
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: paxlog\n    \
             static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        ),
    )
    .expect("write the config");
    let log = std::fs::File::create(dir.join("prometheus.log")).expect("log file");
    let spawned = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg("--web.listen-address=127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn();
    match spawned {
        Ok(child) => {
            // Reaped by its Drop if the wait below panics.
            let mut prometheus = Prometheus {
                child,
                addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            };
            let log = dir.join("prometheus.log");
            let mut bound = None;
            wait_until("Prometheus to listen", WAIT_MAX, || {
                let said = std::fs::read_to_string(&log).unwrap_or_default();
                if let Ok(Some(status)) = prometheus.child.try_wait() {
                    panic!("prometheus exited ({status}):\n{said}");
                }
                bound = listening_on(&said);
                bound.is_some()
            });
            prometheus.addr = bound.expect("the address it listens on");
            Some(prometheus)
        }
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("SKIPPED: prometheus not runnable ({e}); apt-get install prometheus");
            None
        }
        Err(e) => panic!("prometheus is required under CI (apt-get install prometheus): {e}"),
    }
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An instant query's result vector: (labels, value) per series; empty
/// until Prometheus has scraped what the query names.
fn query(prometheus: &Prometheus, promql: &str) -> Vec<(serde_json::Value, f64)> {
    let path = format!("/api/v1/query?query={}", percent_encode(promql));
    let (code, body) = http_get(prometheus.addr, &path);
    if code != 200 {
        return Vec::new();
    }
    let json: serde_json::Value = serde_json::from_str(&body).expect("Prometheus answers JSON");
    assert_eq!(json["status"], "success", "{promql}: {body}");
    json["data"]["result"]
        .as_array()
        .expect("a vector")
        .iter()
        .map(|series| {
            let value = series["value"][1]
                .as_str()
                .and_then(|v| v.parse().ok())
                .expect("a sample value");
            (series["metric"].clone(), value)
        })
        .collect()
}

#[test]
fn prometheus_reads_commit_latency_and_per_peer_lag() {
    let cluster = TestCluster::start(3);
    let Some(prometheus) = start_prometheus(&cluster) else {
        return;
    };
    let leader = cluster.wait_for_leader();
    let client = cluster.client();
    let values: Vec<Bytes> = (0..500).map(|i| Bytes::from(format!("v{i}"))).collect();
    for r in block_on(client.append_all(values, 16)) {
        r.expect("append");
    }
    // Every target up, as Prometheus sees it.
    wait_until("Prometheus to scrape all three nodes", WAIT_MAX, || {
        let up = query(&prometheus, "up{job=\"paxlog\"} == 1");
        up.len() == 3
    });
    let p99 = "histogram_quantile(0.99, sum by (le) (paxlog_commit_latency_seconds_bucket))";
    let mut quantile = Vec::new();
    wait_until(
        "the commit latency p99 through Prometheus",
        WAIT_MAX,
        || {
            quantile = query(&prometheus, p99);
            quantile
                .first()
                .is_some_and(|(_, v)| v.is_finite() && *v > 0.0)
        },
    );
    let p99_seconds = quantile[0].1;
    assert!(
        p99_seconds < 10.0,
        "a p99 commit latency of {p99_seconds} s"
    );

    let leader_admin = cluster
        .file
        .node(leader)
        .and_then(|n| n.admin)
        .expect("admin");
    let lag = format!("paxlog_peer_lag_entries{{instance=\"{leader_admin}\"}}");
    let mut lags = Vec::new();
    wait_until("each peer's lag from the leader", WAIT_MAX, || {
        lags = query(&prometheus, &lag);
        lags.len() == 2
    });
    let mut peers: Vec<String> = lags
        .iter()
        .map(|(labels, _)| labels["peer"].as_str().expect("peer label").to_string())
        .collect();
    peers.sort();
    let expected: Vec<String> = cluster
        .ids()
        .into_iter()
        .filter(|&id| id != leader)
        .map(|id| id.to_string())
        .collect();
    assert_eq!(peers, expected, "one lag series per peer of the leader");
    // Every query of the dashboard parses and runs.
    let exprs = dashboard_exprs();
    for expr in &exprs {
        let url = format!("/api/v1/query?query={}", percent_encode(expr));
        let (code, body) = http_get(prometheus.addr, &url);
        assert_eq!(code, 200, "the dashboard's query {expr} failed: {body}");
    }
    println!(
        "the dashboard's {} queries run; leader {leader}: commit p99 {:.3} ms through Prometheus; lag {:?}",
        exprs.len(),
        p99_seconds * 1e3,
        lags.iter().map(|(l, v)| (l["peer"].clone(), *v)).collect::<Vec<_>>()
    );
}

#[test]
fn the_bound_address_is_read_from_prometheus_log() {
    // Prometheus 2.42's two lines: the configured address, then the bound one.
    let log = "ts=2026-12-05T03:19:11.223Z caller=web.go:503 level=info component=web \
               msg=\"Start listening for connections\" address=127.0.0.1:0\n\
               ts=2026-12-05T03:19:11.225Z caller=tls_config.go:232 level=info component=web \
               msg=\"Listening on\" address=127.0.0.1:36109\n";
    assert_eq!(
        listening_on(log),
        Some(SocketAddr::from(([127, 0, 0, 1], 36109)))
    );
    assert_eq!(
        listening_on(
            &log[..log
                .find("ts=2026-12-05T03:19:11.225Z")
                .expect("second line")]
        ),
        None
    );
}
