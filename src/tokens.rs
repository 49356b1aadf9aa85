//! Token administration (the router lets only the API key through): `POST /v1/tokens` mints an HS256 token with
//! `TOKEN_SECRET`, `POST /v1/tokens/revoke` revokes tokens, `GET /v1/tokens/revocations` lists
//! the revocations in force (docs/PROTOCOL.md § Access tokens).

use crate::auth;
use crate::body::read_limited;
use crate::http::{json_response, Failure};
use crate::random::random_hex;
use crate::revocations;
use durable_stream_protocol::token::jwt::{sign, SigningKeyMaterial};
use durable_stream_protocol::token::{Claims, Limits, Revocation};
use durable_stream_protocol::{strict_json, ProtocolError};
use serde::Deserialize;
use serde_json::{json, Value};
use std::rc::Rc;
use worker::{Date, Env, Request, Response};

/// Largest mint or revoke request body.
const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MintRequest {
    sub: String,
    /// Lifetime in seconds.
    ttl: u64,
    #[serde(default)]
    allow: Vec<Value>,
    #[serde(default)]
    deny: Vec<Value>,
    #[serde(default)]
    limits: Option<Limits>,
}

async fn read_json(req: &mut Request) -> Result<String, Failure> {
    let body = read_limited(req, MAX_BODY_BYTES).await?;
    let text = String::from_utf8(body).map_err(|_| ProtocolError::bad_request("body must be UTF-8 JSON"))?;
    strict_json::validate(&text, 16).map_err(|e| ProtocolError::bad_request(e.to_string()))?;
    Ok(text)
}

/// `POST /v1/tokens`: `{"sub","ttl","allow","deny","limits"}` → `{"token","exp","jti"}`.
pub async fn mint(mut req: Request, env: &Env) -> Result<Response, Failure> {
    let Some(secret) = auth::secret(env, "TOKEN_SECRET").filter(|s| !s.is_empty()) else {
        return Err(ProtocolError::bad_request(
            "this server cannot mint tokens: set TOKEN_SECRET (wrangler secret put TOKEN_SECRET), or mint EdDSA tokens in your own service",
        )
        .into());
    };
    let request: MintRequest = serde_json::from_str(&read_json(&mut req).await?).map_err(|e| {
        ProtocolError::bad_request(format!("token request must be {{\"sub\",\"ttl\",\"allow\",\"deny\",\"limits\"}}: {e}"))
    })?;
    let config = auth::config(env)?;
    if request.ttl == 0 || request.ttl > config.token_max_lifetime_s {
        return Err(ProtocolError::bad_request(format!(
            "ttl must be 1 to {} seconds (TOKEN_MAX_LIFETIME_S)",
            config.token_max_lifetime_s
        ))
        .into());
    }
    let iat = auth::now_s();
    let exp = iat + request.ttl;
    let jti = random_hex(16);
    let mut claims = json!({ "sub": request.sub, "iat": iat, "exp": exp, "jti": jti, "allow": request.allow, "deny": request.deny });
    if let Some(limits) = request.limits {
        claims["limits"] = serde_json::to_value(limits).unwrap_or_default();
    }
    // The same checks a verifying server makes, so a minted token is never refused for its shape.
    Claims::parse(&claims.to_string()).map_err(|e| ProtocolError::bad_request(format!("token request: {e}")))?;
    let token = sign(&claims, &SigningKeyMaterial::Hs256 { secret: secret.as_bytes() });
    Ok(json_response(201, &json!({ "token": token, "exp": exp, "jti": jti }))?)
}

/// `POST /v1/tokens/revoke`: `{"jti"}` or `{"sub","issuedBefore"}`.
pub async fn revoke(mut req: Request, env: &Env) -> Result<Response, Failure> {
    let config = auth::config(env)?;
    let revocation = Revocation::from_request(&read_json(&mut req).await?, Date::now().as_millis(), config.token_max_lifetime_s)?;
    let list = revocations::add(env, &revocation).await?;
    let version = list.version;
    auth::remember_revocations(Rc::new(list));
    Ok(json_response(200, &json!({ "revoked": revocation, "version": version }))?)
}

/// `GET /v1/tokens/revocations`.
pub async fn list_revocations(env: &Env) -> Result<Response, Failure> {
    let list = revocations::fetch(env).await?;
    Ok(json_response(200, &serde_json::to_value(&list).unwrap_or_default())?)
}
