//! The recent latencies `paxlog status` quotes (fsync, round trip per peer).
//! Prometheus keeps the full histograms; these answer "how is it now" from
//! the node itself, without a Prometheus server.

use std::collections::VecDeque;
use std::time::Duration;

/// Samples a window keeps: the latest ones, so a slow hour long ago does not
/// colour the figure an operator reads now.
pub const LATENCY_WINDOW: usize = 512;

#[derive(Debug, Default)]
pub struct LatencyWindow {
    /// Invariant: at most [`LATENCY_WINDOW`] samples, oldest first.
    samples_us: VecDeque<u64>,
}

impl LatencyWindow {
    pub fn record(&mut self, took: Duration) {
        if self.samples_us.len() == LATENCY_WINDOW {
            self.samples_us.pop_front();
        }
        self.samples_us
            .push_back(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
        assert!(self.samples_us.len() <= LATENCY_WINDOW);
    }

    /// The `q` quantile (0 < q <= 1) of the window, nearest rank; `None` when
    /// it is empty.
    pub fn quantile_us(&self, q: f64) -> Option<u64> {
        let mut sorted: Vec<u64> = self.samples_us.iter().copied().collect();
        sorted.sort_unstable();
        nearest_rank(&sorted, q)
    }
}

/// The `q` quantile (0 < q <= 1) of ascending `sorted`, nearest rank;
/// `None` when it is empty.
pub fn nearest_rank(sorted: &[u64], q: f64) -> Option<u64> {
    assert!(q > 0.0 && q <= 1.0, "a quantile is in (0, 1]: {q}");
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1));
    sorted.get(rank - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank_over_the_latest_samples() {
        let mut w = LatencyWindow::default();
        assert_eq!(w.quantile_us(0.5), None);
        for us in 1..=100 {
            w.record(Duration::from_micros(us));
        }
        assert_eq!(w.quantile_us(0.5), Some(50));
        assert_eq!(w.quantile_us(0.99), Some(99));
        assert_eq!(w.quantile_us(1.0), Some(100));
        // Old samples leave: after a window of 1 ms ones, 1 ms is every quantile.
        for _ in 0..LATENCY_WINDOW {
            w.record(Duration::from_millis(1));
        }
        assert_eq!(w.quantile_us(0.01), Some(1_000));
    }
}
