//! The client's credentials: an API key, or an access token that a provider keeps fresh.
//!
//! Every connection and HTTP request reads the current credential here. With a token provider,
//! a background task asks it for the next token before the current one expires (see
//! [`refresh_at_ms`]) and publishes it; each live WebSocket then sends it in-band
//! (`{"op":"auth"}`) and new connections use it from the start. Nothing here ever prints a
//! credential: `Debug` shows only its kind.

use crate::connection::ConnectionEvent;
use crate::error::{Error, Result};
use durable_stream_protocol::token::jwt::{decode_unverified, looks_like_jwt};
use futures_util::future::BoxFuture;
use reqwest::header::HeaderValue;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::fmt;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{broadcast, watch};

/// What a token provider returns: a fresh token, or why it could not get one.
pub(crate) type ProvidedToken = Result<String, Box<dyn std::error::Error + Send + Sync>>;

/// A user-supplied async callback returning a fresh token.
pub(crate) type TokenProvider = Arc<dyn Fn() -> BoxFuture<'static, ProvidedToken> + Send + Sync>;

/// Renew this long before expiry at the latest (unless the token lives so short that it would
/// mean renewing in its first half).
const REFRESH_MARGIN_MS: u64 = 30_000;
/// Never ask the provider more often than this, whatever it returns.
const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(1);
/// After a failed refresh, ask again after this long, doubling up to [`MAX_RETRY_DELAY`].
const FIRST_RETRY_DELAY: Duration = Duration::from_secs(1);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

/// One credential: the API key or a token.
#[derive(Clone)]
pub(crate) struct Credential {
    /// The key or token itself.
    pub secret: Arc<str>,
    /// `Bearer <secret>`, marked sensitive so that HTTP libraries do not log it.
    pub header: HeaderValue,
    /// For a token with an `exp` claim: its lifetime, to schedule the next refresh.
    lifetime: Option<Lifetime>,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if looks_like_jwt(&self.secret) { "token" } else { "API key" };
        f.debug_struct("Credential").field("kind", &kind).field("lifetime", &self.lifetime).finish_non_exhaustive()
    }
}

impl Credential {
    /// Checks that `secret` can travel in a header; `what` names it in the error.
    fn new(secret: String, what: &str) -> Result<Credential> {
        let mut header = HeaderValue::from_str(&format!("Bearer {secret}"))
            .map_err(|_| Error::BadRequest(format!("the {what} contains characters not allowed in a header")))?;
        header.set_sensitive(true);
        Ok(Credential { secret: secret.into(), header, lifetime: None })
    }

    /// A token whose lifetime must be known (with a provider, the next refresh depends on it);
    /// `origin` says where it came from, for the error.
    fn token_with_lifetime(token: String, now_ms: u64, origin: &str) -> Result<Credential> {
        let lifetime = Lifetime::of(&token, now_ms).map_err(|why| {
            Error::InvalidToken(format!("{origin} {why}; with a token provider, tokens must be JWTs with an exp claim"))
        })?;
        Ok(Credential { lifetime: Some(lifetime), ..Credential::new(token, "token")? })
    }
}

/// When a token started to live (its `iat`, or when it was received) and when it expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lifetime {
    pub start_ms: u64,
    pub exp_ms: u64,
}

impl Lifetime {
    /// Reads `exp` and `iat` from a token without verifying it (only its issuer and the server
    /// can). An `iat` in the future (the issuer's clock is ahead) counts as now.
    pub fn of(token: &str, now_ms: u64) -> Result<Lifetime, String> {
        #[derive(Deserialize)]
        struct Times {
            exp: Option<f64>,
            iat: Option<f64>,
        }
        let (_, claims) = decode_unverified(token).map_err(|e| format!("cannot be read ({e})"))?;
        let times: Times = serde_json::from_str(&claims).map_err(|e| format!("has unreadable claims ({e})"))?;
        let exp = times.exp.filter(|exp| exp.is_finite() && *exp >= 0.0).ok_or("has no valid exp claim")?;
        let seconds_to_ms = |s: f64| (s * 1000.0) as u64;
        let start_ms = times.iat.map(seconds_to_ms).filter(|iat| *iat <= now_ms).unwrap_or(now_ms);
        Ok(Lifetime { start_ms, exp_ms: seconds_to_ms(exp) })
    }
}

/// When to get the successor of a token living from `start_ms` to `exp_ms`: once 80% of its
/// lifetime has passed or 30 s before it expires, whichever is earlier — but not in the first
/// half of its life, so that short-lived tokens are not renewed over and over.
pub(crate) fn refresh_at_ms(lifetime: Lifetime) -> u64 {
    let length = lifetime.exp_ms.saturating_sub(lifetime.start_ms);
    let at_80_percent = length.saturating_mul(4) / 5;
    let before_expiry = length.saturating_sub(REFRESH_MARGIN_MS);
    lifetime.start_ms + at_80_percent.min(before_expiry).max(length / 2)
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The `auth` request (without its `id`) that replaces a live connection's token.
pub(crate) fn auth_request(credential: &Credential) -> Map<String, Value> {
    let mut frame = Map::new();
    frame.insert("op".into(), "auth".into());
    frame.insert("token".into(), credential.secret.as_ref().into());
    frame
}

/// The client's credentials, shared by its connections; cheap to clone.
#[derive(Clone)]
pub(crate) struct Credentials {
    shared: Arc<Shared>,
}

struct Shared {
    current: watch::Sender<Credential>,
    provider: Option<TokenProvider>,
    /// Held while asking the provider, so that connections refused at the same moment share
    /// one call.
    renewing: tokio::sync::Mutex<()>,
    events: broadcast::Sender<ConnectionEvent>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("current", &*self.shared.current.borrow())
            .field("provider", &self.shared.provider.is_some())
            .finish()
    }
}

impl Credentials {
    /// A fixed API key (or a token without a provider: it is used until it expires).
    pub fn fixed(secret: String, events: broadcast::Sender<ConnectionEvent>) -> Result<Credentials> {
        let what = if looks_like_jwt(&secret) { "token" } else { "API key" };
        Ok(Credentials::with(Credential::new(secret, what)?, None, events))
    }

    /// Tokens from `provider`, starting with `first` if given (else the provider's first), and
    /// a background task that renews them before they expire.
    pub async fn provided(
        first: Option<String>,
        provider: TokenProvider,
        events: broadcast::Sender<ConnectionEvent>,
    ) -> Result<Credentials> {
        let first = match first {
            Some(token) => Credential::token_with_lifetime(token, now_ms(), "the token given to the client")?,
            None => Shared::provide(&provider).await?,
        };
        let credentials = Credentials::with(first, Some(provider), events);
        tokio::spawn(refresh(Arc::downgrade(&credentials.shared)));
        Ok(credentials)
    }

    fn with(current: Credential, provider: Option<TokenProvider>, events: broadcast::Sender<ConnectionEvent>) -> Self {
        let shared = Shared { current: watch::Sender::new(current), provider, renewing: Default::default(), events };
        Credentials { shared: Arc::new(shared) }
    }

    pub fn current(&self) -> Credential {
        self.shared.current.borrow().clone()
    }

    /// The current credential and, for a connection opened with it, word of later ones.
    pub fn watch(&self) -> TokenWatch {
        let mut receiver = self.shared.current.subscribe();
        let current = receiver.borrow_and_update().clone();
        TokenWatch { current, updates: self.shared.provider.is_some().then_some(receiver) }
    }

    /// Whether a refused or expired token can be replaced (there is a provider).
    pub fn renewable(&self) -> bool {
        self.shared.provider.is_some()
    }

    /// A credential newer than `refused`, which the server no longer accepts: the current one
    /// if it already changed, else a fresh one from the provider. `None` without a provider.
    pub async fn renew(&self, refused: &Credential) -> Result<Option<Credential>> {
        if self.shared.provider.is_none() {
            return Ok(None);
        }
        let _one_at_a_time = self.shared.renewing.lock().await;
        let current = self.current();
        if current.secret != refused.secret {
            return Ok(Some(current));
        }
        self.shared.fetch().await.map(Some)
    }
}

impl Shared {
    /// Asks the provider for a token and makes it the current one.
    async fn fetch(&self) -> Result<Credential> {
        let credential = Shared::provide(self.provider.as_ref().expect("only called with a provider")).await?;
        self.current.send_replace(credential.clone());
        Ok(credential)
    }

    async fn provide(provider: &TokenProvider) -> Result<Credential> {
        let token = provider().await.map_err(|e| Error::TokenProvider(Arc::from(e)))?;
        Credential::token_with_lifetime(token, now_ms(), "the token provider returned a token that")
    }
}

/// Refreshes the token before it expires until the client is dropped. Failures are reported
/// as [`ConnectionEvent::TokenRefreshFailed`] and retried with growing delays.
async fn refresh(shared: Weak<Shared>) {
    let mut retry_delay = None::<Duration>;
    loop {
        let (scheduled_for, mut changes) = match shared.upgrade() {
            Some(shared) => (shared.current.borrow().clone(), shared.current.subscribe()),
            None => return,
        };
        let lifetime = scheduled_for.lifetime;
        let scheduled = lifetime.map_or(MAX_RETRY_DELAY, |lifetime| {
            Duration::from_millis(refresh_at_ms(lifetime).saturating_sub(now_ms()))
        });
        let delay = retry_delay.unwrap_or(scheduled).max(MIN_REFRESH_INTERVAL);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            // Renewed meanwhile (a connection was refused): schedule after the new token.
            changed = changes.changed() => match changed {
                Ok(()) => {
                    retry_delay = None;
                    continue;
                }
                Err(_) => return, // the client is gone
            },
        }
        let Some(shared) = shared.upgrade() else { return };
        let _one_at_a_time = shared.renewing.lock().await;
        if shared.current.borrow().secret != scheduled_for.secret {
            continue; // a refused connection renewed it just now
        }
        match shared.fetch().await {
            Ok(_) => retry_delay = None,
            Err(e) => {
                let _ = shared.events.send(ConnectionEvent::TokenRefreshFailed { subject: None, reason: e.to_string() });
                retry_delay = Some(retry_delay.map_or(FIRST_RETRY_DELAY, |d| (d * 2).min(MAX_RETRY_DELAY)));
            }
        }
    }
}

/// The credential a connection was opened with, and the tokens that replace it while it lives.
pub(crate) struct TokenWatch {
    pub current: Credential,
    /// `None` when the credential never changes (no provider).
    updates: Option<watch::Receiver<Credential>>,
}

impl TokenWatch {
    /// Waits for the next token; never returns when there is no provider. Cancel-safe.
    pub async fn changed(&mut self) -> Credential {
        if let Some(updates) = &mut self.updates {
            if updates.changed().await.is_ok() {
                self.current = updates.borrow_and_update().clone();
                return self.current.clone();
            }
            self.updates = None;
        }
        std::future::pending().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use durable_stream_protocol::token::jwt::{sign, SigningKeyMaterial};
    use serde_json::json;

    const HOUR_MS: u64 = 3_600_000;

    fn token(claims: serde_json::Value) -> String {
        sign(&claims, &SigningKeyMaterial::Hs256 { secret: b"s" })
    }

    #[test]
    fn long_lived_tokens_are_renewed_at_80_percent_of_their_life() {
        let start_ms = 1_700_000_000_000;
        assert_eq!(refresh_at_ms(Lifetime { start_ms, exp_ms: start_ms + HOUR_MS }), start_ms + HOUR_MS * 4 / 5);
        assert_eq!(refresh_at_ms(Lifetime { start_ms, exp_ms: start_ms + HOUR_MS + 4 }), start_ms + HOUR_MS * 4 / 5 + 3, "rounded down");
    }

    #[test]
    fn tokens_of_a_few_minutes_are_renewed_30_seconds_before_expiry() {
        let start_ms = 5_000;
        assert_eq!(refresh_at_ms(Lifetime { start_ms, exp_ms: start_ms + 120_000 }), start_ms + 90_000);
        assert_eq!(refresh_at_ms(Lifetime { start_ms, exp_ms: start_ms + 150_000 }), start_ms + 120_000, "80% = 30 s before");
    }

    #[test]
    fn short_lived_tokens_are_renewed_at_half_their_life_at_the_earliest() {
        assert_eq!(refresh_at_ms(Lifetime { start_ms: 0, exp_ms: 40_000 }), 20_000);
        assert_eq!(refresh_at_ms(Lifetime { start_ms: 0, exp_ms: 4_000 }), 2_000);
        assert_eq!(refresh_at_ms(Lifetime { start_ms: 10, exp_ms: 5 }), 10, "already expired: at once");
    }

    #[test]
    fn lifetimes_are_read_from_the_claims_without_a_key() {
        let now_ms = 2_000_000_000_000;
        let issued = token(json!({"sub": "s", "iat": 1_999_999_000u64, "exp": 2_000_003_600u64}));
        assert_eq!(Lifetime::of(&issued, now_ms), Ok(Lifetime { start_ms: 1_999_999_000_000, exp_ms: 2_000_003_600_000 }));
        let without_iat = token(json!({"sub": "s", "exp": 2_000_000_060.5}));
        assert_eq!(Lifetime::of(&without_iat, now_ms), Ok(Lifetime { start_ms: now_ms, exp_ms: 2_000_000_060_500 }));
        let issued_in_the_future = token(json!({"sub": "s", "iat": 2_000_000_100u64, "exp": 2_000_003_600u64}));
        assert_eq!(Lifetime::of(&issued_in_the_future, now_ms).unwrap().start_ms, now_ms, "the issuer's clock is ahead");
        assert_eq!(Lifetime::of(&token(json!({"sub": "s"})), now_ms), Err("has no valid exp claim".into()));
        assert!(Lifetime::of(&token(json!({"sub": "s", "exp": "soon"})), now_ms).unwrap_err().starts_with("has unreadable claims"));
        assert!(Lifetime::of("an-api-key", now_ms).unwrap_err().starts_with("cannot be read (malformed token"));
    }

    #[test]
    fn credentials_never_show_in_debug_output() {
        let (events, _) = broadcast::channel(1);
        let secret = token(json!({"sub": "s", "exp": 1}));
        let text = format!("{:?}", Credentials::fixed(secret.clone(), events.clone()).unwrap());
        assert!(!text.contains(&secret) && text.contains("token"), "{text}");
        let key = format!("{:?}", Credentials::fixed("the-key".into(), events.clone()).unwrap());
        assert!(!key.contains("the-key") && key.contains("API key"), "{key}");
        assert!(matches!(Credentials::fixed("bad\nkey".into(), events), Err(Error::BadRequest(m)) if m.contains("API key")));
    }

    #[tokio::test]
    async fn a_renewal_asks_the_provider_once_for_every_connection_refused_with_the_same_token() {
        use std::sync::atomic::{AtomicU64, Ordering};
        let calls = Arc::new(AtomicU64::new(0));
        let counter = calls.clone();
        let provider: TokenProvider = Arc::new(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move { Ok(token(json!({"sub": "s", "exp": 4_000_000_000u64, "n": n}))) })
        });
        let (events, _) = broadcast::channel(1);
        let refused = Credentials::provided(Some("an-api-key".into()), provider.clone(), events.clone()).await.unwrap_err();
        assert!(matches!(refused, Error::InvalidToken(m) if m.starts_with("the token given to the client cannot be read")));
        let credentials = Credentials::provided(None, provider, events).await.unwrap();
        let first = credentials.watch();
        assert_eq!(calls.load(Ordering::SeqCst), 1, "the first token comes from the provider");
        let (a, b) = tokio::join!(credentials.renew(&first.current), credentials.renew(&first.current));
        let (a, b) = (a.unwrap().unwrap(), b.unwrap().unwrap());
        assert_eq!(a.secret, b.secret);
        assert_ne!(a.secret, first.current.secret);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn connections_hear_of_new_tokens_only_with_a_provider() {
        let (events, _) = broadcast::channel(1);
        let fixed = Credentials::fixed("k".into(), events.clone()).unwrap();
        assert!(!fixed.renewable());
        assert!(fixed.renew(&fixed.current()).await.unwrap().is_none());
        let mut watch = fixed.watch();
        let waited = tokio::time::timeout(Duration::from_millis(10), watch.changed()).await;
        assert!(waited.is_err(), "an API key never changes");

        let provider: TokenProvider =
            Arc::new(|| Box::pin(async { Ok(token(json!({"sub": "s", "exp": 4_000_000_000u64, "r": rand::random::<u32>()}))) }));
        let provided = Credentials::provided(None, provider, events).await.unwrap();
        let mut watch = provided.watch();
        let renewed = provided.renew(&watch.current.clone()).await.unwrap().unwrap();
        assert_eq!(watch.changed().await.secret, renewed.secret);
    }
}
