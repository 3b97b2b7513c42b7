//! Short-lived access JWTs (HS256, key derived from the master secret).

use chrono::Utc;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::secrets::derive_key;

/// What an access token says.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    pub sub: i64,
    /// Role at issue time (informational: every request re-reads the user).
    pub role: String,
    /// Issued at (unix seconds).
    pub iat: i64,
    /// Expires at (unix seconds).
    pub exp: i64,
    /// The session it belongs to: it stops when that ends. Tokens from before
    /// sessions existed have none and are refused.
    #[serde(default)]
    pub sid: Option<i64>,
}

/// Signing and checking keys.
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    ttl_secs: i64,
}

impl JwtKeys {
    /// Keys derived from the master secret; tokens live `ttl_secs`.
    pub fn new(master: &str, ttl_secs: u64) -> Self {
        let key = derive_key(master, "jwt/v1");
        JwtKeys {
            encoding: EncodingKey::from_secret(&key),
            decoding: DecodingKey::from_secret(&key),
            ttl_secs: ttl_secs as i64,
        }
    }

    /// Lifetime of issued tokens, in seconds.
    pub fn ttl_secs(&self) -> i64 {
        self.ttl_secs
    }

    /// Issue an access token for a user's session.
    pub fn issue(&self, user_id: i64, role: &str, session_id: i64) -> String {
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: user_id,
            role: role.to_string(),
            iat: now,
            exp: now + self.ttl_secs,
            sid: Some(session_id),
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).expect("HS256 signing cannot fail")
    }

    /// Check a token's signature and expiry.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        decode::<Claims>(token, &self.decoding, &validation)
            .ok()
            .map(|d| d.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_only_under_the_same_secret() {
        let keys = JwtKeys::new("a", 60);
        let token = keys.issue(7, "user", 1);
        assert_eq!(keys.verify(&token).unwrap().sub, 7);
        assert!(JwtKeys::new("b", 60).verify(&token).is_none());
        assert!(keys.verify("not.a.jwt").is_none());
    }

    #[test]
    fn expired_tokens_are_refused() {
        let keys = JwtKeys::new("a", 0);
        let token = keys.issue(7, "user", 1);
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert!(keys.verify(&token).is_none());
    }
}
