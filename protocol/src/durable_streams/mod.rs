//! The Durable Streams protocol (the open HTTP protocol for append-only, resumable streams),
//! as spoken under the Worker's `/ds` mount: offsets, header validation, the idempotent
//! producer state machine, expiry, cursors and SSE framing. Pure decisions, no I/O; the Durable
//! Object (`src/subject/ds/`) feeds them what it stored. The contract is in docs/PROTOCOL.md.

pub mod base64;
pub mod config;
pub mod content_type;
pub mod create;
pub mod cursor;
pub mod expiry;
pub mod name;
pub mod offset;
pub mod producer;
pub mod sse;

/// Protocol header names (HTTP header names are case-insensitive; these are the spellings sent).
pub mod headers {
    pub const NEXT_OFFSET: &str = "Stream-Next-Offset";
    pub const UP_TO_DATE: &str = "Stream-Up-To-Date";
    pub const CURSOR: &str = "Stream-Cursor";
    pub const CLOSED: &str = "Stream-Closed";
    pub const SEQ: &str = "Stream-Seq";
    pub const TTL: &str = "Stream-TTL";
    pub const EXPIRES_AT: &str = "Stream-Expires-At";
    pub const SSE_DATA_ENCODING: &str = "Stream-SSE-Data-Encoding";
    pub const FORKED_FROM: &str = "Stream-Forked-From";
    pub const FORK_OFFSET: &str = "Stream-Fork-Offset";
    pub const FORK_SUB_OFFSET: &str = "Stream-Fork-Sub-Offset";
    pub const PRODUCER_ID: &str = "Producer-Id";
    pub const PRODUCER_EPOCH: &str = "Producer-Epoch";
    pub const PRODUCER_SEQ: &str = "Producer-Seq";
    pub const PRODUCER_EXPECTED_SEQ: &str = "Producer-Expected-Seq";
    pub const PRODUCER_RECEIVED_SEQ: &str = "Producer-Received-Seq";
}

use crate::error::ProtocolError;

/// A strict non-negative decimal integer: digits only, no sign, no leading zeros (except "0"),
/// at most 2^53 - 1 so it is exact in JavaScript.
pub fn parse_strict_uint(value: &str) -> Option<u64> {
    let canonical = value == "0" || (!value.starts_with('0') && !value.is_empty());
    if !canonical || !value.bytes().all(|b| b.is_ascii_digit()) || value.len() > 16 {
        return None;
    }
    value.parse::<u64>().ok().filter(|n| *n <= crate::MAX_SEQ)
}

/// [`parse_strict_uint`] for a header, with an error that names the header and the real bound.
pub fn parse_header_uint(header: &str, value: &str) -> Result<u64, ProtocolError> {
    parse_strict_uint(value).ok_or_else(|| {
        ProtocolError::bad_request(format!(
            "{header} must be an integer from 0 to {} (no sign or leading zeros), got {value:?}",
            crate::MAX_SEQ
        ))
    })
}

/// `Stream-Closed`: `true` or `false` (any case); absent means false.
pub fn parse_closed(value: Option<&str>) -> Result<bool, ProtocolError> {
    match value.map(str::trim) {
        None => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(_) => Err(ProtocolError::bad_request("Stream-Closed must be `true` or `false`")),
    }
}

/// `Stream-Seq` (writer coordination): an opaque non-empty token that must sort strictly after
/// the previous one, byte by byte ("09" < "10", but "2" > "10").
pub fn check_stream_seq(last: Option<&str>, next: &str) -> Result<(), ProtocolError> {
    if next.is_empty() || next.len() > 256 {
        return Err(ProtocolError::bad_request("Stream-Seq must be 1 to 256 characters"));
    }
    match last {
        Some(last) if next.as_bytes() <= last.as_bytes() => Err(ProtocolError::conflict(format!(
            "Stream-Seq {next:?} does not sort after the last one, {last:?}"
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_integers() {
        assert_eq!(parse_strict_uint("0"), Some(0));
        assert_eq!(parse_strict_uint("3600"), Some(3600));
        for bad in ["", "00060", "+60", "60.5", "1e3", "-1", "0x1", " 1", "1abc", "99999999999999999"] {
            assert_eq!(parse_strict_uint(bad), None, "{bad:?}");
        }
        assert_eq!(parse_header_uint("Producer-Seq", "9007199254740991").unwrap(), 9007199254740991);
        assert_eq!(
            parse_header_uint("Producer-Seq", "9007199254740992").unwrap_err().message,
            "Producer-Seq must be an integer from 0 to 9007199254740991 (no sign or leading zeros), got \"9007199254740992\""
        );
    }

    #[test]
    fn closed_flag() {
        assert!(!parse_closed(None).unwrap());
        assert!(parse_closed(Some("true")).unwrap());
        assert!(parse_closed(Some("TRUE")).unwrap());
        assert!(!parse_closed(Some("false")).unwrap());
        assert!(parse_closed(Some("yes")).is_err());
    }

    #[test]
    fn stream_seq_is_lexicographic() {
        check_stream_seq(None, "2").unwrap();
        check_stream_seq(Some("09"), "10").unwrap();
        assert!(check_stream_seq(Some("2"), "10").is_err());
        assert!(check_stream_seq(Some("001"), "001").is_err());
        assert!(check_stream_seq(Some("a"), "B").is_err());
        assert!(check_stream_seq(None, "").is_err());
    }
}
