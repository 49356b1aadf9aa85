//! Reconnect delays: exponential growth, a cap, and random jitter so that many clients cut off
//! by the same outage do not all come back in the same instant.

use std::time::Duration;

/// How long to wait before each reconnect attempt.
///
/// Attempt `n` (starting at 1) waits `min(max_delay, initial_delay * multiplier^(n-1))`,
/// shortened by a random fraction of up to `jitter` of itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    /// Delay before the first reconnect attempt.
    pub initial_delay: Duration,
    /// Longest delay between attempts.
    pub max_delay: Duration,
    /// Growth factor from one attempt to the next (at least 1).
    pub multiplier: f64,
    /// Fraction of each delay that is randomized, between 0 (none) and 1 (anywhere from 0 to the
    /// full delay).
    pub jitter: f64,
    /// Give up after this many consecutive failed attempts (`None`: never give up).
    pub max_attempts: Option<u32>,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(10),
            multiplier: 2.0,
            jitter: 0.3,
            max_attempts: None,
        }
    }
}

impl Backoff {
    /// The delay before attempt `attempt` (1-based), with fresh randomness.
    pub fn delay(&self, attempt: u32) -> Duration {
        self.delay_with(attempt, rand::random::<f64>())
    }

    /// The delay before attempt `attempt` for a given random draw `unit` in `[0, 1)`.
    pub fn delay_with(&self, attempt: u32, unit: f64) -> Duration {
        let exponent = attempt.saturating_sub(1).min(64) as i32;
        let uncapped = self.initial_delay.as_secs_f64() * self.multiplier.max(1.0).powi(exponent);
        let capped = uncapped.min(self.max_delay.as_secs_f64());
        let jitter = self.jitter.clamp(0.0, 1.0) * unit.clamp(0.0, 1.0);
        Duration::from_secs_f64(capped * (1.0 - jitter))
    }

    /// Whether another attempt is allowed after `failed` consecutive failures.
    pub fn allows(&self, failed: u32) -> bool {
        self.max_attempts.is_none_or(|max| failed < max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_jitter() -> Backoff {
        Backoff { jitter: 0.0, ..Backoff::default() }
    }

    #[test]
    fn grows_exponentially_then_caps() {
        let b = no_jitter();
        let delays: Vec<u128> = (1..=9).map(|n| b.delay_with(n, 0.5).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000]);
        assert_eq!(b.delay_with(u32::MAX, 0.5), Duration::from_secs(10), "huge attempts stay capped");
    }

    #[test]
    fn jitter_only_shortens_within_its_fraction() {
        let b = Backoff { jitter: 0.5, ..Backoff::default() };
        assert_eq!(b.delay_with(2, 0.0), Duration::from_millis(200));
        assert_eq!(b.delay_with(2, 0.999_999).as_millis(), 100);
        for _ in 0..1000 {
            let d = b.delay(3);
            assert!(d >= Duration::from_millis(200) && d <= Duration::from_millis(400), "{d:?}");
        }
    }

    #[test]
    fn attempts_are_limited_only_when_asked() {
        assert!(Backoff::default().allows(1_000_000));
        let limited = Backoff { max_attempts: Some(3), ..Backoff::default() };
        assert!(limited.allows(2));
        assert!(!limited.allows(3));
    }
}
