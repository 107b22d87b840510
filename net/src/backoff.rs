//! Exponential reconnect backoff with full jitter.

use std::time::Duration;

use rand::Rng;

/// Delays double from `min_ms` up to `max_ms`; each delay is drawn uniformly
/// from `[current/2, current]` so that peers restarting together spread out.
#[derive(Debug, Clone)]
pub struct Backoff {
    min_ms: u64,
    max_ms: u64,
    /// Invariant: `min_ms <= current_ms <= max_ms`.
    current_ms: u64,
}

impl Backoff {
    pub fn new(min_ms: u64, max_ms: u64) -> Self {
        assert!(
            min_ms > 0 && min_ms <= max_ms,
            "backoff needs 0 < min <= max"
        );
        Self {
            min_ms,
            max_ms,
            current_ms: min_ms,
        }
    }

    /// The next delay to wait before retrying; grows the following one.
    pub fn next_delay(&mut self) -> Duration {
        let upper = self.current_ms;
        let delay_ms = rand::thread_rng().gen_range(upper / 2..=upper);
        self.current_ms = self.current_ms.saturating_mul(2).min(self.max_ms);
        assert!(self.min_ms <= self.current_ms && self.current_ms <= self.max_ms);
        Duration::from_millis(delay_ms)
    }

    /// After a success the next failure starts small again.
    pub fn reset(&mut self) {
        self.current_ms = self.min_ms;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_stay_bounded() {
        let mut b = Backoff::new(50, 2_000);
        let mut last_upper = 0;
        for _ in 0..20 {
            let d = b.next_delay().as_millis() as u64;
            assert!(d <= 2_000, "delay {d} over cap");
            last_upper = last_upper.max(d);
        }
        assert!(last_upper >= 1_000, "backoff never grew: {last_upper}");
        b.reset();
        assert!(b.next_delay().as_millis() <= 50);
    }
}
