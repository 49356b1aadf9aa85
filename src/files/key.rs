//! Object keys: the percent-decoded rest of the path after `/v1/files/`.

use durable_stream_protocol::ProtocolError;

/// Longest key R2 accepts, in bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;

/// Decodes and validates the key part of a `/v1/files/{key}` path (still percent-encoded).
pub fn parse_key(encoded: &str) -> Result<String, ProtocolError> {
    let key = percent_decode(encoded)?;
    validate_key(&key)?;
    Ok(key)
}

/// Percent-decodes a path (`+` stays `+`: this is a path, not a form).
pub fn percent_decode(encoded: &str) -> Result<String, ProtocolError> {
    let bytes = encoded.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|pair| std::str::from_utf8(pair).ok());
            let byte = hex
                .filter(|pair| pair.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(|| ProtocolError::bad_request("key has an invalid percent-encoding (expected %XX)"))?;
            decoded.push(byte);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(decoded).map_err(|_| ProtocolError::bad_request("key is not valid UTF-8 once percent-decoded"))
}

/// Keys are 1–1024 bytes of '/'-separated, non-empty segments other than `.` and `..`, without
/// control characters, so that every key is also a sensible relative path.
pub fn validate_key(key: &str) -> Result<(), ProtocolError> {
    if key.is_empty() {
        return Err(ProtocolError::bad_request("key is empty"));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(ProtocolError::bad_request(format!(
            "key is {} bytes; the limit is {MAX_KEY_BYTES}",
            key.len()
        )));
    }
    if key.chars().any(char::is_control) {
        return Err(ProtocolError::bad_request("key contains a control character"));
    }
    for segment in key.split('/') {
        match segment {
            "" => return Err(ProtocolError::bad_request("key has an empty segment (leading, trailing or double '/')")),
            "." | ".." => return Err(ProtocolError::bad_request("key has a '.' or '..' segment")),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_percent_escapes_and_keeps_plus() {
        assert_eq!(parse_key("a%20b/c+d").unwrap(), "a b/c+d");
        assert_eq!(parse_key("a%2Fb").unwrap(), "a/b");
        assert_eq!(parse_key("%C3%A9t%C3%A9.txt").unwrap(), "été.txt");
    }

    #[test]
    fn rejects_bad_escapes_and_invalid_utf8() {
        for bad in ["%ZZ", "a%2", "a%", "%+1", "%FF", "%C3"] {
            let err = parse_key(bad).unwrap_err();
            assert_eq!(err.code, durable_stream_protocol::ErrorCode::BadRequest, "{bad}");
        }
    }

    #[test]
    fn rejects_empty_dot_and_oversized_keys() {
        for bad in ["", "/a", "a/", "a//b", ".", "..", "../x", "a/./b", "a/..", "a%00b"] {
            assert!(parse_key(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(parse_key(&"k".repeat(MAX_KEY_BYTES)).is_ok());
        assert!(parse_key(&"k".repeat(MAX_KEY_BYTES + 1)).is_err());
        assert!(parse_key("...").is_ok(), "only exact '.' and '..' segments are special");
    }
}
