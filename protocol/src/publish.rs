//! The publish decision: is this a retry of a publish already stored (its `msgId`), does the
//! writer's expectation of the last sequence hold (`expectLastSeq`), and which sequences do the
//! new messages take. A batch keyed entry by entry (`msgIds`) is decided by [`decide_entries`]:
//! which entries are new, and which were stored before.
//!
//! The server makes the decision and the append in one event of the subject's Durable Object,
//! which runs one event at a time, so nothing can be published between the check and the write.

use crate::dedup::{self, DedupDecision, DedupRecord};
use crate::error::ProtocolError;
use crate::sequence::{self, Seq};
use std::collections::HashMap;

/// What to do with a publish that was not refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishDecision {
    /// Store the messages as `first..=last` (and remember the `msgId`, if any).
    Append { first: Seq, last: Seq },
    /// The `msgId` was stored as `first..=last` within the dedup window: store nothing and
    /// answer with those sequences.
    Duplicate { first: Seq, last: Seq },
}

/// What a publish asks for, next to what the subject holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Publish {
    /// How many messages (1 for a single publish).
    pub count: usize,
    /// What storage remembers of the publish's `msgId` (None: no `msgId`, or not seen).
    pub previous: Option<DedupRecord>,
    /// The last sequence the writer expects the subject to have (0: no message ever).
    pub expect_last_seq: Option<Seq>,
}

/// Decides a publish on a subject whose newest sequence is `last_seq`.
///
/// The `msgId` is checked first: a retry of a publish that was stored answers its original
/// sequences even though the subject has moved on since (its own append moved it), so a
/// conditional publish resent after a dropped connection never reports a false conflict. Then
/// the expectation: when it does not hold, the publish is refused with `conflict` carrying
/// `lastSeq`, and nothing is stored.
pub fn decide(publish: Publish, last_seq: Seq, now: u64, dedup_window_ms: u64) -> Result<PublishDecision, ProtocolError> {
    if let DedupDecision::Duplicate { first, last } = dedup::decide(publish.previous, now, dedup_window_ms) {
        return Ok(PublishDecision::Duplicate { first, last });
    }
    if let Some(expected) = publish.expect_last_seq.filter(|expected| *expected != last_seq) {
        return Err(expectation_failed(expected, last_seq));
    }
    let (first, last) = sequence::assign(last_seq, publish.count)?;
    Ok(PublishDecision::Append { first, last })
}

/// One entry of a batch keyed entry by entry: its `msgId`, and what storage remembers of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyedEntry<'a> {
    pub msg_id: Option<&'a str>,
    pub previous: Option<DedupRecord>,
}

/// What becomes of one entry of a batch keyed entry by entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryOutcome {
    /// Store it as this sequence (and remember its `msgId`, if any).
    New(Seq),
    /// Its `msgId` was stored as this sequence (within the dedup window, or by an earlier entry
    /// of the same batch): store nothing for it.
    Duplicate(Seq),
}

impl EntryOutcome {
    pub fn seq(self) -> Seq {
        match self {
            EntryOutcome::New(seq) | EntryOutcome::Duplicate(seq) => seq,
        }
    }
}

/// Decides a batch whose entries carry their own `msgId`s, on a subject whose newest sequence is
/// `last_seq`: the outcome of each entry, in entry order. The new entries take contiguous
/// sequences after `last_seq`, in entry order, exactly as if each entry had been published alone,
/// one after another. A key that repeats within the batch is stored once, by its first entry.
///
/// The expectation holds for the new entries as a whole (the first takes `expect_last_seq + 1`);
/// when every entry is a duplicate, the batch answers their original sequences whatever the
/// subject's last sequence is now, as a single publish's retry does.
pub fn decide_entries(
    entries: &[KeyedEntry],
    expect_last_seq: Option<Seq>,
    last_seq: Seq,
    now: u64,
    dedup_window_ms: u64,
) -> Result<Vec<EntryOutcome>, ProtocolError> {
    let mut outcomes = Vec::with_capacity(entries.len());
    let mut keys_in_batch: HashMap<&str, Seq> = HashMap::new();
    let mut fresh: u64 = 0;
    for entry in entries {
        if let DedupDecision::Duplicate { first, .. } = dedup::decide(entry.previous, now, dedup_window_ms) {
            outcomes.push(EntryOutcome::Duplicate(first));
            continue;
        }
        if let Some(&seq) = entry.msg_id.and_then(|key| keys_in_batch.get(key)) {
            outcomes.push(EntryOutcome::Duplicate(seq));
            continue;
        }
        fresh += 1;
        let seq = last_seq.saturating_add(fresh);
        if let Some(key) = entry.msg_id {
            keys_in_batch.insert(key, seq);
        }
        outcomes.push(EntryOutcome::New(seq));
    }
    if fresh > 0 {
        if let Some(expected) = expect_last_seq.filter(|expected| *expected != last_seq) {
            return Err(expectation_failed(expected, last_seq));
        }
        sequence::assign(last_seq, fresh as usize)?;
    }
    Ok(outcomes)
}

/// The reply fields of a batch keyed entry by entry: `seqs`, each entry's sequence in entry
/// order, and `duplicates`, the indexes of the entries that were stored before (empty when none).
pub fn entries_reply(outcomes: &[EntryOutcome]) -> serde_json::Value {
    let seqs: Vec<Seq> = outcomes.iter().map(|outcome| outcome.seq()).collect();
    let duplicates: Vec<usize> =
        outcomes.iter().enumerate().filter(|(_, outcome)| matches!(outcome, EntryOutcome::Duplicate(_))).map(|(i, _)| i).collect();
    serde_json::json!({ "seqs": seqs, "duplicates": duplicates })
}

/// The refusal of a publish whose expected last sequence is not the subject's.
pub fn expectation_failed(expected: Seq, last_seq: Seq) -> ProtocolError {
    let expectation = match expected {
        0 => "expected an empty subject (last sequence 0)".to_owned(),
        _ => format!("expected last sequence {expected}"),
    };
    ProtocolError::conflict(format!(
        "{expectation}, but the subject's last sequence is {last_seq}: nothing was stored; read what came after \
         {expected} and publish again expecting {last_seq}"
    ))
    .with_detail("lastSeq", last_seq)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;
    use proptest::prelude::*;

    const WINDOW: u64 = 120_000;

    fn plain(count: usize, expect_last_seq: Option<Seq>) -> Publish {
        Publish { count, previous: None, expect_last_seq }
    }

    #[test]
    fn expectations_are_checked_against_the_last_sequence() {
        assert_eq!(decide(plain(1, Some(0)), 0, 0, WINDOW), Ok(PublishDecision::Append { first: 1, last: 1 }));
        assert_eq!(decide(plain(3, Some(7)), 7, 0, WINDOW), Ok(PublishDecision::Append { first: 8, last: 10 }));
        assert_eq!(decide(plain(1, None), 7, 0, WINDOW), Ok(PublishDecision::Append { first: 8, last: 8 }));
        let e = decide(plain(1, Some(0)), 7, 0, WINDOW).unwrap_err();
        assert_eq!((e.code, e.detail("lastSeq")), (ErrorCode::Conflict, Some(7)));
        assert!(e.message.starts_with("expected an empty subject (last sequence 0), but the subject's last sequence is 7"), "{}", e.message);
        let e = decide(plain(1, Some(9)), 7, 0, WINDOW).unwrap_err();
        assert!(e.message.starts_with("expected last sequence 9, but the subject's last sequence is 7: nothing was stored"), "{}", e.message);
    }

    #[test]
    fn a_retry_answers_its_original_sequences_before_the_expectation_is_checked() {
        let previous = Some(DedupRecord { first: 5, last: 5, ts: 1_000 });
        let retry = Publish { count: 1, previous, expect_last_seq: Some(4) };
        assert_eq!(decide(retry, 5, 2_000, WINDOW), Ok(PublishDecision::Duplicate { first: 5, last: 5 }));
        // Once the key is forgotten, the expectation decides again.
        assert_eq!(decide(retry, 5, 1_000 + WINDOW + 1, WINDOW).unwrap_err().detail("lastSeq"), Some(5));
    }

    #[test]
    fn the_sequence_space_still_ends_at_max_seq() {
        assert_eq!(decide(plain(1, Some(crate::MAX_SEQ)), crate::MAX_SEQ, 0, WINDOW).unwrap_err().code, ErrorCode::Conflict);
        assert_eq!(decide(plain(0, None), 3, 0, WINDOW).unwrap_err().code, ErrorCode::BadRequest);
    }

    fn keyed<'a>(msg_id: Option<&'a str>, previous: Option<DedupRecord>) -> KeyedEntry<'a> {
        KeyedEntry { msg_id, previous }
    }

    #[test]
    fn new_entries_take_contiguous_sequences_and_duplicates_their_original_ones() {
        use EntryOutcome::{Duplicate, New};
        let stored = Some(DedupRecord { first: 3, last: 3, ts: 1_000 });
        let entries = [keyed(Some("a"), None), keyed(Some("b"), stored), keyed(None, None), keyed(Some("a"), None), keyed(Some("c"), None)];
        assert_eq!(decide_entries(&entries, None, 7, 2_000, WINDOW), Ok(vec![New(8), Duplicate(3), New(9), Duplicate(8), New(10)]));
        // An expired key is new again.
        assert_eq!(decide_entries(&entries[1..2], None, 7, 1_000 + WINDOW + 1, WINDOW), Ok(vec![New(8)]));
    }

    #[test]
    fn the_reply_gives_every_sequence_and_the_duplicates_indexes() {
        use EntryOutcome::{Duplicate, New};
        assert_eq!(entries_reply(&[New(8), Duplicate(3), New(9)]), serde_json::json!({ "seqs": [8, 3, 9], "duplicates": [1] }));
        assert_eq!(entries_reply(&[New(1)]), serde_json::json!({ "seqs": [1], "duplicates": [] }));
    }

    #[test]
    fn the_expectation_holds_for_the_new_entries_only() {
        use EntryOutcome::{Duplicate, New};
        let stored = Some(DedupRecord { first: 5, last: 5, ts: 1_000 });
        let all_stored = [keyed(Some("a"), stored), keyed(Some("a"), stored)];
        assert_eq!(decide_entries(&all_stored, Some(4), 9, 2_000, WINDOW), Ok(vec![Duplicate(5), Duplicate(5)]));
        let mixed = [keyed(Some("a"), stored), keyed(Some("b"), None)];
        assert_eq!(decide_entries(&mixed, Some(9), 9, 2_000, WINDOW), Ok(vec![Duplicate(5), New(10)]));
        let e = decide_entries(&mixed, Some(4), 9, 2_000, WINDOW).unwrap_err();
        assert_eq!((e.code, e.detail("lastSeq")), (ErrorCode::Conflict, Some(9)));
        let e = decide_entries(&[keyed(None, None)], None, crate::MAX_SEQ, 0, WINDOW).unwrap_err();
        assert_eq!(e.code, ErrorCode::Conflict);
    }

    proptest! {
        /// A batch keyed entry by entry stores and answers exactly what publishing its entries
        /// one after another, each with its own `msgId`, would: same sequences, same duplicates.
        #[test]
        fn a_keyed_batch_is_its_entries_published_one_by_one(
            stored in proptest::collection::vec(proptest::option::of(1..50u64), 6),
            keys in proptest::collection::vec(proptest::option::of(0..6usize), 1..30),
            last_seq in 50..1_000u64,
        ) {
            let names: Vec<String> = (0..6).map(|k| format!("k{k}")).collect();
            let mut storage: HashMap<&str, DedupRecord> = HashMap::new();
            for (name, seq) in names.iter().zip(&stored) {
                if let Some(seq) = seq {
                    storage.insert(name, DedupRecord { first: *seq, last: *seq, ts: 1_000 });
                }
            }
            let entries: Vec<KeyedEntry> = keys
                .iter()
                .map(|key| {
                    let msg_id = key.map(|k| names[k].as_str());
                    KeyedEntry { msg_id, previous: msg_id.and_then(|k| storage.get(k).copied()) }
                })
                .collect();
            let batch = decide_entries(&entries, None, last_seq, 2_000, WINDOW).unwrap();

            let mut last = last_seq;
            for (entry, outcome) in entries.iter().zip(&batch) {
                let publish = Publish { count: 1, previous: entry.msg_id.and_then(|k| storage.get(k).copied()), expect_last_seq: None };
                match decide(publish, last, 2_000, WINDOW).unwrap() {
                    PublishDecision::Append { first, .. } => {
                        prop_assert_eq!(*outcome, EntryOutcome::New(first));
                        if let Some(key) = entry.msg_id {
                            storage.insert(key, DedupRecord { first, last: first, ts: 2_000 });
                        }
                        last = first;
                    }
                    PublishDecision::Duplicate { first, .. } => prop_assert_eq!(*outcome, EntryOutcome::Duplicate(first)),
                }
            }
        }

        /// Without a `msgId`, a publish is refused exactly when it expects another last
        /// sequence, and the refusal carries the real one.
        #[test]
        fn refused_exactly_when_the_expectation_differs(
            last_seq in 0..1_000_000u64, count in 1..100usize, expected in proptest::option::of(0..1_000_000u64),
        ) {
            match decide(plain(count, expected), last_seq, 0, WINDOW) {
                Ok(PublishDecision::Append { first, last }) => {
                    prop_assert!(expected.is_none_or(|e| e == last_seq));
                    prop_assert_eq!((first, last), (last_seq + 1, last_seq + count as u64));
                }
                Ok(duplicate) => prop_assert!(false, "no msgId, yet {:?}", duplicate),
                Err(e) => {
                    prop_assert!(expected.is_some_and(|e| e != last_seq));
                    prop_assert_eq!((e.code, e.detail("lastSeq")), (ErrorCode::Conflict, Some(last_seq)));
                }
            }
        }

        /// Writers race in rounds: each reads the last sequence, then all publish expecting it,
        /// in a random order, each with its own `msgId`; some resend their publish (a dropped
        /// connection). Run against a model of the subject's storage: exactly one wins each
        /// round, every loser learns the real last sequence, every resend of a stored publish
        /// answers its original sequences, and nothing is stored twice.
        #[test]
        fn racing_writers_exactly_one_wins_and_retries_never_conflict(
            rounds in proptest::collection::vec((2..6usize, 1..4usize, any::<u64>()), 1..40),
        ) {
            let mut last_seq: Seq = 0;
            let mut dedup: std::collections::HashMap<String, DedupRecord> = Default::default();
            let mut now = 1_000;
            for (round, (writers, count, shuffle)) in rounds.into_iter().enumerate() {
                let seen = last_seq;
                let mut order: Vec<usize> = (0..writers).collect();
                order.rotate_left((shuffle % writers as u64) as usize);
                if shuffle & 1 == 1 {
                    order.reverse();
                }
                let mut winners = Vec::new();
                for (attempt, writer) in order.iter().chain(order.iter()).enumerate() {
                    let msg_id = format!("r{round}-w{writer}");
                    let publish = Publish { count, previous: dedup.get(&msg_id).copied(), expect_last_seq: Some(seen) };
                    now += 1;
                    let resend = attempt >= writers;
                    match decide(publish, last_seq, now, WINDOW) {
                        Ok(PublishDecision::Append { first, last }) => {
                            prop_assert!(!resend || !winners.contains(writer), "a stored publish was stored again");
                            prop_assert_eq!(first, seen + 1);
                            dedup.insert(msg_id, DedupRecord { first, last, ts: now });
                            last_seq = last;
                            winners.push(*writer);
                        }
                        Ok(PublishDecision::Duplicate { first, .. }) => {
                            prop_assert!(resend && winners.contains(writer));
                            prop_assert_eq!(first, seen + 1, "the resend answers the original sequence");
                        }
                        Err(e) => {
                            prop_assert!(!winners.contains(writer), "a false conflict for a stored publish");
                            prop_assert_eq!(e.detail("lastSeq"), Some(last_seq));
                        }
                    }
                }
                prop_assert_eq!(winners.len(), 1, "round {}: winners {:?}", round, winners);
                prop_assert_eq!(last_seq, seen + count as u64);
            }
        }
    }
}
