//! The per-subject state object: a small JSON value replaced with compare-and-set.

use crate::config::Config;
use crate::error::ProtocolError;

/// Refuses a state document larger than the configured limit, or not strict JSON
/// ([`strict_json`](crate::strict_json): it is read by the same clients as messages).
pub fn validate_state(text: &str, config: &Config) -> Result<(), ProtocolError> {
    let len = text.len();
    if len > config.max_state_bytes {
        return Err(ProtocolError::too_large(format!(
            "state is {len} bytes; the limit is {}",
            config.max_state_bytes
        )));
    }
    crate::strict_json::check(text, config, "`state`")
}

/// The version a write produces, or `conflict` when the writer expected another version.
/// Version 0 means "never written"; `expected: None` writes unconditionally.
pub fn next_version(current: u64, expected: Option<u64>) -> Result<u64, ProtocolError> {
    match expected {
        Some(expected) if expected != current => Err(ProtocolError::conflict(format!(
            "state version is {current}, not {expected}"
        ))),
        _ => Ok(current + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    #[test]
    fn compare_and_set_advances_only_from_the_expected_version() {
        assert_eq!(next_version(0, Some(0)).unwrap(), 1);
        assert_eq!(next_version(4, Some(4)).unwrap(), 5);
        assert_eq!(next_version(4, None).unwrap(), 5);
        let e = next_version(4, Some(3)).unwrap_err();
        assert_eq!(e.code, ErrorCode::Conflict);
        assert_eq!(e.message, "state version is 4, not 3");
    }

    #[test]
    fn size_is_bounded() {
        let config = Config { max_state_bytes: 8, ..Config::default() };
        assert!(validate_state("\"123456\"", &config).is_ok());
        assert_eq!(validate_state("\"1234567\"", &config).unwrap_err().code, ErrorCode::TooLarge);
    }

    #[test]
    fn state_is_strict_json() {
        let config = Config::default();
        let e = validate_state(r#"{"a":1,"a":2}"#, &config).unwrap_err();
        assert_eq!(e.code, ErrorCode::BadRequest);
        assert!(e.message.starts_with("`state`: duplicate key \"a\""), "{}", e.message);
        assert!(validate_state("[1e400]", &config).unwrap_err().message.contains("out of range"));
    }
}
