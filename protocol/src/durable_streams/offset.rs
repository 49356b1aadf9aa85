//! Offsets: `SSSSSSSSSSSSSSSS_0000000000000000`, the 16-digit zero-padded sequence of the last
//! message a position covers, then a reserved field that is always zero in this version. They
//! sort lexicographically in stream order; `-1` means "the beginning" and `now` "the tail".

use crate::error::ProtocolError;
use crate::sequence::Seq;

/// Where a read starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFrom {
    /// `-1` or no offset: from the first retained message.
    Start,
    /// `now`: from the tail (nothing old).
    Now,
    /// After the message with this sequence (0 = before the first).
    After(Seq),
}

const DIGITS: usize = 16;

/// The offset after message `seq`.
pub fn encode(seq: Seq) -> String {
    format!("{seq:016}_{:016}", 0)
}

/// A position this server issued (`SSSS…_0000…`); anything else is refused.
pub fn parse(offset: &str) -> Result<Seq, ProtocolError> {
    let invalid = || ProtocolError::bad_request(format!("invalid offset {offset:?}: expected -1, now, or an offset this server returned"));
    let (seq, reserved) = offset.split_once('_').ok_or_else(invalid)?;
    let digits = |s: &str| s.len() == DIGITS && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(seq) || !digits(reserved) || reserved.bytes().any(|b| b != b'0') {
        return Err(invalid());
    }
    seq.parse::<Seq>().map_err(|_| invalid())
}

/// The `offset` query parameter of a read (each occurrence given, in order).
pub fn parse_read_from<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<ReadFrom, ProtocolError> {
    let mut values = values.into_iter();
    let Some(first) = values.next() else { return Ok(ReadFrom::Start) };
    if values.next().is_some() {
        return Err(ProtocolError::bad_request("give at most one `offset` parameter"));
    }
    match first {
        "" => Err(ProtocolError::bad_request("`offset` must not be empty")),
        "-1" => Ok(ReadFrom::Start),
        "now" => Ok(ReadFrom::Now),
        other => parse(other).map(ReadFrom::After),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_sortable_fixed_width() {
        assert_eq!(encode(0), "0000000000000000_0000000000000000");
        assert_eq!(encode(42), "0000000000000042_0000000000000000");
        let offsets: Vec<String> = [0, 1, 9, 10, 99, 100, 12345].iter().map(|s| encode(*s)).collect();
        assert!(offsets.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(parse(&encode(12345)).unwrap(), 12345);
    }

    #[test]
    fn refuses_anything_not_issued() {
        for bad in ["0,1", "0 1", "../x", "x/..", "1", "abc", "0000000000000001_0000000000000001",
            "000000000000001_0000000000000000", "0000000000000001_0000000000000000\n", "-2"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse("9999999999999999_0000000000000000").unwrap(), 9_999_999_999_999_999);
    }

    #[test]
    fn read_from_parameter() {
        assert_eq!(parse_read_from([]).unwrap(), ReadFrom::Start);
        assert_eq!(parse_read_from(["-1"]).unwrap(), ReadFrom::Start);
        assert_eq!(parse_read_from(["now"]).unwrap(), ReadFrom::Now);
        assert_eq!(parse_read_from([encode(3).as_str()]).unwrap(), ReadFrom::After(3));
        assert!(parse_read_from([""]).is_err());
        assert!(parse_read_from(["-1", "-1"]).is_err());
    }
}
