//! Results: `results.json` (one row per system × clients × payload),
//! `results.md` (the table, with the command, the machine and the physical
//! limits on top) and SVG plots: throughput against clients and latency CDFs
//! of the closed-loop runs, latency against offered load of open-loop sweeps.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use hdrhistogram::Histogram;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;
use serde::Serialize;

use crate::limits::Limits;

#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub system: String,
    pub clients: usize,
    pub payload: usize,
    pub rate_per_sec: Option<f64>,
    pub duration_s: f64,
    pub appends: u64,
    pub errors: u64,
    pub appends_per_sec: f64,
    pub mb_per_sec: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    /// CPU seconds of all nodes together inside the measured window.
    pub cpu_s: f64,
    /// Per node, in node order.
    pub node_cpu_s: Vec<f64>,
    /// CPU of the load generator inside the window; `None` when it ran in
    /// a node's process (the embedded log), whose CPU includes it.
    pub generator_cpu_s: Option<f64>,
    pub node_peak_rss_mib: Vec<f64>,
    /// (latency µs, fraction ≤) points for the CDF plot.
    #[serde(skip)]
    pub cdf: Vec<(u64, f64)>,
}

pub fn cdf_points(hist: &Histogram<u64>) -> Vec<(u64, f64)> {
    if hist.is_empty() {
        return Vec::new();
    }
    [
        0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.995, 0.999,
        0.9999, 1.0,
    ]
    .iter()
    .map(|&q| (hist.value_at_quantile(q).max(1), q))
    .collect()
}

#[derive(Debug, Serialize)]
struct Header<'a> {
    command: &'a str,
    machine: &'a str,
    limits: &'a Limits,
}

pub fn write_all(
    out: &Path,
    rows: &[Row],
    command: &str,
    machine: &str,
    limits: &Limits,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(rows)?,
    )?;
    std::fs::write(
        out.join("run.json"),
        serde_json::to_string_pretty(&Header {
            command,
            machine,
            limits,
        })?,
    )?;
    std::fs::write(
        out.join("results.md"),
        markdown(rows, command, machine, limits),
    )?;
    let (closed, open): (Vec<&Row>, Vec<&Row>) =
        rows.iter().partition(|r| r.rate_per_sec.is_none());
    for payload in set(rows.iter().map(|r| r.payload)) {
        let closed: Vec<&Row> = closed
            .iter()
            .copied()
            .filter(|r| r.payload == payload)
            .collect();
        if !closed.is_empty() {
            throughput_plot(
                &out.join(format!("throughput-{payload}B.svg")),
                &closed,
                payload,
            )?;
        }
        for clients in set(rows.iter().map(|r| r.clients)) {
            let selected: Vec<&Row> = closed
                .iter()
                .copied()
                .filter(|r| r.clients == clients && !r.cdf.is_empty())
                .collect();
            if !selected.is_empty() {
                cdf_plot(
                    &out.join(format!("latency-cdf-{payload}B-{clients}c.svg")),
                    &selected,
                    payload,
                    clients,
                )?;
            }
            let sweep: Vec<&Row> = open
                .iter()
                .copied()
                .filter(|r| r.payload == payload && r.clients == clients)
                .collect();
            if sweep.len() >= 2 {
                load_plot(
                    &out.join(format!("latency-vs-load-{payload}B-{clients}c.svg")),
                    &sweep,
                    payload,
                    clients,
                )?;
            }
        }
    }
    Ok(())
}

fn set<T: Ord>(it: impl Iterator<Item = T>) -> BTreeSet<T> {
    it.collect()
}

pub fn markdown(rows: &[Row], command: &str, machine: &str, limits: &Limits) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# paxlog-bench results\n");
    let _ = writeln!(md, "Command: `{command}`\n");
    let _ = writeln!(md, "Machine: {machine}\n");
    let _ = writeln!(
        md,
        "Physical limits: fdatasync of 256 B p50 {} µs / p99 {} µs; loopback TCP round trip \
         p50 {} µs / p99 {} µs; QUIC round trip over a paxlog-net peer link (mutual TLS) \
         p50 {} µs / p99 {} µs. One client's commit cannot beat fsync + round trip.\n",
        limits.fsync_p50_us,
        limits.fsync_p99_us,
        limits.loopback_rtt_p50_us,
        limits.loopback_rtt_p99_us,
        limits.quic_rtt_p50_us,
        limits.quic_rtt_p99_us
    );
    md.push_str(&table(rows));
    md.push_str(&one_client_bound(rows, limits));
    md
}

/// Each closed-loop one-client row's p50 beside the bound issue 15 sets for
/// it: 1.5 × (fsync p50 + loopback round trip p50), both measured this run.
fn one_client_bound(rows: &[Row], limits: &Limits) -> String {
    let bound_us = 1.5 * (limits.fsync_p50_us + limits.loopback_rtt_p50_us) as f64;
    let mut out = String::new();
    let singles: Vec<&Row> = rows
        .iter()
        .filter(|r| r.clients == 1 && r.rate_per_sec.is_none())
        .collect();
    if singles.is_empty() {
        return out;
    }
    let quic_floor_us = limits.quic_commit_floor_us();
    let _ = writeln!(
        out,
        "\nOne client's p50 against 1.5 × (fsync p50 {} µs + round trip p50 {} µs) = {bound_us:.0} µs, \
         and against fsync p50 + 2 × QUIC round trip p50 = {quic_floor_us} µs (the least a commit \
         over paxlog's transport takes: client → leader → follower and back):\n",
        limits.fsync_p50_us, limits.loopback_rtt_p50_us
    );
    let _ = writeln!(
        out,
        "| system | payload B | p50 µs | p50 ÷ bound | p50 ÷ QUIC floor |"
    );
    let _ = writeln!(out, "| --- | --- | --- | --- | --- |");
    for r in singles {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.2} | {:.2} |",
            r.system,
            r.payload,
            r.p50_us,
            r.p50_us as f64 / bound_us.max(1.0),
            r.p50_us as f64 / (quic_floor_us as f64).max(1.0)
        );
    }
    out
}

pub fn table(rows: &[Row]) -> String {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::ASCII_MARKDOWN);
    t.set_header([
        "system",
        "clients",
        "payload B",
        "offered/s",
        "appends/s",
        "MB/s",
        "p50 µs",
        "p99 µs",
        "p99.9 µs",
        "errors",
        "CPU s (3 nodes)",
        "CPU µs/op (nodes)",
        "CPU µs/op (load gen)",
        "peak RSS MiB (max node)",
    ]);
    for r in rows {
        let rss = r.node_peak_rss_mib.iter().copied().fold(0.0f64, f64::max);
        t.add_row([
            r.system.clone(),
            r.clients.to_string(),
            r.payload.to_string(),
            r.rate_per_sec
                .map_or_else(|| "closed".to_string(), |r| format!("{r:.0}")),
            format!("{:.0}", r.appends_per_sec),
            format!("{:.2}", r.mb_per_sec),
            r.p50_us.to_string(),
            r.p99_us.to_string(),
            r.p999_us.to_string(),
            r.errors.to_string(),
            format!("{:.2}", r.cpu_s),
            per_op_us(r.cpu_s, r.appends),
            r.generator_cpu_s
                .map_or_else(|| "in node 1".to_string(), |s| per_op_us(s, r.appends)),
            format!("{rss:.0}"),
        ]);
    }
    format!("{t}\n")
}

/// CPU microseconds per acknowledged operation.
fn per_op_us(cpu_s: f64, ops: u64) -> String {
    if ops == 0 {
        return "-".to_string();
    }
    format!("{:.1}", cpu_s * 1e6 / ops as f64)
}

const COLORS: [RGBColor; 6] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
];

fn systems(rows: &[&Row]) -> Vec<String> {
    let mut seen = Vec::new();
    for r in rows {
        if !seen.contains(&r.system) {
            seen.push(r.system.clone());
        }
    }
    seen
}

fn throughput_plot(path: &Path, rows: &[&Row], payload: usize) -> anyhow::Result<()> {
    let series = systems(rows)
        .into_iter()
        .map(|system| {
            let mut points: Vec<(f64, f64)> = rows
                .iter()
                .filter(|r| r.system == system)
                .map(|r| (r.clients as f64, r.appends_per_sec))
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            (system, points)
        })
        .collect();
    let x_max = rows.iter().map(|r| r.clients).max().unwrap_or(1).max(2) as f64;
    let y_max = rows
        .iter()
        .map(|r| r.appends_per_sec)
        .fold(1.0f64, f64::max)
        * 1.1;
    line_chart(
        path,
        Chart {
            caption: format!("appends/s vs clients, {payload} B payload, fsync on"),
            x_desc: "concurrent clients",
            y_desc: "appends/s",
            x: (1.0..x_max).log_scale(),
            y: 0.0..y_max,
            y_label_area: 70,
            markers: true,
            legend: SeriesLabelPosition::UpperLeft,
        },
        series,
    )
}

fn cdf_plot(path: &Path, rows: &[&Row], payload: usize, clients: usize) -> anyhow::Result<()> {
    let series: Vec<(String, Vec<(f64, f64)>)> = systems(rows)
        .into_iter()
        .map(|system| {
            let points = rows
                .iter()
                .filter(|r| r.system == system)
                .flat_map(|r| r.cdf.iter().map(|&(us, q)| (us as f64, q)))
                .collect();
            (system, points)
        })
        .collect();
    let latencies = || series.iter().flat_map(|(_, p)| p.iter().map(|&(us, _)| us));
    let x_max = latencies().reduce(f64::max).unwrap_or(10.0).max(10.0) * 1.2;
    let x_min = latencies().reduce(f64::min).unwrap_or(1.0).max(1.0) / 1.2;
    line_chart(
        path,
        Chart {
            caption: format!("commit latency CDF, {clients} clients × {payload} B, fsync on"),
            x_desc: "latency (µs, log scale)",
            y_desc: "fraction of appends",
            x: (x_min..x_max).log_scale(),
            y: 0.0..1.0,
            y_label_area: 60,
            markers: false,
            legend: SeriesLabelPosition::LowerRight,
        },
        series,
    )
}

/// The "hockey stick": p99 latency against the offered rate, one line per
/// system; where a line turns up, that system saturates.
fn load_plot(path: &Path, rows: &[&Row], payload: usize, clients: usize) -> anyhow::Result<()> {
    let series: Vec<(String, Vec<(f64, f64)>)> = systems(rows)
        .into_iter()
        .map(|system| {
            let mut points: Vec<(f64, f64)> = rows
                .iter()
                .filter(|r| r.system == system)
                .filter_map(|r| Some((r.rate_per_sec?, r.p99_us.max(1) as f64)))
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            (system, points)
        })
        .collect();
    let rates = || rows.iter().filter_map(|r| r.rate_per_sec);
    let latencies = || rows.iter().map(|r| r.p99_us.max(1) as f64);
    let x_max = rates().fold(1.0f64, f64::max) * 1.05;
    let y_max = latencies().fold(10.0f64, f64::max) * 1.5;
    let y_min = latencies().fold(f64::MAX, f64::min).min(y_max) / 1.5;
    line_chart(
        path,
        Chart {
            caption: format!(
                "p99 latency vs offered load, {clients} clients × {payload} B, fsync on"
            ),
            x_desc: "offered appends/s (open loop)",
            y_desc: "p99 latency (µs, log scale)",
            x: 0.0..x_max,
            y: (y_min..y_max).log_scale(),
            y_label_area: 70,
            markers: true,
            legend: SeriesLabelPosition::UpperLeft,
        },
        series,
    )
}

/// What differs between the kinds of plot, the axes' scales among it.
struct Chart<X, Y> {
    caption: String,
    x_desc: &'static str,
    y_desc: &'static str,
    x: X,
    y: Y,
    y_label_area: u32,
    markers: bool,
    legend: SeriesLabelPosition,
}

/// One line per system, colored in series order, with a legend.
fn line_chart<X, Y>(
    path: &Path,
    chart: Chart<X, Y>,
    series: Vec<(String, Vec<(f64, f64)>)>,
) -> anyhow::Result<()>
where
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let mut plot = ChartBuilder::on(&root)
        .caption(&chart.caption, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(chart.y_label_area)
        .build_cartesian_2d(chart.x, chart.y)
        .map_err(plot_err)?;
    plot.configure_mesh()
        .x_desc(chart.x_desc)
        .y_desc(chart.y_desc)
        .draw()
        .map_err(plot_err)?;
    for (i, (system, points)) in series.into_iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        plot.draw_series(LineSeries::new(
            points.iter().copied(),
            color.stroke_width(2),
        ))
        .map_err(plot_err)?
        .label(system)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        if chart.markers {
            plot.draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(plot_err)?;
        }
    }
    plot.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(chart.legend)
        .draw()
        .map_err(plot_err)?;
    root.present().map_err(plot_err)?;
    Ok(())
}

fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("plot: {e:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(system: &str, clients: usize, tput: f64) -> Row {
        let mut h = Histogram::<u64>::new(3).expect("histogram");
        for v in [100, 200, 300, 5000] {
            h.record(v).expect("record");
        }
        Row {
            system: system.into(),
            clients,
            payload: 256,
            rate_per_sec: None,
            duration_s: 1.0,
            appends: 10,
            errors: 0,
            appends_per_sec: tput,
            mb_per_sec: 0.0,
            p50_us: 200,
            p90_us: 300,
            p99_us: 5000,
            p999_us: 5000,
            max_us: 5000,
            cpu_s: 0.5,
            node_cpu_s: vec![0.2, 0.2, 0.1],
            generator_cpu_s: Some(0.1),
            node_peak_rss_mib: vec![10.0, 12.0, 11.0],
            cdf: cdf_points(&h),
        }
    }

    #[test]
    fn writes_json_markdown_and_plots() {
        let dir = tempfile::tempdir().expect("tempdir");
        let offered = |system: &str, rate: f64, p99_us: u64| Row {
            rate_per_sec: Some(rate),
            p99_us,
            ..row(system, 64, rate)
        };
        let rows = vec![
            row("paxlog", 1, 1000.0),
            row("paxlog", 16, 9000.0),
            row("floor", 1, 1500.0),
            row("floor", 16, 7000.0),
            offered("paxlog", 1000.0, 900),
            offered("paxlog", 9000.0, 40_000),
            offered("floor", 1000.0, 600),
        ];
        let limits = Limits {
            fsync_p50_us: 200,
            fsync_p99_us: 400,
            loopback_rtt_p50_us: 20,
            loopback_rtt_p99_us: 40,
            quic_rtt_p50_us: 80,
            quic_rtt_p99_us: 160,
        };
        write_all(dir.path(), &rows, "bench --quick", "test box", &limits).expect("write");
        let json: Vec<serde_json::Value> = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("results.json")).expect("json"),
        )
        .expect("parse");
        assert_eq!(json.len(), 7);
        for key in [
            "system",
            "clients",
            "payload",
            "appends_per_sec",
            "p50_us",
            "p99_us",
            "p999_us",
        ] {
            assert!(json[0].get(key).is_some(), "missing {key}");
        }
        let md = std::fs::read_to_string(dir.path().join("results.md")).expect("md");
        assert!(md.contains("bench --quick") && md.contains("| floor"));
        let svg = std::fs::read_to_string(dir.path().join("throughput-256B.svg")).expect("svg");
        assert!(svg.contains("<svg") && svg.contains("paxlog"));
        assert!(dir.path().join("latency-cdf-256B-16c.svg").exists());
        assert!(
            !dir.path().join("latency-cdf-256B-64c.svg").exists(),
            "open-loop rows are not drawn as CDFs"
        );
        let sweep = std::fs::read_to_string(dir.path().join("latency-vs-load-256B-64c.svg"))
            .expect("sweep");
        assert!(sweep.contains("paxlog") && sweep.contains("offered appends/s"));
        assert!(md.contains("| closed") && md.contains("| 9000"));
        // 1.5 × (200 + 20) = 330 µs; the one-client rows only.
        assert!(md.contains("= 330 µs"), "{md}");
        // 200 + 2 × 80 = 360 µs; p50 200 µs is 0.61 of 330 and 0.56 of 360.
        assert!(md.contains("= 360 µs"), "{md}");
        assert!(md.contains("| paxlog | 256 | 200 | 0.61 | 0.56 |"), "{md}");
        let bound_rows: Vec<&str> = md
            .lines()
            .skip_while(|l| !l.starts_with("One client's p50"))
            .filter(|l| l.starts_with("| paxlog |") || l.starts_with("| floor |"))
            .collect();
        assert_eq!(bound_rows.len(), 2, "{bound_rows:?}");
    }
}
