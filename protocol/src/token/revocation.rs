//! Revoked tokens: by `jti`, or every token of a `sub` issued before a time. A revocation is
//! kept as long as a token it names can still be valid — tokens live at most
//! `TOKEN_MAX_LIFETIME_S` — so the list holds only what still matters.

use super::claims::{Claims, MAX_ID_LEN};
use crate::error::ProtocolError;
use crate::strict_json;
use serde::{Deserialize, Serialize};

/// Most revocations kept at once; beyond it, revoke by `sub` instead of one `jti` at a time.
pub const MAX_REVOCATIONS: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Revocation {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// With `sub`: tokens issued (`iat`) before this time, in ms since the epoch, are revoked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_before: Option<u64>,
    /// When the revocation is dropped (ms since the epoch): no token it names is valid then.
    pub expires_at: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RevokeRequest {
    jti: Option<String>,
    sub: Option<String>,
    issued_before: Option<u64>,
}

fn check_id(name: &str, value: &str) -> Result<(), ProtocolError> {
    if value.is_empty() || value.len() > MAX_ID_LEN {
        return Err(ProtocolError::bad_request(format!("{name} must be 1 to {MAX_ID_LEN} characters")));
    }
    Ok(())
}

impl Revocation {
    /// Reads a `POST /v1/tokens/revoke` body: `{"jti":…}` or `{"sub":…,"issuedBefore":ms}`
    /// (`issuedBefore` defaults to now: every token of that `sub` issued so far).
    pub fn from_request(body: &str, now_ms: u64, max_lifetime_s: u64) -> Result<Revocation, ProtocolError> {
        strict_json::validate(body, 4).map_err(|e| ProtocolError::bad_request(format!("revocation: {e}")))?;
        let request: RevokeRequest = serde_json::from_str(body).map_err(|e| {
            ProtocolError::bad_request(format!("revocation must be {{\"jti\":…}} or {{\"sub\":…,\"issuedBefore\":ms}}: {e}"))
        })?;
        let lifetime_ms = max_lifetime_s.saturating_mul(1000);
        match (request.jti, request.sub, request.issued_before) {
            (Some(jti), None, None) => {
                check_id("jti", &jti)?;
                Ok(Revocation { jti: Some(jti), sub: None, issued_before: None, expires_at: now_ms.saturating_add(lifetime_ms) })
            }
            (None, Some(sub), issued_before) => {
                check_id("sub", &sub)?;
                let issued_before = issued_before.unwrap_or(now_ms);
                // A token issued just before `issuedBefore` (or without iat, checked now) lives
                // at most the maximum lifetime from then.
                let expires_at = issued_before.max(now_ms).saturating_add(lifetime_ms);
                Ok(Revocation { jti: None, sub: Some(sub), issued_before: Some(issued_before), expires_at })
            }
            _ => Err(ProtocolError::bad_request(
                "revocation must name either a jti, or a sub (with an optional issuedBefore in ms)",
            )),
        }
    }

    /// Whether this revocation names the token. A token without `iat` cannot show it was issued
    /// after `issuedBefore`, so a `sub` revocation covers it.
    pub fn names(&self, claims: &Claims) -> bool {
        if let Some(jti) = &self.jti {
            return claims.jti.as_ref() == Some(jti);
        }
        self.sub.as_ref() == Some(&claims.sub)
            && match (claims.iat, self.issued_before) {
                (Some(iat), Some(before)) => iat.saturating_mul(1000) < before,
                _ => true,
            }
    }
}

/// The revocations in force, in the order they were made.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationList {
    /// Grows with every revocation made; readers compare it to know whether to re-check.
    pub version: u64,
    pub revocations: Vec<Revocation>,
}

impl RevocationList {
    pub fn revokes(&self, claims: &Claims) -> bool {
        self.revocations.iter().any(|r| r.names(claims))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR_S: u64 = 3600;
    const NOW: u64 = 1_800_000_000_000;

    fn claims(sub: &str, jti: Option<&str>, iat_s: Option<u64>) -> Claims {
        let mut c = Claims::parse(&format!(r#"{{"sub":"{sub}","exp":9999999999}}"#)).unwrap();
        c.jti = jti.map(String::from);
        c.iat = iat_s;
        c
    }

    #[test]
    fn a_jti_revocation_names_that_token_only_and_outlives_it() {
        let r = Revocation::from_request(r#"{"jti":"t1"}"#, NOW, HOUR_S).unwrap();
        assert!(r.names(&claims("a", Some("t1"), None)));
        assert!(!r.names(&claims("a", Some("t2"), None)));
        assert!(!r.names(&claims("a", None, None)));
        assert_eq!(r.expires_at, NOW + HOUR_S * 1000);
    }

    #[test]
    fn a_sub_revocation_names_tokens_issued_before_the_time() {
        let before = NOW - 10_000;
        let r = Revocation::from_request(&format!(r#"{{"sub":"svc","issuedBefore":{before}}}"#), NOW, HOUR_S).unwrap();
        assert!(r.names(&claims("svc", None, Some(before / 1000 - 1))));
        assert!(!r.names(&claims("svc", None, Some(before / 1000))), "issued at the time itself: not before it");
        assert!(r.names(&claims("svc", None, None)), "no iat: cannot prove it is newer");
        assert!(!r.names(&claims("other", None, Some(0))));
        let now = Revocation::from_request(r#"{"sub":"svc"}"#, NOW, HOUR_S).unwrap();
        assert_eq!(now.issued_before, Some(NOW));
        assert_eq!(now.expires_at, NOW + HOUR_S * 1000);
    }

    #[test]
    fn requests_are_checked() {
        for (body, expected) in [
            (r#"{}"#, "either a jti"),
            (r#"{"jti":"a","sub":"b"}"#, "either a jti"),
            (r#"{"jti":"a","issuedBefore":1}"#, "either a jti"),
            (r#"{"jti":""}"#, "1 to 256"),
            (r#"{"jti":"a","extra":1}"#, "unknown field"),
            (r#"{"jti":"a","jti":"b"}"#, "duplicate"),
            ("[", "revocation"),
        ] {
            let e = Revocation::from_request(body, NOW, HOUR_S).unwrap_err();
            assert!(e.message.contains(expected), "{body}: {}", e.message);
        }
    }

    #[test]
    fn a_list_revokes_what_any_entry_names() {
        let list = RevocationList {
            version: 2,
            revocations: vec![
                Revocation::from_request(r#"{"jti":"x"}"#, NOW, HOUR_S).unwrap(),
                Revocation::from_request(r#"{"sub":"bad"}"#, NOW, HOUR_S).unwrap(),
            ],
        };
        assert!(list.revokes(&claims("a", Some("x"), None)));
        assert!(list.revokes(&claims("bad", None, Some(1))));
        assert!(!list.revokes(&claims("good", Some("y"), Some(1))));
    }
}
