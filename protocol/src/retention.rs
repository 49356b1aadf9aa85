//! Retention and trimming: which oldest messages to delete. Messages are only ever removed from
//! the front, so the retained ones are always the contiguous range `first..=last`.

use crate::config::Config;
use crate::sequence::Seq;

/// What a subject holds. `first == last + 1` when it is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamBounds {
    pub first: Seq,
    pub last: Seq,
}

impl StreamBounds {
    pub fn count(&self) -> u64 {
        (self.last + 1).saturating_sub(self.first)
    }
    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }
}

/// The last sequence to delete for a `trim` to `upto`, or None when nothing is retained at or
/// below it. Sequence numbers are never reused, so trimming past `last` just empties the subject.
pub fn trim_upto(bounds: StreamBounds, upto: Seq) -> Option<Seq> {
    let upto = upto.min(bounds.last);
    (upto >= bounds.first).then_some(upto)
}

/// The last sequence to delete so that at most `max_messages` remain (0 = unlimited).
pub fn count_cutoff(bounds: StreamBounds, config: &Config) -> Option<Seq> {
    let max = config.retention_max_messages;
    let excess = bounds.count().checked_sub(max).filter(|e| max > 0 && *e > 0)?;
    Some(bounds.first + excess - 1)
}

/// Messages published before this instant are too old to keep (None = no age limit).
pub fn age_cutoff(now: u64, config: &Config) -> Option<u64> {
    (config.retention_max_age_ms > 0).then(|| now.saturating_sub(config.retention_max_age_ms))
}

/// When a message published at `ts` has become too old: the first instant at which
/// [`age_cutoff`] no longer keeps it (None = no age limit). An alarm set for any earlier time
/// would find nothing to delete.
pub fn age_expiry(ts: u64, config: &Config) -> Option<u64> {
    (config.retention_max_age_ms > 0).then(|| ts + config.retention_max_age_ms + 1)
}

/// How many bytes must go so that at most `max_bytes` remain (0 when within the limit).
pub fn excess_bytes(stored_bytes: u64, config: &Config) -> u64 {
    match config.retention_max_bytes {
        0 => 0,
        max => stored_bytes.saturating_sub(max),
    }
}

/// Given the oldest messages' `(seq, size)` in order, the last sequence to delete to free at
/// least `excess` bytes. The second value is the number of bytes that cutoff frees; when the
/// rows run out before `excess` is covered the caller reads the next page and asks again.
pub fn bytes_cutoff(excess: u64, oldest: impl IntoIterator<Item = (Seq, u64)>) -> (Option<Seq>, u64) {
    let mut freed = 0;
    let mut cutoff = None;
    for (seq, size) in oldest {
        if freed >= excess {
            break;
        }
        freed += size;
        cutoff = Some(seq);
    }
    (cutoff, freed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(first: Seq, last: Seq) -> StreamBounds {
        StreamBounds { first, last }
    }

    #[test]
    fn counts_and_emptiness() {
        assert_eq!(bounds(1, 10).count(), 10);
        assert_eq!(bounds(11, 10).count(), 0);
        assert!(bounds(1, 0).is_empty());
    }

    #[test]
    fn trim_targets() {
        assert_eq!(trim_upto(bounds(5, 10), 7), Some(7));
        assert_eq!(trim_upto(bounds(5, 10), 4), None);
        assert_eq!(trim_upto(bounds(5, 10), 99), Some(10));
        assert_eq!(trim_upto(bounds(11, 10), 99), None);
        assert_eq!(trim_upto(bounds(5, 10), 0), None);
    }

    #[test]
    fn count_limit() {
        let config = Config { retention_max_messages: 3, ..Config::default() };
        assert_eq!(count_cutoff(bounds(1, 3), &config), None);
        assert_eq!(count_cutoff(bounds(1, 5), &config), Some(2));
        assert_eq!(count_cutoff(bounds(10, 20), &config), Some(17));
        assert_eq!(count_cutoff(bounds(1, 1000), &Config::default()), None);
    }

    #[test]
    fn age_limit() {
        let config = Config { retention_max_age_ms: 1_000, ..Config::default() };
        assert_eq!(age_cutoff(5_000, &config), Some(4_000));
        assert_eq!(age_cutoff(500, &config), Some(0));
        assert_eq!(age_cutoff(5_000, &Config::default()), None);
    }

    #[test]
    fn age_expiry_is_the_first_instant_the_cutoff_drops_the_message() {
        let config = Config { retention_max_age_ms: 1_000, ..Config::default() };
        let ts = 7_000;
        let expiry = age_expiry(ts, &config).unwrap();
        let kept_at = |now| ts >= age_cutoff(now, &config).unwrap();
        assert!(kept_at(expiry - 1), "one millisecond before its expiry the message is kept");
        assert!(!kept_at(expiry), "at its expiry the message is dropped");
        assert_eq!(age_expiry(ts, &Config::default()), None);
    }

    #[test]
    fn byte_limit() {
        let config = Config { retention_max_bytes: 100, ..Config::default() };
        assert_eq!(excess_bytes(90, &config), 0);
        assert_eq!(excess_bytes(130, &config), 30);
        assert_eq!(excess_bytes(u64::MAX, &Config::default()), 0);
        let rows = [(4, 10), (5, 15), (6, 50)];
        assert_eq!(bytes_cutoff(30, rows), (Some(6), 75));
        assert_eq!(bytes_cutoff(25, rows), (Some(5), 25));
        assert_eq!(bytes_cutoff(1, rows), (Some(4), 10));
        assert_eq!(bytes_cutoff(0, rows), (None, 0));
        assert_eq!(bytes_cutoff(500, rows), (Some(6), 75));
    }
}
