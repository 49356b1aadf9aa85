//! Content types: fixed when a stream is created; `application/json` streams are JSON mode
//! (and the same thing as a subject), every other type is stored as opaque bytes.

use crate::error::ProtocolError;

pub const JSON: &str = "application/json";
pub const DEFAULT: &str = "application/octet-stream";

/// The media type alone, lowercased: `Application/JSON; charset=utf-8` -> `application/json`.
pub fn essence(content_type: &str) -> String {
    content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
}

pub fn is_json(content_type: &str) -> bool {
    essence(content_type) == JSON
}

/// Whether SSE can carry the data as text; other types are sent base64-encoded.
pub fn is_text(content_type: &str) -> bool {
    let essence = essence(content_type);
    essence == JSON || essence.starts_with("text/")
}

pub fn same(a: &str, b: &str) -> bool {
    essence(a) == essence(b)
}

/// The content type of a create, trimmed; absent or blank means the default.
pub fn validate(content_type: Option<&str>) -> Result<Option<String>, ProtocolError> {
    let Some(value) = content_type.map(str::trim).filter(|v| !v.is_empty()) else { return Ok(None) };
    let token = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b));
    let valid = value.len() <= 256
        && value.bytes().all(|b| (0x20..0x7f).contains(&b))
        && essence(value).split_once('/').is_some_and(|(t, s)| token(t) && token(s));
    if valid {
        Ok(Some(value.to_owned()))
    } else {
        Err(ProtocolError::bad_request(format!("invalid Content-Type {value:?}: expected type/subtype")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn essences_and_modes() {
        assert_eq!(essence("Application/JSON; charset=utf-8"), "application/json");
        assert!(is_json("APPLICATION/JSON"));
        assert!(!is_json("application/jsonl"));
        assert!(is_text("text/plain; charset=utf-8"));
        assert!(!is_text("application/octet-stream"));
        assert!(same("TEXT/PLAIN", "text/plain;charset=UTF-8"));
    }

    #[test]
    fn validates_creates() {
        assert_eq!(validate(None).unwrap(), None);
        assert_eq!(validate(Some("  ")).unwrap(), None);
        assert_eq!(validate(Some("text/plain; charset=utf-8")).unwrap().as_deref(), Some("text/plain; charset=utf-8"));
        assert_eq!(validate(Some("application/x-protobuf")).unwrap().as_deref(), Some("application/x-protobuf"));
        for bad in ["text", "/plain", "text/", "a b/c", "text/pla\u{7f}in"] {
            assert!(validate(Some(bad)).is_err(), "{bad:?}");
        }
    }
}
