//! Passwords: argon2id hashes in PHC strings, checked by the `argon2` crate
//! (in constant time), off the async threads because hashing is slow on
//! purpose.

use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use sqlx::AnyPool;

use crate::error::{Error, Result};

/// Shorter passwords are refused; longer than the maximum is refused too, so
/// that nobody can make the server hash megabytes.
pub const MIN_LEN: usize = 8;
pub const MAX_LEN: usize = 1024;

/// Why a password is not acceptable, in words a user can act on.
pub fn check_strength(password: &str) -> Result<()> {
    let n = password.chars().count();
    if n < MIN_LEN {
        return Err(Error::BadRequest(format!(
            "the password must have at least {MIN_LEN} characters"
        )));
    }
    if password.len() > MAX_LEN {
        return Err(Error::BadRequest(format!(
            "the password must have at most {MAX_LEN} bytes"
        )));
    }
    Ok(())
}

/// The PHC string of a new argon2id hash with a random salt.
pub fn hash(password: &str) -> Result<String> {
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes)
        .map_err(|e| Error::Internal(format!("password salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Internal(format!("password hashing: {e}")))
}

/// Whether `password` matches the PHC string `phc`; a damaged string never
/// matches.
pub fn verify(password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        tracing::warn!("a stored password hash is not a valid PHC string");
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// A hash that no password is known for, checked when the account does not
/// exist, so that the answer takes as long as for a wrong password.
static DECOY: LazyLock<String> = LazyLock::new(|| {
    let random: [u8; 32] = rand::random();
    hash(&hex::encode(random)).unwrap_or_default()
});

/// Checks a password against an account's stored hash (or, without one,
/// against the decoy), on a blocking thread.
pub async fn verify_blocking(password: String, phc: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || match phc {
        Some(phc) => verify(&password, &phc),
        None => {
            let _ = verify(&password, &DECOY);
            false
        }
    })
    .await
    .unwrap_or(false)
}

/// Sets a user's password (hashing on a blocking thread) and ends the
/// user's sessions, so that a changed password locks out whoever knew the
/// old one.
pub async fn set(db: &AnyPool, user_id: i64, password: &str) -> Result<()> {
    check_strength(password)?;
    let owned = password.to_string();
    let phc = tokio::task::spawn_blocking(move || hash(&owned))
        .await
        .map_err(|e| Error::Internal(format!("password hashing task: {e}")))??;
    let mut tx = db.begin().await?;
    sqlx::query("UPDATE users SET password_hash = $1 WHERE entity_id = $2")
        .bind(&phc)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM sessions WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// The stored hash of a user's password, if they have one.
pub async fn stored(db: &AnyPool, user_id: i64) -> Result<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT password_hash FROM users WHERE entity_id = $1")
            .bind(user_id)
            .fetch_optional(db)
            .await?
            .flatten(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_salted_phc_strings_that_verify_only_the_right_password() {
        let a = hash("correct horse").unwrap();
        let b = hash("correct horse").unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(verify("correct horse", &a));
        assert!(!verify("correct horsE", &a));
        assert!(!verify("correct horse", "not a phc string"));
    }

    #[test]
    fn short_and_huge_passwords_are_refused() {
        assert!(check_strength("1234567").is_err());
        assert!(check_strength("12345678").is_ok());
        assert!(check_strength(&"x".repeat(MAX_LEN + 1)).is_err());
    }
}
