//! Idempotent producers (`Producer-Id` / `Producer-Epoch` / `Producer-Seq`): Kafka-style
//! fencing. A producer's epoch only grows; a new epoch starts at seq 0; within an epoch the seq
//! grows by one per accepted append, a repeat of an accepted seq is a duplicate (acknowledged,
//! not stored again) and a jump is a gap.

use super::parse_header_uint;
use crate::error::ProtocolError;

/// The three producer headers of one request, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerHeaders {
    pub id: String,
    pub epoch: u64,
    pub seq: u64,
}

/// The longest `Producer-Id` accepted.
pub const MAX_PRODUCER_ID_LEN: usize = 256;

/// All three headers together or none; integers strictly decimal.
pub fn parse_headers(id: Option<&str>, epoch: Option<&str>, seq: Option<&str>) -> Result<Option<ProducerHeaders>, ProtocolError> {
    let (id, epoch, seq) = match (id, epoch, seq) {
        (None, None, None) => return Ok(None),
        (Some(id), Some(epoch), Some(seq)) => (id, epoch, seq),
        _ => {
            return Err(ProtocolError::bad_request(
                "Producer-Id, Producer-Epoch and Producer-Seq must be sent together",
            ))
        }
    };
    if id.is_empty() || id.len() > MAX_PRODUCER_ID_LEN {
        return Err(ProtocolError::bad_request(format!("Producer-Id must be 1 to {MAX_PRODUCER_ID_LEN} bytes")));
    }
    let (epoch, seq) = (parse_header_uint("Producer-Epoch", epoch)?, parse_header_uint("Producer-Seq", seq)?);
    Ok(Some(ProducerHeaders { id: id.to_owned(), epoch, seq }))
}

/// What the stream remembers of a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerState {
    pub epoch: u64,
    pub last_seq: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProducerDecision {
    /// Append, then remember this state (in the same transaction as the append).
    Accept(ProducerState),
    /// Already appended: acknowledge with the highest accepted seq, store nothing.
    Duplicate { last_seq: u64 },
    /// A newer epoch has fenced this producer (403).
    StaleEpoch { current: u64 },
    /// A new epoch must start at seq 0 (400).
    EpochMustStartAtZero,
    /// A seq was skipped (409).
    Gap { expected: u64, received: u64 },
}

pub fn decide(state: Option<ProducerState>, epoch: u64, seq: u64) -> ProducerDecision {
    let accept = ProducerDecision::Accept(ProducerState { epoch, last_seq: seq });
    let Some(state) = state else {
        return if seq == 0 { accept } else { ProducerDecision::Gap { expected: 0, received: seq } };
    };
    if epoch < state.epoch {
        ProducerDecision::StaleEpoch { current: state.epoch }
    } else if epoch > state.epoch {
        if seq == 0 { accept } else { ProducerDecision::EpochMustStartAtZero }
    } else if seq <= state.last_seq {
        ProducerDecision::Duplicate { last_seq: state.last_seq }
    } else if seq == state.last_seq + 1 {
        accept
    } else {
        ProducerDecision::Gap { expected: state.last_seq + 1, received: seq }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ProducerDecision::*;

    fn st(epoch: u64, last_seq: u64) -> Option<ProducerState> {
        Some(ProducerState { epoch, last_seq })
    }

    #[test]
    fn headers_come_together_and_strict() {
        assert_eq!(parse_headers(None, None, None).unwrap(), None);
        assert_eq!(
            parse_headers(Some("p"), Some("1"), Some("0")).unwrap(),
            Some(ProducerHeaders { id: "p".into(), epoch: 1, seq: 0 })
        );
        assert!(parse_headers(Some("p"), None, None).is_err());
        assert!(parse_headers(None, Some("0"), None).is_err());
        assert!(parse_headers(Some("p"), Some("0"), None).is_err());
        assert!(parse_headers(Some(""), Some("0"), Some("0")).is_err());
        for bad in ["1abc", "0xyz", "1e3", "-1", "01"] {
            assert!(parse_headers(Some("p"), Some(bad), Some("0")).is_err(), "{bad}");
            assert!(parse_headers(Some("p"), Some("0"), Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn new_producers_start_at_zero() {
        assert_eq!(decide(None, 0, 0), Accept(ProducerState { epoch: 0, last_seq: 0 }));
        assert_eq!(decide(None, 5, 0), Accept(ProducerState { epoch: 5, last_seq: 0 }));
        assert_eq!(decide(None, 0, 3), Gap { expected: 0, received: 3 });
    }

    #[test]
    fn sequences_within_an_epoch() {
        assert_eq!(decide(st(0, 2), 0, 3), Accept(ProducerState { epoch: 0, last_seq: 3 }));
        assert_eq!(decide(st(0, 2), 0, 1), Duplicate { last_seq: 2 });
        assert_eq!(decide(st(0, 2), 0, 2), Duplicate { last_seq: 2 });
        assert_eq!(decide(st(0, 2), 0, 5), Gap { expected: 3, received: 5 });
    }

    #[test]
    fn epochs_fence() {
        assert_eq!(decide(st(1, 0), 0, 1), StaleEpoch { current: 1 });
        assert_eq!(decide(st(0, 7), 1, 0), Accept(ProducerState { epoch: 1, last_seq: 0 }));
        assert_eq!(decide(st(0, 7), 1, 5), EpochMustStartAtZero);
    }
}
