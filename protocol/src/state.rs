//! The per-subject state object: a small JSON value replaced with compare-and-set.

use crate::config::Config;
use crate::error::ProtocolError;

/// Refuses a state document larger than the configured limit.
pub fn validate_state_size(len: usize, config: &Config) -> Result<(), ProtocolError> {
    if len > config.max_state_bytes {
        return Err(ProtocolError::too_large(format!(
            "state is {len} bytes; the limit is {}",
            config.max_state_bytes
        )));
    }
    Ok(())
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
        assert!(validate_state_size(8, &config).is_ok());
        assert_eq!(validate_state_size(9, &config).unwrap_err().code, ErrorCode::TooLarge);
    }
}
