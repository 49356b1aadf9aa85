//! What one request or connection may do on one subject: the Worker works it out from the
//! credentials and hands it to the subject's Durable Object, which keeps it with each socket.

use super::claims::{Actions, Claims, Limits};
use serde::{Deserialize, Serialize};

/// The token a grant came from (absent for the API key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenInfo {
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Expiry in seconds since the epoch.
    pub exp: u64,
    #[serde(default)]
    pub limits: Limits,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grant {
    pub actions: Actions,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<TokenInfo>,
}

impl Grant {
    /// The API key: every action, no expiry.
    pub fn master() -> Grant {
        Grant { actions: Actions::ALL_SUBJECT, token: None }
    }

    pub fn for_token(claims: &Claims, subject: &str) -> Grant {
        Grant {
            actions: claims.subject_actions(subject),
            token: Some(TokenInfo {
                sub: claims.sub.clone(),
                jti: claims.jti.clone(),
                iat: claims.iat,
                exp: claims.exp,
                limits: claims.limits,
            }),
        }
    }

    pub fn allows(&self, action: Actions) -> bool {
        self.actions.contains(action)
    }

    /// When the grant stops being valid, in ms since the epoch.
    pub fn expires_at_ms(&self) -> Option<u64> {
        self.token.as_ref().map(|t| t.exp.saturating_mul(1000))
    }

    /// The claims a revocation is checked against.
    pub fn revocation_claims(&self) -> Option<Claims> {
        let token = self.token.as_ref()?;
        Some(Claims {
            sub: token.sub.clone(),
            exp: token.exp,
            nbf: None,
            iat: token.iat,
            jti: token.jti.clone(),
            allow: Vec::new(),
            deny: Vec::new(),
            limits: token.limits,
        })
    }

    /// Ok when the grant covers every action in `needed`; else `forbidden` naming the first
    /// missing action and the subject.
    pub fn require(&self, needed: Actions, subject: &str) -> Result<(), crate::ProtocolError> {
        let Some(missing) = needed.each().find(|action| !self.allows(*action)) else { return Ok(()) };
        let who = self.token.as_ref().map_or("this credential".to_string(), |t| format!("the token of {:?}", t.sub));
        Err(crate::ProtocolError::forbidden(format!(
            "{who} does not grant {} on subject {subject:?}; ask for a token that allows it",
            missing.name()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_grant_is_what_the_claims_allow_on_that_subject() {
        let claims = Claims::parse(
            r#"{"sub":"web","exp":2000,"iat":1000,"jti":"j","allow":[{"subjects":["orders.*"],"actions":["sub"]}],"limits":{"pubRate":5}}"#,
        )
        .unwrap();
        let grant = Grant::for_token(&claims, "orders.eu");
        assert!(grant.allows(Actions::SUB) && !grant.allows(Actions::PUB));
        assert_eq!(grant.expires_at_ms(), Some(2_000_000));
        assert!(Grant::for_token(&claims, "payments").actions.is_empty());
        let round_trip: Grant = serde_json::from_str(&serde_json::to_string(&grant).unwrap()).unwrap();
        assert_eq!(round_trip, grant);
        assert_eq!(round_trip.revocation_claims().unwrap().jti.as_deref(), Some("j"));
        assert_eq!(grant.require(Actions::SUB, "orders.eu"), Ok(()));
        let refusal = grant.require(Actions::SUB.union(Actions::PUB), "orders.eu").unwrap_err().message;
        assert!(refusal.contains("\"web\"") && refusal.contains("pub") && refusal.contains("orders.eu"), "{refusal}");
    }

    #[test]
    fn the_master_grant_has_every_subject_action_and_no_expiry() {
        let master = Grant::master();
        assert!(master.allows(Actions::ADMIN) && master.allows(Actions::STATE));
        assert_eq!(master.expires_at_ms(), None);
        assert!(master.revocation_claims().is_none());
    }
}
