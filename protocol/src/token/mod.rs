//! Access tokens: JWTs signed with HS256 or EdDSA whose claims grant actions on subjects and
//! files (docs/PROTOCOL.md § Access tokens).

pub mod claims;
pub mod grant;
pub mod jwt;
pub mod pattern;
pub mod revocation;

pub use claims::{Actions, Claims, Limits};
pub use grant::{Grant, TokenInfo};
pub use jwt::{check_times, TokenError, TokenKeys};
pub use revocation::{Revocation, RevocationList};

use crate::{ErrorCode, ProtocolError};

/// Close code of a socket whose token expired without an in-band refresh.
pub const TOKEN_EXPIRED_CLOSE_CODE: u16 = 4401;
/// Close code of a socket whose token was revoked.
pub const TOKEN_REVOKED_CLOSE_CODE: u16 = 4403;

impl From<TokenError> for ProtocolError {
    fn from(error: TokenError) -> Self {
        let code = if error == TokenError::Expired { ErrorCode::TokenExpired } else { ErrorCode::Unauthorized };
        ProtocolError::new(code, error.to_string())
    }
}
