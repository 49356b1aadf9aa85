//! Subject names: 1–128 characters of `[A-Za-z0-9._~-]`, safe in a URL path without escaping.

use crate::error::ProtocolError;

pub const MAX_SUBJECT_LEN: usize = 128;

pub fn validate_subject(subject: &str) -> Result<(), ProtocolError> {
    if subject.is_empty() || subject.len() > MAX_SUBJECT_LEN {
        return Err(ProtocolError::bad_request(format!(
            "subject must be 1 to {MAX_SUBJECT_LEN} characters"
        )));
    }
    if let Some(bad) = subject
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | '-')))
    {
        return Err(ProtocolError::bad_request(format!(
            "subject may only contain A-Z a-z 0-9 . _ ~ - (found {bad:?})"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_alphabet() {
        for ok in ["a", "orders.eu-west_1~x", &"z".repeat(128), "A.B.C", "0"] {
            validate_subject(ok).unwrap();
        }
    }

    #[test]
    fn refuses_empty_long_and_foreign_characters() {
        for bad in ["", &"z".repeat(129), "a/b", "a b", "é", "a%2Fb", "a:b", "a*"] {
            assert!(validate_subject(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
