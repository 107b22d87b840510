//! CPU seconds and peak RSS of a process, from Linux's /proc.

use std::time::Duration;

/// Linux reports utime/stime in USER_HZ, which is 100 on every architecture
/// Linux supports today (the kernel fixes it for ABI stability).
const USER_HZ: f64 = 100.0;

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcSample {
    pub cpu: Duration,
    pub peak_rss_bytes: u64,
}

/// `None` if the process is gone or /proc is unreadable.
pub fn sample(pid: u32) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(ProcSample {
        cpu: parse_cpu(&stat)?,
        peak_rss_bytes: parse_peak_rss(&status)?,
    })
}

fn parse_cpu(stat: &str) -> Option<Duration> {
    // The command name (field 2) may contain spaces and parentheses: split
    // after its last ')'. utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_secs_f64((utime + stime) as f64 / USER_HZ))
}

fn parse_peak_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_stat_line_with_a_tricky_name() {
        let stat = "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 5 1000 10";
        assert_eq!(parse_cpu(stat), Some(Duration::from_secs(3)));
        assert_eq!(parse_cpu("42 (x"), None);
    }

    #[test]
    fn parses_vm_hwm() {
        let status = "Name:\tx\nVmPeak:\t  9000 kB\nVmHWM:\t  2048 kB\nVmRSS:\t 1024 kB\n";
        assert_eq!(parse_peak_rss(status), Some(2048 * 1024));
        assert_eq!(parse_peak_rss("Name:\tx\n"), None);
    }

    #[test]
    fn samples_this_process() {
        let s = sample(std::process::id()).expect("own /proc entry");
        assert!(s.peak_rss_bytes > 0);
    }
}
