//! Access tokens for issuers: [`TokenBuilder`] signs tokens locally (HS256 with the server's
//! `TOKEN_SECRET`, or EdDSA with a private key whose public half is in `TOKEN_PUBLIC_KEYS`),
//! [`Client::create_token`] has the server mint one, [`Client::revoke_tokens`] revokes them,
//! and [`Ed25519Key`] makes and stores signing keys.
//!
//! The claims are those of docs/PROTOCOL.md § Access tokens; a builder checks them the way the
//! server does before signing, so it never produces a token the server refuses for its shape.

use crate::client::Client;
use crate::connection::endpoint;
use crate::error::{Error, Result};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use durable_stream_protocol::token::jwt::{public_key_x, sign, SigningKeyMaterial};
use durable_stream_protocol::token::{Actions, Claims};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use durable_stream_protocol::token::{Limits as TokenLimits, Revocation};

/// What a token may do: on subjects [`Pub`](Action::Pub), [`Sub`](Action::Sub),
/// [`State`](Action::State) and [`Admin`](Action::Admin); on files
/// [`FilesRead`](Action::FilesRead) and [`FilesWrite`](Action::FilesWrite).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Publish (also `/ds` appends).
    Pub,
    /// Subscribe, replay, ack, durable consumers, reads and info.
    Sub,
    /// Read and write the subject's state (`state.get` / `state.put`).
    State,
    /// Trim, wipe, delete consumers; `/ds` create, delete and close.
    Admin,
    /// Download, inspect and list files.
    FilesRead,
    /// Upload and delete files.
    FilesWrite,
}

impl Action {
    /// Every action, in the order of the protocol.
    pub const ALL: [Action; 6] = [Action::Pub, Action::Sub, Action::State, Action::Admin, Action::FilesRead, Action::FilesWrite];

    fn bit(self) -> Actions {
        match self {
            Action::Pub => Actions::PUB,
            Action::Sub => Actions::SUB,
            Action::State => Actions::STATE,
            Action::Admin => Actions::ADMIN,
            Action::FilesRead => Actions::FILES_READ,
            Action::FilesWrite => Actions::FILES_WRITE,
        }
    }

    /// The action's name in tokens: `pub`, `sub`, `state`, `admin`, `files:read`, `files:write`.
    pub fn name(self) -> &'static str {
        self.bit().name()
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Action {
    type Err = String;

    fn from_str(name: &str) -> Result<Action, String> {
        Action::ALL.into_iter().find(|a| a.name() == name).ok_or_else(|| {
            let names: Vec<&str> = Action::ALL.iter().map(|a| a.name()).collect();
            format!("unknown action {name:?} (expected one of {})", names.join(", "))
        })
    }
}

/// Builds and signs an access token.
///
/// ```
/// use durable_stream_client::{Action, TokenBuilder, TokenLimits};
/// use std::time::Duration;
///
/// # fn main() -> durable_stream_client::Result<()> {
/// // A browser tab that may tail orders.eu.* and read reports, for an hour.
/// let token = TokenBuilder::new("web-42")
///     .ttl(Duration::from_secs(3600))
///     .allow_subjects(["orders.eu.*"], [Action::Sub])
///     .deny_subjects(["orders.eu.internal"], [Action::Sub])
///     .allow_files("reports/", [Action::FilesRead])
///     .limits(TokenLimits { connections: Some(2), ..Default::default() })
///     .sign_hs256(b"the server's TOKEN_SECRET")?;
/// # Ok(())
/// # }
/// ```
///
/// `iat` is the time of signing and `exp` that plus the time to live (default one hour; the
/// server refuses tokens that live longer than its `TOKEN_MAX_LIFETIME_S`). Every signature
/// gets a new random `jti` unless one is set. A deny entry wins over any allow entry.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBuilder {
    sub: String,
    ttl: Duration,
    allow: Vec<Value>,
    deny: Vec<Value>,
    limits: TokenLimits,
    jti: Option<String>,
}

impl TokenBuilder {
    /// A token for the client `sub` (its identity in the server's logs and per-client limits)
    /// that grants nothing yet.
    pub fn new(sub: impl Into<String>) -> Self {
        TokenBuilder {
            sub: sub.into(),
            ttl: Duration::from_secs(3600),
            allow: Vec::new(),
            deny: Vec::new(),
            limits: TokenLimits::default(),
            jti: None,
        }
    }

    /// How long the token lives (whole seconds, at least one).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Allows `actions` (subject actions) on the subjects matching `patterns`: NATS-style,
    /// `*` for one `.`-separated token, `>` (last) for one or more trailing tokens.
    pub fn allow_subjects<P: Into<String>>(
        mut self,
        patterns: impl IntoIterator<Item = P>,
        actions: impl IntoIterator<Item = Action>,
    ) -> Self {
        self.allow.push(rule("subjects", patterns_json(patterns), actions));
        self
    }

    /// Denies `actions` on the subjects matching `patterns`, whatever an allow entry says.
    pub fn deny_subjects<P: Into<String>>(
        mut self,
        patterns: impl IntoIterator<Item = P>,
        actions: impl IntoIterator<Item = Action>,
    ) -> Self {
        self.deny.push(rule("subjects", patterns_json(patterns), actions));
        self
    }

    /// Allows `actions` (file actions) on the files whose keys start with `prefix` (`""`: all).
    pub fn allow_files(mut self, prefix: impl Into<String>, actions: impl IntoIterator<Item = Action>) -> Self {
        self.allow.push(rule("files", Value::String(prefix.into()), actions));
        self
    }

    /// Denies `actions` on the files whose keys start with `prefix`.
    pub fn deny_files(mut self, prefix: impl Into<String>, actions: impl IntoIterator<Item = Action>) -> Self {
        self.deny.push(rule("files", Value::String(prefix.into()), actions));
        self
    }

    /// Per-token limits: publishes and published bytes per second, open connections.
    pub fn limits(mut self, limits: TokenLimits) -> Self {
        self.limits = limits;
        self
    }

    /// A fixed token id (the one to name when revoking it) instead of a random one.
    pub fn jti(mut self, jti: impl Into<String>) -> Self {
        self.jti = Some(jti.into());
        self
    }

    /// The claims of a token signed at `now`, checked as the server checks them.
    pub fn claims_at(&self, now: SystemTime) -> Result<Value> {
        let ttl = self.ttl_seconds()?;
        let iat = now.duration_since(UNIX_EPOCH).map_err(|_| Error::InvalidToken("the clock is before 1970".into()))?.as_secs();
        let mut claims = self.grants();
        claims.insert("iat".into(), iat.into());
        claims.insert("exp".into(), (iat + ttl).into());
        let jti = self.jti.clone().unwrap_or_else(|| format!("{:032x}", rand::random::<u128>()));
        claims.insert("jti".into(), jti.into());
        let claims = Value::Object(claims);
        Claims::parse(&claims.to_string()).map_err(|e| Error::InvalidToken(format!("the token would be refused: {e}")))?;
        Ok(claims)
    }

    /// Signs the token with HS256 and the server's `TOKEN_SECRET`.
    pub fn sign_hs256(&self, secret: &[u8]) -> Result<String> {
        if secret.is_empty() {
            return Err(Error::InvalidToken("the HS256 secret is empty".into()));
        }
        Ok(sign(&self.claims_at(SystemTime::now())?, &SigningKeyMaterial::Hs256 { secret }))
    }

    /// Signs the token with EdDSA (Ed25519). The server needs the public key in
    /// `TOKEN_PUBLIC_KEYS`, under `kid` when it has several (see [`Ed25519Key`]).
    pub fn sign_ed25519(&self, kid: Option<&str>, private_key: &[u8; 32]) -> Result<String> {
        Ok(sign(&self.claims_at(SystemTime::now())?, &SigningKeyMaterial::EdDsa { kid, private_key }))
    }

    fn ttl_seconds(&self) -> Result<u64> {
        match self.ttl.as_secs() {
            0 => Err(Error::InvalidToken(format!("the time to live must be at least 1 s (got {:?})", self.ttl))),
            seconds => Ok(seconds),
        }
    }

    /// `sub`, `allow`, `deny` and `limits`, each only when given.
    fn grants(&self) -> Map<String, Value> {
        let mut claims = Map::new();
        claims.insert("sub".into(), self.sub.clone().into());
        for (name, rules) in [("allow", &self.allow), ("deny", &self.deny)] {
            if !rules.is_empty() {
                claims.insert(name.into(), Value::Array(rules.clone()));
            }
        }
        if self.limits != TokenLimits::default() {
            claims.insert("limits".into(), json!(self.limits));
        }
        claims
    }
}

fn patterns_json<P: Into<String>>(patterns: impl IntoIterator<Item = P>) -> Value {
    Value::Array(patterns.into_iter().map(|p| Value::String(p.into())).collect())
}

fn rule(target: &str, covered: Value, actions: impl IntoIterator<Item = Action>) -> Value {
    let names: Vec<&str> = actions.into_iter().map(Action::name).collect();
    json!({ target: covered, "actions": names })
}

/// A token the server minted ([`Client::create_token`]).
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct IssuedToken {
    /// The token itself: hand it to the client it is for, never log it.
    pub token: String,
    /// When it expires, in seconds since 1970.
    pub exp: u64,
    /// Its id, to revoke it with.
    pub jti: String,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken").field("exp", &self.exp).field("jti", &self.jti).finish_non_exhaustive()
    }
}

/// Which tokens [`Client::revoke_tokens`] revokes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoke {
    /// The token with this `jti`.
    Token {
        /// The token's id.
        jti: String,
    },
    /// Every token of client `sub` issued before `issued_before` (default: now).
    Client {
        /// The client's `sub`.
        sub: String,
        /// Tokens issued (`iat`) before this time are revoked.
        issued_before: Option<SystemTime>,
    },
}

/// The server's answer to [`Client::revoke_tokens`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoked {
    /// What was revoked, and when the revocation lapses (every token it names has expired then).
    pub revoked: Revocation,
    /// The revocation list's version after this change.
    pub version: u64,
}

impl Client {
    /// Has the server mint an HS256 token (`POST /v1/tokens`; needs the API key and the
    /// server's `TOKEN_SECRET`). The server sets `iat`, `exp` and a random `jti`, so `builder`
    /// must not set a `jti`.
    pub async fn create_token(&self, builder: &TokenBuilder) -> Result<IssuedToken> {
        if builder.jti.is_some() {
            return Err(Error::InvalidToken("the server chooses the jti of the tokens it mints; sign locally to set it".into()));
        }
        let mut request = builder.grants();
        request.insert("ttl".into(), builder.ttl_seconds()?.into());
        self.token_request(&["v1", "tokens"], &Value::Object(request), "token").await
    }

    /// Revokes tokens (`POST /v1/tokens/revoke`; needs the API key). Live connections using
    /// them are closed within seconds, and new requests with them are refused.
    pub async fn revoke_tokens(&self, which: Revoke) -> Result<Revoked> {
        let request = match which {
            Revoke::Token { jti } => json!({ "jti": jti }),
            Revoke::Client { sub, issued_before } => {
                let mut request = json!({ "sub": sub });
                if let Some(time) = issued_before {
                    let ms = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
                    request["issuedBefore"] = ms.into();
                }
                request
            }
        };
        self.token_request(&["v1", "tokens", "revoke"], &request, "revocation").await
    }

    async fn token_request<T: serde::de::DeserializeOwned>(&self, path: &[&str], body: &Value, what: &str) -> Result<T> {
        let http = &self.inner.http;
        let url = endpoint(&self.inner.settings.http_base, path.iter().copied());
        let request = http.post(url).json(body).timeout(self.inner.settings.request_timeout);
        let body = crate::files::check(http.send(request).await?).await?.bytes().await?;
        serde_json::from_slice(&body).map_err(|e| Error::InvalidResponse(format!("{what} reply: {e}")))
    }
}

/// An Ed25519 key pair for signing tokens with EdDSA. The issuing service keeps the private
/// key; the server gets only the public one (`TOKEN_PUBLIC_KEYS`), so a leaked server
/// configuration cannot mint tokens.
///
/// Stored as a private JWK (`{"kty":"OKP","crv":"Ed25519","kid","x","d"}`, see
/// [`to_jwk`](Ed25519Key::to_jwk)); `Debug` shows only the public key.
#[derive(Clone, PartialEq, Eq)]
pub struct Ed25519Key {
    private_key: [u8; 32],
    /// The key's id in `TOKEN_PUBLIC_KEYS` and in the tokens' headers.
    pub kid: String,
}

impl fmt::Debug for Ed25519Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ed25519Key").field("kid", &self.kid).field("x", &self.public_key_x()).finish_non_exhaustive()
    }
}

impl Ed25519Key {
    /// A new key from the operating system's random source. Without `kid`, the key's id is
    /// the start of its public key.
    pub fn generate(kid: Option<&str>) -> Ed25519Key {
        use rand::RngCore;
        let mut private_key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut private_key);
        let kid = kid.map_or_else(|| public_key_x(&private_key)[..12].to_owned(), str::to_owned);
        Ed25519Key { private_key, kid }
    }

    /// The private key's 32 bytes (for [`TokenBuilder::sign_ed25519`]).
    pub fn private_key(&self) -> &[u8; 32] {
        &self.private_key
    }

    /// The public key, base64url (a JWK's `x`).
    pub fn public_key_x(&self) -> String {
        public_key_x(&self.private_key)
    }

    /// This key's entry for the server's `TOKEN_PUBLIC_KEYS` list: `{"kid":…,"x":…}`.
    pub fn public_entry(&self) -> Value {
        json!({ "kid": self.kid, "x": self.public_key_x() })
    }

    /// The private JWK, to store (secretly) and read back with [`from_jwk`](Self::from_jwk).
    pub fn to_jwk(&self) -> String {
        json!({ "kty": "OKP", "crv": "Ed25519", "kid": self.kid, "x": self.public_key_x(), "d": URL_SAFE_NO_PAD.encode(self.private_key) })
            .to_string()
    }

    /// Reads a private JWK (as written by [`to_jwk`](Self::to_jwk) or `dstream token keygen`).
    pub fn from_jwk(text: &str) -> Result<Ed25519Key> {
        #[derive(Deserialize)]
        struct Jwk {
            kty: String,
            crv: String,
            kid: String,
            x: Option<String>,
            d: Option<String>,
        }
        let invalid = |why: &str| Error::InvalidToken(format!("not an Ed25519 private key (JWK): {why}"));
        let jwk: Jwk = serde_json::from_str(text).map_err(|e| invalid(&e.to_string()))?;
        if (jwk.kty.as_str(), jwk.crv.as_str()) != ("OKP", "Ed25519") {
            return Err(invalid("kty must be OKP and crv Ed25519"));
        }
        let d = jwk.d.ok_or_else(|| invalid("no private part d (this is a public key)"))?;
        let private_key: [u8; 32] = URL_SAFE_NO_PAD
            .decode(d.trim())
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| invalid("d must be 32 bytes in base64url"))?;
        let key = Ed25519Key { private_key, kid: jwk.kid };
        if jwk.x.is_some_and(|x| x != key.public_key_x()) {
            return Err(invalid("x is not the public key of d"));
        }
        Ok(key)
    }
}

impl Drop for Ed25519Key {
    fn drop(&mut self) {
        // Best effort: do not leave the key in freed memory.
        self.private_key = [0; 32];
        std::hint::black_box(&self.private_key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use durable_stream_protocol::token::jwt::check_times;
    use durable_stream_protocol::token::TokenKeys;

    const SECRET: &str = "the-token-secret";

    fn hs_keys() -> TokenKeys {
        TokenKeys::from_config(Some(SECRET), None, None).unwrap()
    }

    fn now_s() -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
    }

    #[test]
    fn a_signed_token_verifies_and_grants_what_was_built() {
        let token = TokenBuilder::new("web")
            .ttl(Duration::from_secs(600))
            .allow_subjects(["orders.>", "telemetry.*.raw"], [Action::Pub, Action::Sub])
            .deny_subjects(["orders.internal.>"], [Action::Sub])
            .allow_files("reports/", [Action::FilesRead])
            .limits(TokenLimits { pub_rate: Some(10.0), connections: Some(2), ..Default::default() })
            .sign_hs256(SECRET.as_bytes())
            .unwrap();
        let claims = hs_keys().verify(&token).unwrap();
        assert_eq!(claims.sub, "web");
        let iat = claims.iat.unwrap();
        assert!(iat.abs_diff(now_s()) <= 5, "iat is now");
        assert_eq!(claims.exp, iat + 600);
        assert_eq!(claims.jti.as_ref().map(String::len), Some(32), "a random 128-bit jti");
        check_times(&claims, now_s(), 3600).unwrap();
        let pub_sub = Actions::PUB.union(Actions::SUB);
        assert_eq!(claims.subject_actions("orders.eu"), pub_sub);
        assert_eq!(claims.subject_actions("telemetry.dev1.raw"), pub_sub);
        assert_eq!(claims.subject_actions("orders.internal.audit"), Actions::PUB, "deny wins");
        assert_eq!(claims.subject_actions("payments"), Actions::NONE);
        assert!(claims.allows_file(Actions::FILES_READ, "reports/q1.csv"));
        assert!(!claims.allows_file(Actions::FILES_WRITE, "reports/q1.csv"));
        assert_eq!(claims.limits, TokenLimits { pub_rate: Some(10.0), pub_bytes_rate: None, connections: Some(2) });
    }

    #[test]
    fn eddsa_tokens_verify_with_the_public_entry() {
        let key = Ed25519Key::generate(Some("k1"));
        let token = TokenBuilder::new("svc")
            .allow_subjects(["a"], [Action::State])
            .jti("fixed")
            .sign_ed25519(Some(&key.kid), key.private_key())
            .unwrap();
        let entries = Value::Array(vec![key.public_entry()]).to_string();
        let keys = TokenKeys::from_config(None, None, Some(&entries)).unwrap();
        let claims = keys.verify(&token).unwrap();
        assert_eq!((claims.jti.as_deref(), claims.exp - claims.iat.unwrap()), (Some("fixed"), 3600), "default ttl: an hour");
        let other = Ed25519Key::generate(Some("k1"));
        assert!(keys.verify(&TokenBuilder::new("svc").sign_ed25519(Some("k1"), other.private_key()).unwrap()).is_err());
    }

    #[test]
    fn shapes_the_server_would_refuse_are_not_signed() {
        let refused = [
            (TokenBuilder::new(""), "sub"),
            (TokenBuilder::new("s").ttl(Duration::from_millis(999)), "at least 1 s"),
            (TokenBuilder::new("s").allow_subjects(["a.>.b"], [Action::Sub]), "last token"),
            (TokenBuilder::new("s").allow_subjects(["a"], [Action::FilesRead]), "may only name pub"),
            (TokenBuilder::new("s").deny_files("x/", [Action::Pub]), "may only name files"),
            (TokenBuilder::new("s").allow_subjects(["a"], []), "at least one action"),
            (TokenBuilder::new("s").limits(TokenLimits { pub_rate: Some(0.0), ..Default::default() }), "pubRate"),
            (TokenBuilder::new("s").allow_subjects(vec!["a"; 65], [Action::Pub]), "at most 64"),
        ];
        for (builder, expected) in refused {
            match builder.sign_hs256(b"k") {
                Err(Error::InvalidToken(message)) => assert!(message.contains(expected), "{expected}: {message}"),
                other => panic!("{expected}: expected a refusal, got {other:?}"),
            }
        }
        assert!(matches!(TokenBuilder::new("s").sign_hs256(b""), Err(Error::InvalidToken(m)) if m.contains("secret is empty")));
    }

    #[test]
    fn claims_are_what_was_built_at_the_given_time() {
        let at = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let claims = TokenBuilder::new("web").ttl(Duration::from_secs(90)).allow_files("", [Action::FilesWrite]).jti("j").claims_at(at).unwrap();
        assert_eq!(
            claims,
            json!({"sub": "web", "allow": [{"files": "", "actions": ["files:write"]}], "iat": 1_800_000_000u64, "exp": 1_800_000_090u64, "jti": "j"})
        );
    }

    #[test]
    fn actions_parse_from_their_names() {
        for action in Action::ALL {
            assert_eq!(action.name().parse::<Action>(), Ok(action));
        }
        assert_eq!(Action::FilesRead.to_string(), "files:read");
        let unknown = "publish".parse::<Action>().unwrap_err();
        assert!(unknown.contains("pub, sub, state, admin, files:read, files:write"), "{unknown}");
    }

    #[test]
    fn keys_round_trip_through_their_jwk_and_never_show_the_private_part() {
        let key = Ed25519Key::generate(None);
        assert_eq!(key.kid, key.public_key_x()[..12], "default kid: the start of the public key");
        let jwk = key.to_jwk();
        assert_eq!(Ed25519Key::from_jwk(&jwk).unwrap(), key);
        let d = URL_SAFE_NO_PAD.encode(key.private_key());
        assert!(!format!("{key:?}").contains(&d));
        let mut tampered: Value = serde_json::from_str(&jwk).unwrap();
        tampered["x"] = Ed25519Key::generate(None).public_key_x().into();
        assert!(matches!(Ed25519Key::from_jwk(&tampered.to_string()), Err(Error::InvalidToken(m)) if m.contains("x is not")));
        let public = key.public_entry();
        let public = json!({"kty": "OKP", "crv": "Ed25519", "kid": public["kid"], "x": public["x"]});
        assert!(matches!(Ed25519Key::from_jwk(&public.to_string()), Err(Error::InvalidToken(m)) if m.contains("no private part")));
        assert_ne!(Ed25519Key::generate(None).private_key(), key.private_key());
    }
}
