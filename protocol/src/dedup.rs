//! Publish deduplication: a `msgId` seen within the window maps to the sequences it got.

use crate::sequence::Seq;

/// What storage remembers of an idempotency key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DedupRecord {
    pub first: Seq,
    pub last: Seq,
    /// When the key was first published (ms since the epoch).
    pub ts: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DedupDecision {
    /// Store the message(s) and remember the key.
    Fresh,
    /// Already stored: answer with the original sequences and store nothing.
    Duplicate { first: Seq, last: Seq },
}

/// Records older than this instant are forgotten.
pub fn expiry_cutoff(now: u64, window_ms: u64) -> u64 {
    now.saturating_sub(window_ms)
}

/// When a key first published at `ts` is forgotten: the first instant at which [`decide`] no
/// longer treats it as a duplicate.
pub fn forget_at(ts: u64, window_ms: u64) -> u64 {
    ts + window_ms + 1
}

pub fn decide(record: Option<DedupRecord>, now: u64, window_ms: u64) -> DedupDecision {
    match record {
        Some(r) if r.ts >= expiry_cutoff(now, window_ms) => DedupDecision::Duplicate { first: r.first, last: r.last },
        _ => DedupDecision::Fresh,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_only_within_the_window() {
        let record = DedupRecord { first: 7, last: 9, ts: 1_000 };
        assert_eq!(decide(None, 1_000, 120_000), DedupDecision::Fresh);
        assert_eq!(decide(Some(record), 1_000, 120_000), DedupDecision::Duplicate { first: 7, last: 9 });
        assert_eq!(decide(Some(record), 121_000, 120_000), DedupDecision::Duplicate { first: 7, last: 9 });
        assert_eq!(decide(Some(record), 121_001, 120_000), DedupDecision::Fresh);
        assert_eq!(decide(Some(record), 1_001, 0), DedupDecision::Fresh);
    }

    #[test]
    fn cutoff_never_underflows() {
        assert_eq!(expiry_cutoff(10, 120_000), 0);
        assert_eq!(expiry_cutoff(200_000, 120_000), 80_000);
    }

    #[test]
    fn a_key_is_forgotten_exactly_at_forget_at() {
        let record = DedupRecord { first: 1, last: 1, ts: 5_000 };
        let at = forget_at(record.ts, 1_000);
        assert_eq!(decide(Some(record), at - 1, 1_000), DedupDecision::Duplicate { first: 1, last: 1 });
        assert_eq!(decide(Some(record), at, 1_000), DedupDecision::Fresh);
    }
}
