//! Publish rate limits: token buckets on messages and bytes, per connection and per token `sub`.
//!
//! A bucket holds up to one second of its rate. A publish is admitted when the bucket holds
//! its cost — or, for a cost above one second's worth (a large batch), when the bucket is full
//! — and then takes the whole cost, possibly into debt that later publishes wait out. So the
//! long-run rate holds and no batch is refused forever.

use crate::config::Config;
use crate::token::Limits;

/// One token bucket; `level` is in the bucket's unit (messages or bytes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenBucket {
    level: f64,
    updated_ms: u64,
}

impl TokenBucket {
    pub fn full(rate_per_s: f64, now_ms: u64) -> TokenBucket {
        TokenBucket { level: rate_per_s, updated_ms: now_ms }
    }

    fn refill(&mut self, rate_per_s: f64, now_ms: u64) {
        let elapsed_ms = now_ms.saturating_sub(self.updated_ms) as f64;
        self.level = (self.level + elapsed_ms * rate_per_s / 1000.0).min(rate_per_s);
        self.updated_ms = self.updated_ms.max(now_ms);
    }

    /// Ok, or how many milliseconds until `cost` would be admitted. Takes nothing.
    fn check(&mut self, rate_per_s: f64, cost: f64, now_ms: u64) -> Result<(), u64> {
        self.refill(rate_per_s, now_ms);
        let needed = cost.min(rate_per_s);
        if self.level >= needed {
            Ok(())
        } else {
            Err(((needed - self.level) * 1000.0 / rate_per_s).ceil().max(1.0) as u64)
        }
    }

    fn take(&mut self, cost: f64) {
        self.level -= cost;
    }

    /// Whether the bucket has been idle long enough to be full again (it can be forgotten).
    pub fn is_full_at(&self, rate_per_s: f64, now_ms: u64) -> bool {
        let mut copy = *self;
        copy.refill(rate_per_s, now_ms);
        copy.level >= rate_per_s
    }
}

/// Rates in units per second; `None` = unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rates {
    pub messages: Option<f64>,
    pub bytes: Option<f64>,
}

fn rate(per_second: u64) -> Option<f64> {
    (per_second > 0).then_some(per_second as f64)
}

impl Rates {
    pub fn is_unlimited(&self) -> bool {
        self.messages.is_none() && self.bytes.is_none()
    }

    /// The limits of one WebSocket connection (`PUB_RATE_PER_CONNECTION`, …).
    pub fn per_connection(config: &Config) -> Rates {
        Rates { messages: rate(config.pub_rate_per_connection), bytes: rate(config.pub_bytes_rate_per_connection) }
    }

    /// The limits of one token `sub` on a subject: its `limits` claim, else the defaults.
    pub fn per_token(config: &Config, limits: &Limits) -> Rates {
        Rates {
            messages: limits.pub_rate.or(rate(config.pub_rate_per_token)),
            bytes: limits.pub_bytes_rate.or(rate(config.pub_bytes_rate_per_token)),
        }
    }
}

/// A message bucket and a byte bucket, admitted together.
#[derive(Debug, Clone, PartialEq)]
pub struct Limiter {
    rates: Rates,
    messages: TokenBucket,
    bytes: TokenBucket,
}

impl Limiter {
    pub fn new(rates: Rates, now_ms: u64) -> Limiter {
        Limiter {
            rates,
            messages: TokenBucket::full(rates.messages.unwrap_or(0.0), now_ms),
            bytes: TokenBucket::full(rates.bytes.unwrap_or(0.0), now_ms),
        }
    }

    pub fn rates(&self) -> Rates {
        self.rates
    }

    /// Changes the rates (a refreshed token may carry other limits), keeping what was used.
    pub fn set_rates(&mut self, rates: Rates) {
        self.rates = rates;
    }

    /// Admits a publish of `messages` messages and `bytes` bytes, or says after how many
    /// milliseconds to try again; a refused publish takes nothing.
    pub fn admit(&mut self, messages: u64, bytes: u64, now_ms: u64) -> Result<(), u64> {
        let pairs = [(self.rates.messages, messages as f64), (self.rates.bytes, bytes as f64)];
        let buckets = [&mut self.messages, &mut self.bytes];
        let mut wait = 0;
        for (bucket, (rate, cost)) in buckets.into_iter().zip(pairs) {
            if let Some(rate) = rate {
                if let Err(ms) = bucket.check(rate, cost, now_ms) {
                    wait = wait.max(ms);
                }
            }
        }
        if wait > 0 {
            return Err(wait);
        }
        for (bucket, (rate, cost)) in [&mut self.messages, &mut self.bytes].into_iter().zip(pairs) {
            if rate.is_some() {
                bucket.take(cost);
            }
        }
        Ok(())
    }

    /// Whether the limiter is back to full (nothing to remember).
    pub fn is_idle(&self, now_ms: u64) -> bool {
        self.rates.messages.is_none_or(|r| self.messages.is_full_at(r, now_ms))
            && self.rates.bytes.is_none_or(|r| self.bytes.is_full_at(r, now_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(messages: Option<f64>, bytes: Option<f64>) -> Limiter {
        Limiter::new(Rates { messages, bytes }, 0)
    }

    #[test]
    fn a_full_bucket_admits_one_second_then_waits() {
        let mut l = limiter(Some(10.0), None);
        for _ in 0..10 {
            l.admit(1, 100, 0).unwrap();
        }
        assert_eq!(l.admit(1, 100, 0), Err(100));
        assert_eq!(l.admit(1, 100, 50), Err(50));
        l.admit(1, 100, 100).unwrap();
    }

    #[test]
    fn the_long_run_rate_holds() {
        let mut l = limiter(Some(100.0), None);
        let mut admitted = 0u64;
        for ms in 0..10_000u64 {
            while l.admit(1, 0, ms).is_ok() {
                admitted += 1;
            }
        }
        // One second of burst plus 100/s for the ten seconds.
        assert!((1000..=1100).contains(&admitted), "{admitted}");
    }

    #[test]
    fn a_batch_above_the_rate_waits_for_a_full_bucket_and_leaves_debt() {
        let mut l = limiter(Some(10.0), None);
        l.admit(1, 0, 0).unwrap();
        assert_eq!(l.admit(50, 0, 0), Err(100), "needs a full bucket");
        l.admit(50, 0, 100).unwrap();
        // 40 messages of debt: 4 s before one more message.
        assert_eq!(l.admit(1, 0, 100), Err(4100));
        l.admit(1, 0, 4200).unwrap();
    }

    #[test]
    fn both_buckets_must_admit_and_a_refusal_takes_nothing() {
        let mut l = limiter(Some(100.0), Some(1000.0));
        l.admit(1, 1000, 0).unwrap();
        assert_eq!(l.admit(1, 500, 0), Err(500), "bytes are the limit");
        l.admit(1, 500, 500).unwrap();
        // The refusal above did not consume a message token.
        assert!(l.admit(97, 0, 500).is_ok());
    }

    #[test]
    fn token_limits_override_the_configured_defaults() {
        let config = Config { pub_rate_per_token: 50, pub_rate_per_connection: 7, ..Config::default() };
        assert_eq!(Rates::per_connection(&config), Rates { messages: Some(7.0), bytes: None });
        assert_eq!(Rates::per_token(&config, &Limits::default()), Rates { messages: Some(50.0), bytes: None });
        let own = Limits { pub_rate: Some(2.0), pub_bytes_rate: Some(100.0), connections: None };
        assert_eq!(Rates::per_token(&config, &own), Rates { messages: Some(2.0), bytes: Some(100.0) });
        assert!(Rates::per_connection(&Config::default()).is_unlimited());
    }

    #[test]
    fn unlimited_admits_everything_and_idleness_is_seen() {
        let mut l = limiter(None, None);
        for _ in 0..10_000 {
            l.admit(1000, 1 << 30, 0).unwrap();
        }
        let mut l = limiter(Some(1.0), None);
        l.admit(1, 0, 0).unwrap();
        assert!(!l.is_idle(500));
        assert!(l.is_idle(1000));
    }
}
