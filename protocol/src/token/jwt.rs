//! JWTs in compact form (RFC 7519 / RFC 7515): verification with HS256 or EdDSA (Ed25519) keys,
//! and signing for the issuers (the Worker's mint endpoint, the client's `TokenBuilder`).
//! The cryptography is the `hmac`, `sha2` and `ed25519-dalek` crates'.

use super::claims::Claims;
use crate::strict_json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use std::fmt;

/// Longest token accepted (it travels in headers and URLs).
pub const MAX_TOKEN_BYTES: usize = 8192;
/// Nesting allowed in a token's header and claims.
const MAX_TOKEN_JSON_DEPTH: usize = 8;

/// Why a token was refused. The message never includes the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// The server has neither `TOKEN_SECRET` nor `TOKEN_PUBLIC_KEYS`.
    NotConfigured,
    Malformed(String),
    /// `alg` is `none` or one this server does not verify (or has no key for).
    Algorithm(String),
    UnknownKey(String),
    BadSignature,
    InvalidClaims(String),
    Expired,
    NotYetValid,
    Revoked,
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::NotConfigured => {
                f.write_str("this server accepts no tokens (neither TOKEN_SECRET nor TOKEN_PUBLIC_KEYS is set); use the API key")
            }
            TokenError::Malformed(why) => write!(f, "malformed token: {why}"),
            TokenError::Algorithm(why) => write!(f, "token refused: {why}"),
            TokenError::UnknownKey(why) => write!(f, "token refused: {why}"),
            TokenError::BadSignature => f.write_str("token signature does not verify; ask its issuer for a new one"),
            TokenError::InvalidClaims(why) => write!(f, "token claims are invalid: {why}"),
            TokenError::Expired => f.write_str("token has expired; refresh it or ask its issuer for a new one"),
            TokenError::NotYetValid => f.write_str("token is not valid yet (nbf is in the future)"),
            TokenError::Revoked => f.write_str("token has been revoked; ask its issuer for a new one"),
        }
    }
}

impl std::error::Error for TokenError {}

/// One Ed25519 public key of `TOKEN_PUBLIC_KEYS`.
#[derive(Debug, Clone)]
struct PublicKey {
    kid: String,
    key: VerifyingKey,
}

/// The keys a server verifies tokens with.
#[derive(Debug, Clone, Default)]
pub struct TokenKeys {
    /// HS256 secrets: `TOKEN_SECRET`, then `TOKEN_SECRET_PREVIOUS` during a rotation.
    secrets: Vec<Vec<u8>>,
    /// `TOKEN_PUBLIC_KEYS`: old and new keys side by side during a rotation, told apart by kid.
    public_keys: Vec<PublicKey>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublicKeyJson {
    kid: String,
    x: String,
    #[serde(default)]
    kty: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default, rename = "use")]
    usage: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum PublicKeysJson {
    List(Vec<PublicKeyJson>),
    /// A JWK Set, `{"keys":[…]}`.
    Set { keys: Vec<PublicKeyJson> },
}

/// Decodes an Ed25519 public key given as base64url (JWK `x`).
pub fn decode_public_key(x: &str) -> Result<VerifyingKey, String> {
    let bytes = URL_SAFE_NO_PAD.decode(x).map_err(|_| "x is not base64url without padding".to_string())?;
    let bytes: [u8; 32] = bytes.try_into().map_err(|_| "x must be 32 bytes (an Ed25519 public key)".to_string())?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| "x is not a valid Ed25519 public key".to_string())
}

impl TokenKeys {
    /// Reads the configuration; `public_keys` is the JSON of `TOKEN_PUBLIC_KEYS`. Empty values
    /// count as unset.
    pub fn from_config(secret: Option<&str>, previous_secret: Option<&str>, public_keys: Option<&str>) -> Result<TokenKeys, String> {
        let secrets = [secret, previous_secret]
            .into_iter()
            .flatten()
            .filter(|s| !s.is_empty())
            .map(|s| s.as_bytes().to_vec())
            .collect();
        let mut keys = TokenKeys { secrets, public_keys: Vec::new() };
        let Some(json) = public_keys.map(str::trim).filter(|j| !j.is_empty()) else { return Ok(keys) };
        let entries = match serde_json::from_str(json).map_err(|e| format!("TOKEN_PUBLIC_KEYS is not a JSON list of {{kid, x}}: {e}"))? {
            PublicKeysJson::List(entries) | PublicKeysJson::Set { keys: entries } => entries,
        };
        for entry in entries {
            let what = format!("TOKEN_PUBLIC_KEYS entry {:?}", entry.kid);
            let expected = [("kty", &entry.kty, "OKP"), ("crv", &entry.crv, "Ed25519"), ("alg", &entry.alg, "EdDSA"), ("use", &entry.usage, "sig")];
            if let Some((name, _, want)) = expected.iter().find(|(_, v, want)| v.as_deref().is_some_and(|v| v != *want)) {
                return Err(format!("{what}: {name} must be {want}"));
            }
            if entry.kid.is_empty() || keys.public_keys.iter().any(|k| k.kid == entry.kid) {
                return Err(format!("{what}: every key needs its own non-empty kid"));
            }
            let key = decode_public_key(&entry.x).map_err(|e| format!("{what}: {e}"))?;
            keys.public_keys.push(PublicKey { kid: entry.kid, key });
        }
        Ok(keys)
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty() && self.public_keys.is_empty()
    }

    /// Checks the token's form and signature and reads its claims. Times (`exp`, `nbf`) are
    /// checked separately ([`check_times`]), so a cached verification stays reusable.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        if self.is_empty() {
            return Err(TokenError::NotConfigured);
        }
        let [header, payload, signature] = split(token)?;
        let header: Header = decode_json(header, "header")?;
        if header.crit.is_some() {
            return Err(TokenError::Algorithm("the header names critical extensions (crit) this server does not know".into()));
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenError::Malformed("the signature is not base64url without padding".into()))?;
        let signed = &token[..header_and_payload_len(token)];
        match header.alg.as_str() {
            "HS256" => self.verify_hs256(signed.as_bytes(), &signature)?,
            "EdDSA" => self.verify_eddsa(header.kid.as_deref(), signed.as_bytes(), &signature)?,
            "none" => return Err(TokenError::Algorithm("unsigned tokens (alg none) are not accepted".into())),
            other => return Err(TokenError::Algorithm(format!("alg {other:?} is not accepted (use HS256 or EdDSA)"))),
        }
        let payload = decode_text(payload, "claims")?;
        check_json(&payload, "claims")?;
        Claims::parse(&payload).map_err(TokenError::InvalidClaims)
    }

    fn verify_hs256(&self, signed: &[u8], signature: &[u8]) -> Result<(), TokenError> {
        if self.secrets.is_empty() {
            return Err(TokenError::Algorithm("HS256 tokens are not accepted here (no TOKEN_SECRET is set)".into()));
        }
        // Every secret is tried, so the time taken does not tell which one matched.
        let matched = self.secrets.iter().fold(false, |matched, secret| {
            let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
            mac.update(signed);
            mac.verify_slice(signature).is_ok() | matched
        });
        if matched {
            Ok(())
        } else {
            Err(TokenError::BadSignature)
        }
    }

    fn verify_eddsa(&self, kid: Option<&str>, signed: &[u8], signature: &[u8]) -> Result<(), TokenError> {
        if self.public_keys.is_empty() {
            return Err(TokenError::Algorithm("EdDSA tokens are not accepted here (no TOKEN_PUBLIC_KEYS are set)".into()));
        }
        let key = match kid {
            Some(kid) => self
                .public_keys
                .iter()
                .find(|k| k.kid == kid)
                .ok_or_else(|| TokenError::UnknownKey(format!("no public key has kid {kid:?}")))?,
            None if self.public_keys.len() == 1 => &self.public_keys[0],
            None => return Err(TokenError::UnknownKey("the header has no kid and this server has several public keys".into())),
        };
        let signature = ed25519_dalek::Signature::from_slice(signature).map_err(|_| TokenError::BadSignature)?;
        key.key.verify_strict(signed, &signature).map_err(|_| TokenError::BadSignature)
    }
}

/// The three parts of a compact JWT: header, payload and signature, still base64url.
fn split(token: &str) -> Result<[&str; 3], TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::Malformed(format!("longer than {MAX_TOKEN_BYTES} bytes")));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(TokenError::Malformed("expected three base64url parts separated by dots (a compact JWT)".into()));
    };
    Ok([header, payload, signature])
}

/// A token's header and claims as JSON text, read WITHOUT checking its signature: for a holder
/// reading its own token (when it expires, what it asks for), never to authorize anything.
pub fn decode_unverified(token: &str) -> Result<(String, String), TokenError> {
    let [header, payload, _] = split(token)?;
    let header = decode_text(header, "header")?;
    check_json(&header, "header")?;
    let payload = decode_text(payload, "claims")?;
    check_json(&payload, "claims")?;
    Ok((header, payload))
}

fn header_and_payload_len(token: &str) -> usize {
    token.rfind('.').unwrap_or(token.len())
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

fn decode_text(part: &str, what: &str) -> Result<String, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Malformed(format!("the {what} part is not base64url without padding")))?;
    String::from_utf8(bytes).map_err(|_| TokenError::Malformed(format!("the {what} part is not UTF-8")))
}

fn check_json(text: &str, what: &str) -> Result<(), TokenError> {
    strict_json::validate(text, MAX_TOKEN_JSON_DEPTH).map_err(|e| TokenError::Malformed(format!("{what}: {e}")))
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str, what: &str) -> Result<T, TokenError> {
    let text = decode_text(part, what)?;
    check_json(&text, what)?;
    serde_json::from_str(&text).map_err(|e| TokenError::Malformed(format!("{what}: {e}")))
}

/// Checks `exp` and `nbf` against `now` (seconds since the epoch), and that the token lives no
/// longer than `max_lifetime_s` (so that a revocation kept that long outlives every token it
/// names; see `revocation`).
pub fn check_times(claims: &Claims, now_s: u64, max_lifetime_s: u64) -> Result<(), TokenError> {
    if claims.exp <= now_s {
        return Err(TokenError::Expired);
    }
    if claims.nbf.is_some_and(|nbf| nbf > now_s) {
        return Err(TokenError::NotYetValid);
    }
    let start = claims.iat.unwrap_or(now_s).min(now_s);
    if claims.exp - start > max_lifetime_s {
        return Err(TokenError::InvalidClaims(format!(
            "the token lives longer than this server allows ({max_lifetime_s} s, TOKEN_MAX_LIFETIME_S)"
        )));
    }
    Ok(())
}

/// A key to sign tokens with.
pub enum SigningKeyMaterial<'a> {
    Hs256 { secret: &'a [u8] },
    EdDsa { kid: Option<&'a str>, private_key: &'a [u8; 32] },
}

/// Signs `claims` (a JSON object) into a compact JWT.
pub fn sign(claims: &serde_json::Value, key: &SigningKeyMaterial) -> String {
    let (alg, kid) = match key {
        SigningKeyMaterial::Hs256 { .. } => ("HS256", None),
        SigningKeyMaterial::EdDsa { kid, .. } => ("EdDSA", *kid),
    };
    let mut header = serde_json::json!({ "alg": alg, "typ": "JWT" });
    if let Some(kid) = kid {
        header["kid"] = kid.into();
    }
    let mut token = format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
    let signature = match key {
        SigningKeyMaterial::Hs256 { secret } => {
            let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
            mac.update(token.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        SigningKeyMaterial::EdDsa { private_key, .. } => SigningKey::from_bytes(private_key).sign(token.as_bytes()).to_bytes().to_vec(),
    };
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(signature));
    token
}

/// The public key (JWK `x`, base64url) of an Ed25519 private key.
pub fn public_key_x(private_key: &[u8; 32]) -> String {
    URL_SAFE_NO_PAD.encode(SigningKey::from_bytes(private_key).verifying_key().to_bytes())
}

/// Whether a credential looks like a compact JWT rather than an API key: three base64url parts,
/// the first of them a JSON object (`eyJ` is `{"` in base64).
pub fn looks_like_jwt(credential: &str) -> bool {
    credential.starts_with("eyJ") && credential.split('.').count() == 3
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECRET: &[u8] = b"a-shared-secret";
    const PRIVATE: [u8; 32] = [7; 32];

    fn claims() -> serde_json::Value {
        json!({"sub": "svc", "exp": 2_000_000_000u64, "allow": [{"subjects": ["orders.>"], "actions": ["sub"]}]})
    }

    fn hs_keys() -> TokenKeys {
        TokenKeys::from_config(Some("a-shared-secret"), None, None).unwrap()
    }

    fn ed_keys() -> TokenKeys {
        let list = json!([{"kid": "k1", "x": public_key_x(&PRIVATE), "kty": "OKP", "crv": "Ed25519"}]).to_string();
        TokenKeys::from_config(None, None, Some(&list)).unwrap()
    }

    fn with_part(token: &str, index: usize, part: &str) -> String {
        let mut parts: Vec<&str> = token.split('.').collect();
        parts[index] = part;
        parts.join(".")
    }

    #[test]
    fn hs256_tokens_round_trip_and_tampering_is_caught() {
        let token = sign(&claims(), &SigningKeyMaterial::Hs256 { secret: SECRET });
        assert!(looks_like_jwt(&token));
        assert_eq!(hs_keys().verify(&token).unwrap().sub, "svc");
        let forged = with_part(&token, 1, &URL_SAFE_NO_PAD.encode(r#"{"sub":"root","exp":2000000000}"#));
        assert_eq!(hs_keys().verify(&forged), Err(TokenError::BadSignature));
        let other = TokenKeys::from_config(Some("another"), None, None).unwrap();
        assert_eq!(other.verify(&token), Err(TokenError::BadSignature));
    }

    #[test]
    fn the_previous_secret_keeps_working_during_a_rotation() {
        let old = sign(&claims(), &SigningKeyMaterial::Hs256 { secret: b"old" });
        let new = sign(&claims(), &SigningKeyMaterial::Hs256 { secret: b"new" });
        let keys = TokenKeys::from_config(Some("new"), Some("old"), None).unwrap();
        assert!(keys.verify(&old).is_ok());
        assert!(keys.verify(&new).is_ok());
        let after = TokenKeys::from_config(Some("new"), Some(""), None).unwrap();
        assert_eq!(after.verify(&old), Err(TokenError::BadSignature));
    }

    #[test]
    fn eddsa_tokens_verify_by_kid() {
        let token = sign(&claims(), &SigningKeyMaterial::EdDsa { kid: Some("k1"), private_key: &PRIVATE });
        assert_eq!(ed_keys().verify(&token).unwrap().sub, "svc");
        let no_kid = sign(&claims(), &SigningKeyMaterial::EdDsa { kid: None, private_key: &PRIVATE });
        assert!(ed_keys().verify(&no_kid).is_ok(), "one key: kid optional");
        let unknown = sign(&claims(), &SigningKeyMaterial::EdDsa { kid: Some("k9"), private_key: &PRIVATE });
        assert!(matches!(ed_keys().verify(&unknown), Err(TokenError::UnknownKey(m)) if m.contains("k9")));
        let wrong_key = sign(&claims(), &SigningKeyMaterial::EdDsa { kid: Some("k1"), private_key: &[8; 32] });
        assert_eq!(ed_keys().verify(&wrong_key), Err(TokenError::BadSignature));
        // Rotation: both keys listed, each token verifies with its own.
        let two = json!([{"kid": "k1", "x": public_key_x(&PRIVATE)}, {"kid": "k2", "x": public_key_x(&[8; 32])}]).to_string();
        let keys = TokenKeys::from_config(None, None, Some(&two)).unwrap();
        let k2 = sign(&claims(), &SigningKeyMaterial::EdDsa { kid: Some("k2"), private_key: &[8; 32] });
        assert!(keys.verify(&token).is_ok() && keys.verify(&k2).is_ok());
        assert!(matches!(keys.verify(&no_kid), Err(TokenError::UnknownKey(_))));
    }

    #[test]
    fn algorithms_are_not_confused() {
        // An HS256 token signed with the public key as the secret (the classic confusion attack).
        let x = public_key_x(&PRIVATE);
        let confused = sign(&claims(), &SigningKeyMaterial::Hs256 { secret: x.as_bytes() });
        assert!(matches!(ed_keys().verify(&confused), Err(TokenError::Algorithm(m)) if m.contains("no TOKEN_SECRET")));
        let ed = sign(&claims(), &SigningKeyMaterial::EdDsa { kid: None, private_key: &PRIVATE });
        assert!(matches!(hs_keys().verify(&ed), Err(TokenError::Algorithm(m)) if m.contains("no TOKEN_PUBLIC_KEYS")));
        let token = sign(&claims(), &SigningKeyMaterial::Hs256 { secret: SECRET });
        for (alg, expected) in [("none", "alg none"), ("RS256", "\"RS256\""), ("HS512", "\"HS512\"")] {
            let header = URL_SAFE_NO_PAD.encode(json!({"alg": alg}).to_string());
            let unsigned = with_part(&token, 0, &header);
            assert!(matches!(hs_keys().verify(&unsigned), Err(TokenError::Algorithm(m)) if m.contains(expected)), "{alg}");
        }
        let none = format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#), URL_SAFE_NO_PAD.encode(claims().to_string()));
        assert!(matches!(hs_keys().verify(&none), Err(TokenError::Algorithm(_))));
    }

    #[test]
    fn malformed_tokens_say_what_is_wrong() {
        let keys = hs_keys();
        let good = sign(&claims(), &SigningKeyMaterial::Hs256 { secret: SECRET });
        let cases = [
            ("abc".to_string(), "three base64url parts"),
            (format!("{good}.x"), "three base64url parts"),
            (with_part(&good, 0, "!!"), "header part is not base64url"),
            (with_part(&good, 0, &URL_SAFE_NO_PAD.encode("[1")), "header"),
            (with_part(&good, 0, &URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","alg":"none"}"#)), "duplicate"),
            (with_part(&good, 2, "a+b/"), "signature is not base64url"),
            ("x".repeat(MAX_TOKEN_BYTES + 1), "longer than"),
        ];
        for (token, expected) in cases {
            let error = keys.verify(&token).unwrap_err().to_string();
            assert!(error.contains(expected), "{expected}: {error}");
        }
        let crit = sign(&claims(), &SigningKeyMaterial::Hs256 { secret: SECRET });
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","crit":["exp"]}"#);
        assert!(keys.verify(&with_part(&crit, 0, &header)).unwrap_err().to_string().contains("crit"));
        let bad_claims = sign(&json!({"sub": "s"}), &SigningKeyMaterial::Hs256 { secret: SECRET });
        assert!(matches!(keys.verify(&bad_claims), Err(TokenError::InvalidClaims(m)) if m.contains("exp")));
        assert_eq!(TokenKeys::default().verify(&good), Err(TokenError::NotConfigured));
    }

    #[test]
    fn tokens_decode_without_a_key() {
        let token = sign(&claims(), &SigningKeyMaterial::EdDsa { kid: Some("k1"), private_key: &PRIVATE });
        let (header, payload) = decode_unverified(&token).unwrap();
        assert_eq!(serde_json::from_str::<serde_json::Value>(&header).unwrap(), json!({"alg": "EdDSA", "typ": "JWT", "kid": "k1"}));
        assert_eq!(serde_json::from_str::<serde_json::Value>(&payload).unwrap(), claims());
        assert!(matches!(decode_unverified("abc"), Err(TokenError::Malformed(m)) if m.contains("three base64url parts")));
        let twice = with_part(&token, 1, &URL_SAFE_NO_PAD.encode(r#"{"sub":"a","sub":"b"}"#));
        assert!(matches!(decode_unverified(&twice), Err(TokenError::Malformed(m)) if m.contains("claims")));
    }

    #[test]
    fn times_are_checked_against_now() {
        let mut c = Claims::parse(r#"{"sub":"s","exp":1000,"iat":900}"#).unwrap();
        assert_eq!(check_times(&c, 999, 3600), Ok(()));
        assert_eq!(check_times(&c, 1000, 3600), Err(TokenError::Expired));
        c.nbf = Some(950);
        assert_eq!(check_times(&c, 949, 3600), Err(TokenError::NotYetValid));
        assert_eq!(check_times(&c, 950, 3600), Ok(()));
        assert!(matches!(check_times(&c, 950, 50), Err(TokenError::InvalidClaims(m)) if m.contains("TOKEN_MAX_LIFETIME_S")));
        c.iat = None;
        assert_eq!(check_times(&c, 960, 50), Ok(()), "without iat the lifetime counts from now");
    }

    #[test]
    fn public_key_configuration_is_checked() {
        let x = public_key_x(&PRIVATE);
        let cases = [
            ("not json".to_string(), "JSON list"),
            (json!([{"kid": "a", "x": "c2hvcnQ"}]).to_string(), "32 bytes"),
            (json!([{"kid": "a", "x": x, "crv": "P-256"}]).to_string(), "crv must be Ed25519"),
            (json!([{"kid": "a", "x": x}, {"kid": "a", "x": x}]).to_string(), "own non-empty kid"),
            (json!([{"kid": "a", "x": x, "d": "secret"}]).to_string(), "JSON list"),
        ];
        for (config, expected) in cases {
            let error = TokenKeys::from_config(None, None, Some(&config)).unwrap_err();
            assert!(error.contains(expected), "{expected}: {error}");
        }
        let set = json!({"keys": [{"kid": "a", "x": x}]}).to_string();
        assert!(!TokenKeys::from_config(None, None, Some(&set)).unwrap().is_empty());
        assert!(TokenKeys::from_config(Some(""), None, Some(" ")).unwrap().is_empty());
    }
}
