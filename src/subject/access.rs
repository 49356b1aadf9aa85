//! The subject's side of access control: every frame checked against its socket's grant,
//! sockets whose token expired or was revoked closed, in-band token refresh, and the publish
//! rate limits (per connection and per token `sub`).

use super::Core;
use crate::auth;
use durable_stream_protocol::frame::encode_error;
use durable_stream_protocol::rate::{Limiter, Rates};
use durable_stream_protocol::token::{Actions, Grant, TokenError, TokenInfo, TOKEN_EXPIRED_CLOSE_CODE, TOKEN_REVOKED_CLOSE_CODE};
use durable_stream_protocol::ProtocolError;
use worker::Env;

/// Most per-token limiters kept; idle ones (full buckets) are dropped beyond it.
const MAX_TOKEN_LIMITERS: usize = 1000;

impl Core {
    /// Closes a socket after telling it why (an `err` frame with no request id).
    fn close_for(&mut self, conn: &str, error: ProtocolError, code: u16, reason: &str) {
        if let Some(session) = self.sessions.remove(conn) {
            session.send(&encode_error(None, &error));
            let _ = session.ws.close(Some(code), Some(reason));
        }
    }

    /// Whether `conn` may send a frame needing `needed`: a socket whose token has expired is
    /// closed (Err(None)); a frame its grant does not cover is refused with `forbidden`.
    pub fn check_frame(&mut self, conn: &str, needed: Actions, now: u64) -> Result<(), Option<ProtocolError>> {
        let Some(session) = self.sessions.get_mut(conn) else { return Err(None) };
        if session.grant.expires_at_ms().is_some_and(|exp| exp <= now) {
            self.close_for(conn, TokenError::Expired.into(), TOKEN_EXPIRED_CLOSE_CODE, "token expired");
            return Err(None);
        }
        session.grant.require(needed, &self.meta.subject).map_err(Some)
    }

    /// Closes the sockets whose token has expired or is revoked (from the alarm).
    pub fn enforce_tokens(&mut self, now: u64) {
        let mut expired = Vec::new();
        let mut revoked = Vec::new();
        for (conn, session) in self.sessions.iter_mut() {
            if session.grant.expires_at_ms().is_some_and(|exp| exp <= now) {
                expired.push(conn.clone());
            } else if session.grant.revocation_claims().is_some_and(|claims| self.revocations.revokes(&claims)) {
                revoked.push(conn.clone());
            }
        }
        for conn in expired {
            self.close_for(&conn, TokenError::Expired.into(), TOKEN_EXPIRED_CLOSE_CODE, "token expired");
        }
        for conn in revoked {
            self.close_for(&conn, TokenError::Revoked.into(), TOKEN_REVOKED_CLOSE_CODE, "token revoked");
        }
    }

    /// When the object must next look at its sockets' tokens: the first expiry, and while any
    /// socket holds a token, the next revocation check.
    pub fn token_wakeup(&self) -> Option<u64> {
        let check = self.sessions.any_token().then(|| self.revocations_checked_at + self.config.revocation_check_ms);
        [self.sessions.earliest_expiry(), check].into_iter().flatten().min()
    }

    /// Replaces the socket's token in-band: the new token must verify, be in force, be for the
    /// same `sub` as the old one and grant something on the subject; a subscribed socket must
    /// keep `sub`. On refusal the old token stays.
    pub fn refresh_token(&mut self, env: &Env, conn: &str, token: &str, subject: &str) -> Result<u64, ProtocolError> {
        let keys = auth::token_keys(env).map_err(|_| ProtocolError::internal())?;
        let claims = auth::verify_token(&keys, token, &self.config)?;
        if self.revocations.revokes(&claims) {
            return Err(TokenError::Revoked.into());
        }
        let grant = Grant::for_token(&claims, subject);
        let session = self.sessions.get_mut(conn).ok_or_else(ProtocolError::internal)?;
        if let Some(old) = session.grant.token.as_ref().filter(|old| old.sub != claims.sub) {
            return Err(ProtocolError::forbidden(format!(
                "the new token is for {:?}, this connection for {:?}; connect again to change identity",
                claims.sub, old.sub
            )));
        }
        if grant.actions.is_empty() {
            return Err(ProtocolError::forbidden(format!("the new token grants nothing on subject {subject:?}")));
        }
        if session.sub.is_some() && !grant.allows(Actions::SUB) {
            return Err(ProtocolError::forbidden("the new token does not grant sub and this connection is subscribed; send unsub first"));
        }
        if let Some(limiter) = session.limiter.as_mut() {
            limiter.set_rates(Rates::per_connection(&self.config));
        }
        session.set_grant(grant);
        Ok(claims.exp)
    }

    /// Takes a publish of `messages` messages and `bytes` bytes from the connection's and the
    /// token's rate limits, or refuses it with `rate_limited`.
    /// The token of connection `conn` when a per-token publish limit applies to it (a copy,
    /// made only then: most publishes have no limit to charge).
    pub fn rate_limited_token(&mut self, conn: &str) -> Option<TokenInfo> {
        let token = self.sessions.get_mut(conn)?.grant.token.as_ref()?;
        (!Rates::per_token(&self.config, &token.limits).is_unlimited()).then(|| token.clone())
    }

    pub fn admit_publish(&mut self, conn: Option<&str>, token: Option<&TokenInfo>, messages: usize, bytes: usize, now: u64) -> Result<(), ProtocolError> {
        let connection_rates = Rates::per_connection(&self.config);
        if token.is_none() && connection_rates.is_unlimited() {
            return Ok(());
        }
        let (messages, bytes) = (messages as u64, bytes as u64);
        let token = token.map(|t| (t.sub.as_str(), Rates::per_token(&self.config, &t.limits)));
        // Both limits are charged on copies, kept only when both admit: a refusal takes nothing.
        let mut connection = conn
            .filter(|_| !connection_rates.is_unlimited())
            .and_then(|conn| self.sessions.get_mut(conn))
            .map(|session| session.limiter.clone().unwrap_or_else(|| Limiter::new(connection_rates, now)));
        let mut per_token = token.filter(|(_, rates)| !rates.is_unlimited()).map(|(sub, rates)| {
            let mut limiter = self.token_limiters.get(sub).cloned().unwrap_or_else(|| Limiter::new(rates, now));
            limiter.set_rates(rates);
            limiter
        });
        let wait = [connection.as_mut(), per_token.as_mut()].into_iter().flatten().filter_map(|l| l.admit(messages, bytes, now).err()).max();
        if let Some(wait) = wait {
            return Err(ProtocolError::rate_limited(
                format!("publish rate limit reached; nothing was stored, try again in {wait} ms"),
                wait,
            ));
        }
        if let Some(session) = conn.and_then(|conn| self.sessions.get_mut(conn)).filter(|_| connection.is_some()) {
            session.limiter = connection;
        }
        if let (Some(limiter), Some((sub, _))) = (per_token, token) {
            if self.token_limiters.len() >= MAX_TOKEN_LIMITERS {
                self.token_limiters.retain(|_, l| !l.is_idle(now));
            }
            self.token_limiters.insert(sub.to_owned(), limiter);
        }
        Ok(())
    }
}
