//! The publish decision: is this a retry of a publish already stored (its `msgId`), does the
//! writer's expectation of the last sequence hold (`expectLastSeq`), and which sequences do the
//! new messages take.
//!
//! The server makes the decision and the append in one event of the subject's Durable Object,
//! which runs one event at a time, so nothing can be published between the check and the write.

use crate::dedup::{self, DedupDecision, DedupRecord};
use crate::error::ProtocolError;
use crate::sequence::{self, Seq};

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

    proptest! {
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
