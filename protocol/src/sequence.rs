//! Sequence numbers: assigned once, contiguous, never reused, and exact in JavaScript.

use crate::error::ProtocolError;

/// A message's position in its subject, starting at 1.
pub type Seq = u64;

/// The largest sequence number: 2^53 - 1, so every sequence is exact as a JSON/JavaScript number.
pub const MAX_SEQ: Seq = (1 << 53) - 1;

/// The sequence range `first..=last` that `count` new messages take after `last_assigned`.
pub fn assign(last_assigned: Seq, count: usize) -> Result<(Seq, Seq), ProtocolError> {
    if count == 0 {
        return Err(ProtocolError::bad_request("nothing to publish"));
    }
    let first = last_assigned + 1;
    let last = last_assigned
        .checked_add(count as u64)
        .filter(|last| *last <= MAX_SEQ)
        .ok_or_else(|| ProtocolError::conflict("subject has exhausted its sequence numbers"))?;
    Ok((first, last))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    #[test]
    fn assigns_contiguous_ranges_after_the_last() {
        assert_eq!(assign(0, 1).unwrap(), (1, 1));
        assert_eq!(assign(41, 10).unwrap(), (42, 51));
    }

    #[test]
    fn refuses_empty_publishes() {
        assert_eq!(assign(5, 0).unwrap_err().code, ErrorCode::BadRequest);
    }

    #[test]
    fn never_goes_past_the_javascript_safe_integer() {
        assert_eq!(assign(MAX_SEQ - 1, 1).unwrap(), (MAX_SEQ, MAX_SEQ));
        assert_eq!(assign(MAX_SEQ, 1).unwrap_err().code, ErrorCode::Conflict);
        assert_eq!(assign(MAX_SEQ - 1, 2).unwrap_err().code, ErrorCode::Conflict);
    }
}
