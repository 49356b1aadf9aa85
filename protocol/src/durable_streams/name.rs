//! Stream names: the rest of the path after `/ds/v1/stream/`, percent-decoded. Wider than subject
//! names (which stay `[A-Za-z0-9._~-]{1,128}`): any UTF-8 of 1 to 256 bytes without control
//! characters, `/`-separated segments none of which is empty, `.` or `..`. A subject name is a
//! valid stream name that denotes the same Durable Object, so a subject and the JSON stream of
//! the same name are one thing.

use crate::error::ProtocolError;

pub const MAX_NAME_BYTES: usize = 256;

/// The stream name of a request path (`/ds/v1/stream/{name}`), or of a `Stream-Forked-From`
/// value (that path, `/v1/stream/{name}`, or the bare name).
pub fn from_path(path: &str) -> Result<String, ProtocolError> {
    let raw = path.strip_prefix("/ds/v1/stream/").or_else(|| path.strip_prefix("/v1/stream/")).unwrap_or(path);
    let name = percent_decode(raw)?;
    validate(&name)?;
    Ok(name)
}

pub fn validate(name: &str) -> Result<(), ProtocolError> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(ProtocolError::bad_request(format!("stream name must be 1 to {MAX_NAME_BYTES} bytes")));
    }
    if name.chars().any(char::is_control) {
        return Err(ProtocolError::bad_request("stream name must not contain control characters"));
    }
    if name.split('/').any(|segment| matches!(segment, "" | "." | "..")) {
        return Err(ProtocolError::bad_request("stream name segments must not be empty, `.` or `..`"));
    }
    Ok(())
}

/// The name as a URL path (percent-encoding all but `A-Za-z0-9._~-` and `/`).
pub fn to_path(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"._~-/".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn percent_decode(raw: &str) -> Result<String, ProtocolError> {
    let bad = || ProtocolError::bad_request("stream name is not valid percent-encoded UTF-8");
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = raw.get(i + 1..i + 3).ok_or_else(bad)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subject::validate_subject;

    #[test]
    fn names_from_paths() {
        assert_eq!(from_path("/ds/v1/stream/orders.eu-1").unwrap(), "orders.eu-1");
        assert_eq!(from_path("/v1/stream/a%20b/c").unwrap(), "a b/c");
        assert_eq!(from_path("plain").unwrap(), "plain");
        assert_eq!(from_path("/ds/v1/stream/ds/v1/stream/x").unwrap(), "ds/v1/stream/x");
        assert!(from_path("/dsfoo").is_err());
        assert_eq!(from_path("/ds/v1/stream/caf%C3%A9").unwrap(), "café");
        for bad in ["/ds/v1/stream/", "/ds/v1/stream/a//b", "/ds/v1/stream/../x", "/ds/v1/stream/a%2", "/ds/v1/stream/%FF", "/ds/v1/stream/a%0Ab"] {
            assert!(from_path(bad).is_err(), "{bad}");
        }
        assert!(from_path(&format!("/ds/v1/stream/{}", "x".repeat(257))).is_err());
        for name in ["a b/c", "café", "x%y", "orders.eu-1"] {
            assert_eq!(from_path(&to_path(name)).unwrap(), name);
        }
    }

    #[test]
    fn every_subject_is_a_stream_name() {
        for subject in ["a", "orders.eu-west_1~x", &"z".repeat(128)] {
            validate_subject(subject).unwrap();
            assert_eq!(from_path(&format!("/ds/v1/stream/{subject}")).unwrap(), subject);
        }
    }
}
