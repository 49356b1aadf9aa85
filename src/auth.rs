//! Who is calling and what they may do. Credentials: the API key (`Authorization: Bearer`,
//! `X-API-Key` or `?apiKey=`; `API_KEY_PREVIOUS` too during a rotation), which may do
//! everything, or an access token (`Authorization: Bearer <jwt>`, `?token=` for browsers, or
//! `?apiKey=<jwt>` for the original client, which has nowhere else to put it),
//! which may do what its claims grant. Fails closed when nothing is configured; never logs a
//! key or a token.
//!
//! Verified tokens, the token keys, the limits and the revocation list are kept per isolate
//! (the revocation list for at most `REVOCATION_CHECK_MS`), so a request with a known token
//! costs a map lookup, not a signature check.

use crate::http::{self, Failure};
use crate::revocations;
use durable_stream_protocol::auth::{authorize, bearer_token, AuthDecision};
use durable_stream_protocol::token::jwt::looks_like_jwt;
use durable_stream_protocol::token::{check_times, Actions, Claims, Grant, RevocationList, TokenError, TokenKeys};
use durable_stream_protocol::{Config, ErrorCode, ProtocolError};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use worker::{console_error, Date, Env, Request};

/// The caller of one request.
pub enum Principal {
    /// The API key: every action.
    Master,
    Token(Rc<Claims>),
}

/// Most verified tokens remembered per isolate (the map starts over when full).
const VERIFIED_CACHE_SIZE: usize = 1024;

thread_local! {
    static TOKEN_KEYS: RefCell<Option<Rc<TokenKeys>>> = const { RefCell::new(None) };
    static CONFIG: RefCell<Option<Rc<Config>>> = const { RefCell::new(None) };
    static VERIFIED: RefCell<HashMap<String, Rc<Claims>>> = RefCell::new(HashMap::new());
    static REVOCATIONS: RefCell<Option<(u64, Rc<RevocationList>)>> = const { RefCell::new(None) };
}

/// A secret, or a `[vars]` entry of that name (TOKEN_PUBLIC_KEYS may be either).
pub fn secret(env: &Env, name: &str) -> Option<String> {
    env.secret(name).ok().map(|s| s.to_string()).or_else(|| env.var(name).ok().map(|v| v.to_string()))
}

/// A misconfiguration the caller cannot fix: logged for the operator, answered generically.
fn misconfigured(what: &str) -> Failure {
    console_error!("{what}");
    ProtocolError::new(ErrorCode::Internal, "the server's configuration is invalid; its operator must fix it (see the logs)").into()
}

/// The limits and defaults (`[vars]`), read once per isolate.
pub fn config(env: &Env) -> Result<Rc<Config>, Failure> {
    if let Some(config) = CONFIG.with_borrow(|c| c.clone()) {
        return Ok(config);
    }
    let config = Config::from_lookup(|name| env.var(name).ok().map(|v| v.to_string())).map_err(|e| misconfigured(&e.to_string()))?;
    let config = Rc::new(config);
    CONFIG.set(Some(config.clone()));
    Ok(config)
}

/// The keys tokens are verified with (`TOKEN_SECRET`, `TOKEN_SECRET_PREVIOUS`,
/// `TOKEN_PUBLIC_KEYS`), read once per isolate.
pub fn token_keys(env: &Env) -> Result<Rc<TokenKeys>, Failure> {
    if let Some(keys) = TOKEN_KEYS.with_borrow(|k| k.clone()) {
        return Ok(keys);
    }
    let keys = TokenKeys::from_config(
        secret(env, "TOKEN_SECRET").as_deref(),
        secret(env, "TOKEN_SECRET_PREVIOUS").as_deref(),
        secret(env, "TOKEN_PUBLIC_KEYS").as_deref(),
    )
    .map_err(|e| misconfigured(&e))?;
    let keys = Rc::new(keys);
    TOKEN_KEYS.set(Some(keys.clone()));
    Ok(keys)
}

pub fn now_s() -> u64 {
    Date::now().as_millis() / 1000
}

/// Verifies a token's signature (once per isolate) and its times (every time).
pub fn verify_token(keys: &TokenKeys, token: &str, config: &Config) -> Result<Rc<Claims>, ProtocolError> {
    let cached = VERIFIED.with_borrow(|verified| verified.get(token).cloned());
    let claims = match cached {
        Some(claims) => claims,
        None => {
            let claims = Rc::new(keys.verify(token)?);
            VERIFIED.with_borrow_mut(|verified| {
                if verified.len() >= VERIFIED_CACHE_SIZE {
                    verified.clear();
                }
                verified.insert(token.to_owned(), claims.clone());
            });
            claims
        }
    };
    check_times(&claims, now_s(), config.token_max_lifetime_s)?;
    Ok(claims)
}

/// The revocations in force, at most `max_age_ms` old.
pub async fn revocation_list(env: &Env, max_age_ms: u64) -> Result<Rc<RevocationList>, Failure> {
    let now = Date::now().as_millis();
    let fresh = REVOCATIONS.with_borrow(|cached| {
        cached.as_ref().filter(|(fetched, _)| now.saturating_sub(*fetched) < max_age_ms).map(|(_, l)| l.clone())
    });
    if let Some(list) = fresh {
        return Ok(list);
    }
    let list = Rc::new(revocations::fetch(env).await?);
    remember_revocations(list.clone());
    Ok(list)
}

/// Replaces the cached list (a revocation made through this isolate applies at once).
pub fn remember_revocations(list: Rc<RevocationList>) {
    REVOCATIONS.set(Some((Date::now().as_millis(), list)));
}

/// The credentials one request presented.
#[derive(Default)]
struct Presented {
    keys: Vec<String>,
    tokens: Vec<String>,
}

fn presented(req: &Request) -> Result<Presented, Failure> {
    let mut found = Presented::default();
    let headers = req.headers();
    if let Some(authorization) = headers.get("authorization")? {
        if let Some(credential) = bearer_token(&authorization) {
            let list = if looks_like_jwt(credential) { &mut found.tokens } else { &mut found.keys };
            list.push(credential.to_owned());
        }
    }
    found.keys.extend(headers.get("x-api-key")?);
    for (name, value) in http::query(req) {
        match name.as_str() {
            // The original client sends its credential only here: an access token works too.
            "apiKey" if looks_like_jwt(&value) => found.tokens.push(value),
            "apiKey" => found.keys.push(value),
            "token" => found.tokens.push(value),
            _ => {}
        }
    }
    Ok(found)
}

/// Authenticates a request: 401 (`unauthorized`, or `token_expired`) unless every credential
/// it presented is valid.
pub async fn authenticate(req: &Request, env: &Env) -> Result<Principal, Failure> {
    let Presented { keys, tokens } = presented(req)?;
    let api_keys = [secret(env, "API_KEY"), secret(env, "API_KEY_PREVIOUS")];
    let api_keys: Vec<&str> = api_keys.iter().flatten().map(String::as_str).collect();
    let token_keys = token_keys(env)?;
    if keys.is_empty() && tokens.is_empty() {
        let message = if api_keys.iter().all(|k| k.is_empty()) && token_keys.is_empty() {
            "the server has no API key configured; every request is refused"
        } else {
            "missing credentials: send the API key (Authorization: Bearer, X-API-Key or ?apiKey=) or an access token (Authorization: Bearer or ?token=)"
        };
        return Err(ProtocolError::new(ErrorCode::Unauthorized, message).into());
    }
    if !keys.is_empty() {
        let message = match authorize(&api_keys, keys.iter().map(String::as_str)) {
            AuthDecision::Allowed => None,
            AuthDecision::NotConfigured => Some("the server has no API key configured; use an access token"),
            AuthDecision::Missing | AuthDecision::Wrong => Some("invalid API key"),
        };
        if let Some(message) = message {
            return Err(ProtocolError::new(ErrorCode::Unauthorized, message).into());
        }
    }
    let Some(first) = tokens.first() else { return Ok(Principal::Master) };
    if tokens.iter().any(|t| t != first) {
        return Err(ProtocolError::bad_request("two different access tokens; send one").into());
    }
    let config = config(env)?;
    let claims = verify_token(&token_keys, first, &config)?;
    if revocation_list(env, config.revocation_check_ms).await?.revokes(&claims) {
        return Err(ProtocolError::from(TokenError::Revoked).into());
    }
    // With the API key as well, the request has the key's rights.
    Ok(if keys.is_empty() { Principal::Token(claims) } else { Principal::Master })
}

impl Principal {
    pub fn grant(&self, subject: &str) -> Grant {
        match self {
            Principal::Master => Grant::master(),
            Principal::Token(claims) => Grant::for_token(claims, subject),
        }
    }

    /// The grant on `subject`, if it covers every action in `needed` (403 otherwise); with
    /// `needed` empty, if it grants anything there at all (a WebSocket upgrade).
    pub fn require_subject(&self, subject: &str, needed: Actions) -> Result<Grant, Failure> {
        let grant = self.grant(subject);
        if needed.is_empty() && grant.actions.is_empty() {
            let error = ProtocolError::forbidden(format!(
                "{} grants nothing on subject {subject:?}; ask for a token that allows it",
                self.who()
            ));
            return Err(error.into());
        }
        grant.require(needed, subject)?;
        Ok(grant)
    }

    /// 403 unless the caller may do `action` (files:read or files:write) on file `key`.
    pub fn require_file(&self, action: Actions, key: &str) -> Result<(), Failure> {
        match self {
            Principal::Token(claims) if !claims.allows_file(action, key) => Err(ProtocolError::forbidden(format!(
                "{} does not grant {} on file {key:?}; ask for a token that allows it",
                self.who(),
                action.name()
            ))
            .into()),
            _ => Ok(()),
        }
    }

    /// 403 unless the caller may read every file under `prefix` (listing).
    pub fn require_file_listing(&self, prefix: &str) -> Result<(), Failure> {
        match self {
            Principal::Token(claims) if !claims.allows_file_listing(prefix) => {
                let readable = claims.readable_file_prefixes();
                let hint = if readable.is_empty() {
                    "it grants no files:read".to_string()
                } else {
                    format!("list with a prefix inside {readable:?}, outside any denied prefix")
                };
                Err(ProtocolError::forbidden(format!("{} may not list files under {prefix:?}: {hint}", self.who())).into())
            }
            _ => Ok(()),
        }
    }

    /// 403 unless the caller holds the API key (token minting and revocation).
    pub fn require_master(&self, what: &str) -> Result<(), Failure> {
        match self {
            Principal::Master => Ok(()),
            Principal::Token(_) => Err(ProtocolError::forbidden(format!("{what} needs the API key, not an access token")).into()),
        }
    }

    fn who(&self) -> String {
        match self {
            Principal::Master => "the API key".into(),
            Principal::Token(claims) => format!("the token of {:?}", claims.sub),
        }
    }
}
