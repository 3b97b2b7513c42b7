//! Passwords: argon2id hashes, verified off the async threads (hashing is
//! deliberately slow).

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

use crate::error::ApiError;

/// Shortest password accepted.
pub const MIN_LEN: usize = 10;

/// A password that passed the policy; only constructible through [`NewPassword::parse`].
pub struct NewPassword(String);

impl NewPassword {
    /// Check the policy: at least [`MIN_LEN`] characters, not all the same.
    /// `param` names the field it came in, for the error.
    pub fn parse(password: String, param: &'static str) -> Result<NewPassword, ApiError> {
        if password.chars().count() < MIN_LEN {
            return Err(ApiError::invalid(
                param,
                format!("{param} must be at least {MIN_LEN} characters"),
            ));
        }
        if password.chars().all(|c| password.starts_with(c)) {
            return Err(ApiError::invalid(
                param,
                format!("{param} must not repeat one character"),
            ));
        }
        Ok(NewPassword(password))
    }

    /// Hash it (argon2id, random salt).
    pub async fn hash(self) -> Result<String, ApiError> {
        actix_web::web::block(move || {
            let salt = SaltString::generate(&mut OsRng);
            Argon2::default()
                .hash_password(self.0.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))
        })
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("{e}")))?
        .map_err(ApiError::Internal)
    }
}

/// Whether `password` matches the stored `hash`.
pub async fn verify(password: String, hash: Option<String>) -> bool {
    let Some(hash) = hash else {
        // Spend the same time as a real check, so timing does not reveal accounts.
        let _ = actix_web::web::block(move || {
            let salt = SaltString::generate(&mut OsRng);
            Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .is_ok()
        })
        .await;
        return false;
    };
    actix_web::web::block(move || {
        PasswordHash::new(&hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}
