//! API-key checks. The key itself is never part of an error or a log line.

/// Compares two keys in time that depends only on their lengths, not on where they differ.
pub fn keys_match(expected: &str, provided: &str) -> bool {
    let (a, b) = (expected.as_bytes(), provided.as_bytes());
    let mut diff = (a.len() != b.len()) as u8;
    // Walk the expected key's length every time so a short guess costs the same as a long one.
    for (i, byte) in a.iter().enumerate() {
        diff |= byte ^ b.get(i).copied().unwrap_or(0);
    }
    std::hint::black_box(diff) == 0 && !a.is_empty()
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
pub fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// Outcome of checking a request's credentials against the configured key.
#[derive(Debug, PartialEq, Eq)]
pub enum AuthDecision {
    Allowed,
    /// No key is configured: every request is refused (fail closed).
    NotConfigured,
    Missing,
    Wrong,
}

/// Decides on a request given the configured keys (`API_KEY`, and `API_KEY_PREVIOUS` during a
/// rotation; empty ones are ignored) and every key it presented (Bearer, `X-API-Key`, `apiKey`
/// query parameter). Every presented key must match one of the configured keys.
pub fn authorize<'a>(configured: &[&str], presented: impl IntoIterator<Item = &'a str>) -> AuthDecision {
    let configured: Vec<&str> = configured.iter().copied().filter(|k| !k.is_empty()).collect();
    if configured.is_empty() {
        return AuthDecision::NotConfigured;
    }
    let mut any = false;
    let mut all_match = true;
    for key in presented {
        any = true;
        // Compared with every configured key, so the time taken does not tell which matched.
        all_match &= configured.iter().fold(false, |matched, expected| keys_match(expected, key) | matched);
    }
    match (any, all_match) {
        (false, _) => AuthDecision::Missing,
        (true, true) => AuthDecision::Allowed,
        (true, false) => AuthDecision::Wrong,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_is_exact() {
        assert!(keys_match("s3cret", "s3cret"));
        assert!(!keys_match("s3cret", "s3cre"));
        assert!(!keys_match("s3cret", "s3cret!"));
        assert!(!keys_match("s3cret", "S3cret"));
        assert!(!keys_match("s3cret", ""));
        assert!(!keys_match("", ""));
    }

    #[test]
    fn bearer_tokens_are_extracted() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("Bearer "), None);
    }

    #[test]
    fn fails_closed_without_a_configured_key() {
        assert_eq!(authorize(&[], ["anything"]), AuthDecision::NotConfigured);
        assert_eq!(authorize(&["", ""], [""]), AuthDecision::NotConfigured);
    }

    #[test]
    fn every_presented_key_must_match() {
        assert_eq!(authorize(&["k"], []), AuthDecision::Missing);
        assert_eq!(authorize(&["k"], ["k"]), AuthDecision::Allowed);
        assert_eq!(authorize(&["k"], ["k", "k"]), AuthDecision::Allowed);
        assert_eq!(authorize(&["k"], ["x"]), AuthDecision::Wrong);
        assert_eq!(authorize(&["k"], ["k", "x"]), AuthDecision::Wrong);
    }

    #[test]
    fn the_previous_key_works_during_a_rotation() {
        let keys = ["new", "old"];
        assert_eq!(authorize(&keys, ["new"]), AuthDecision::Allowed);
        assert_eq!(authorize(&keys, ["old"]), AuthDecision::Allowed);
        assert_eq!(authorize(&keys, ["older"]), AuthDecision::Wrong);
        assert_eq!(authorize(&["new", ""], ["old"]), AuthDecision::Wrong);
        assert_eq!(authorize(&["", "old"], ["old"]), AuthDecision::Allowed);
    }
}
