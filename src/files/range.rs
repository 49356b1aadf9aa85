//! `Range: bytes=…` requests (RFC 9110 §14), for a single range.
//!
//! A header that does not parse, names another unit or asks for several ranges is ignored (the
//! whole file is served with 200): RFC 9110 lets a server ignore `Range`, and serving the full
//! representation is always correct. A valid single range that selects no byte is unsatisfiable.

/// One byte range as written by the client, before the file's size is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeSpec {
    /// `bytes=a-b` (`last` is clipped to the end of the file).
    FromTo { first: u64, last: u64 },
    /// `bytes=a-`
    From { first: u64 },
    /// `bytes=-n`: the last `n` bytes.
    Suffix { length: u64 },
}

/// Bytes `start..=end` of a file of `size` bytes (never empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
    pub size: u64,
}

impl ByteRange {
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    /// The `Content-Range` value of a 206 response.
    pub fn content_range(&self) -> String {
        format!("bytes {}-{}/{}", self.start, self.end, self.size)
    }
}

/// The `Content-Range` value of a 416 response.
pub fn unsatisfied_content_range(size: u64) -> String {
    format!("bytes */{size}")
}

/// Parses a `Range` header; `None` means "ignore it and serve the whole file".
pub fn parse_range(header: &str) -> Option<RangeSpec> {
    let (unit, set) = header.trim().split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return None;
    }
    let spec = set.trim();
    if spec.contains(',') {
        return None; // several ranges: served whole (see the module comment)
    }
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    match (first.is_empty(), last.is_empty()) {
        (true, true) => None,
        (true, false) => Some(RangeSpec::Suffix { length: parse_position(last)? }),
        (false, true) => Some(RangeSpec::From { first: parse_position(first)? }),
        (false, false) => {
            let (first, last) = (parse_position(first)?, parse_position(last)?);
            // RFC 9110 §14.1.1: a range whose last position is before its first is invalid.
            (first <= last).then_some(RangeSpec::FromTo { first, last })
        }
    }
}

/// Digits only; a number too large for u64 saturates (it is beyond any file anyway).
fn parse_position(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.bytes().fold(0u64, |n, digit| n.saturating_mul(10).saturating_add(u64::from(digit - b'0'))))
}

impl RangeSpec {
    /// The bytes this range selects in a file of `size` bytes, or `None` when it selects none
    /// (unsatisfiable: 416). Every range is unsatisfiable on an empty file.
    pub fn resolve(self, size: u64) -> Option<ByteRange> {
        let last_byte = size.checked_sub(1)?;
        let (start, end) = match self {
            RangeSpec::FromTo { first, last } => (first, last.min(last_byte)),
            RangeSpec::From { first } => (first, last_byte),
            RangeSpec::Suffix { length: 0 } => return None,
            RangeSpec::Suffix { length } => (size.saturating_sub(length), last_byte),
        };
        (start <= last_byte).then_some(ByteRange { start, end, size })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(header: &str, size: u64) -> Option<Option<(u64, u64)>> {
        parse_range(header).map(|spec| spec.resolve(size).map(|r| (r.start, r.end)))
    }

    #[test]
    fn resolves_the_three_forms() {
        assert_eq!(resolved("bytes=0-9", 100), Some(Some((0, 9))));
        assert_eq!(resolved("bytes=90-", 100), Some(Some((90, 99))));
        assert_eq!(resolved("bytes=-10", 100), Some(Some((90, 99))));
        assert_eq!(resolved(" Bytes = 5 - 5 ", 100), Some(Some((5, 5))));
    }

    #[test]
    fn clips_to_the_end_of_the_file() {
        assert_eq!(resolved("bytes=50-500", 100), Some(Some((50, 99))));
        assert_eq!(resolved("bytes=-500", 100), Some(Some((0, 99))));
        assert_eq!(resolved("bytes=0-99999999999999999999999", 100), Some(Some((0, 99))));
    }

    #[test]
    fn unsatisfiable_ranges() {
        assert_eq!(resolved("bytes=100-", 100), Some(None));
        assert_eq!(resolved("bytes=100-200", 100), Some(None));
        assert_eq!(resolved("bytes=-0", 100), Some(None));
        assert_eq!(resolved("bytes=0-0", 0), Some(None));
        assert_eq!(resolved("bytes=-5", 0), Some(None));
        assert_eq!(resolved("bytes=99999999999999999999999-", 100), Some(None));
    }

    #[test]
    fn ignores_what_does_not_parse() {
        for header in ["", "bytes", "bytes=", "bytes=-", "bytes=x-y", "bytes=5-1", "items=0-1", "bytes=0-1,3-4", "bytes=+1-2", "bytes=1-2-3"] {
            assert_eq!(parse_range(header), None, "{header:?}");
        }
    }

    #[test]
    fn formats_content_range() {
        let range = RangeSpec::FromTo { first: 2, last: 4 }.resolve(10).unwrap();
        assert_eq!(range.content_range(), "bytes 2-4/10");
        assert_eq!(range.len(), 3);
        assert_eq!(unsatisfied_content_range(10), "bytes */10");
    }
}
