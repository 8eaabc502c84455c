//! API tokens: named, several per user, optional expiry, revocable, with a
//! last-used time. Only a SHA-256 of each token is stored.
//!
//! A token is `sreg_` + 8 characters of lookup prefix + 32 secret
//! characters. The prefix finds the row; the hash of the whole token is then
//! compared in constant time, so response times say nothing about the secret.
//!
//! Each token is also stored sealed with the server's key (see `sealing`),
//! for sregistry-cli, whose HMAC signatures are keyed by the token itself.
//! The sealed value is bound to its user, so that it cannot be copied to
//! another user's row.

use rand::distr::{Alphanumeric, SampleString};
use sha2::{Digest, Sha256};
use sqlx::{AnyPool, FromRow};
use subtle::ConstantTimeEq;

use crate::db::now_ms;
use crate::error::{Error, Result};
use crate::model::accounts::{self, User};
use crate::sealing::Keys;

const SCHEME: &str = "sreg_";
const PREFIX_LEN: usize = SCHEME.len() + 8;
const TOKEN_LEN: usize = PREFIX_LEN + 32;
/// last_used_at is written at most this often per token (ms), to keep reads read-only.
const TOUCH_EVERY_MS: i64 = 60_000;

#[derive(Debug, Clone, FromRow)]
pub struct Token {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub prefix: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

const COLUMNS: &str = "id, user_id, name, prefix, created_at, expires_at, last_used_at, revoked_at";

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// What a sealed token is bound to.
fn seal_context(user_id: i64) -> Vec<u8> {
    format!("sreg token of user {user_id}").into_bytes()
}

/// Creates a token and returns it in clear, the only time it is ever seen.
pub async fn create(
    db: &AnyPool,
    keys: &Keys,
    user_id: i64,
    name: &str,
    expires_at: Option<i64>,
) -> Result<(String, Token)> {
    if name.trim().is_empty() || name.len() > 100 {
        return Err(Error::BadRequest(
            "a token name has 1 to 100 characters".into(),
        ));
    }
    let secret = Alphanumeric.sample_string(&mut rand::rng(), TOKEN_LEN - SCHEME.len());
    let token = format!("{SCHEME}{secret}");
    let sealed = keys.seal(token.as_bytes(), &seal_context(user_id));
    let row: Token = sqlx::query_as(&format!(
        "INSERT INTO tokens (user_id, name, token_hash, prefix, sealed, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
    ))
    .bind(user_id)
    .bind(name)
    .bind(hash(&token))
    .bind(&token[..PREFIX_LEN])
    .bind(sealed)
    .bind(now_ms())
    .bind(expires_at)
    .fetch_one(db)
    .await?;
    Ok((token, row))
}

/// The user a token belongs to, if the token is valid now: known, not
/// revoked, not expired, and its user active.
pub async fn authenticate(db: &AnyPool, token: &str) -> Result<Option<(User, Token)>> {
    if token.len() != TOKEN_LEN || !token.starts_with(SCHEME) || !token.is_ascii() {
        return Ok(None);
    }
    let candidates: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, token_hash FROM tokens WHERE prefix = $1")
            .bind(&token[..PREFIX_LEN])
            .fetch_all(db)
            .await?;
    let presented = hash(token);
    let Some(id) = candidates
        .iter()
        .find(|(_, stored)| bool::from(stored.as_bytes().ct_eq(presented.as_bytes())))
        .map(|(id, _)| *id)
    else {
        return Ok(None);
    };
    let row: Token = sqlx::query_as(&format!("SELECT {COLUMNS} FROM tokens WHERE id = $1"))
        .bind(id)
        .fetch_one(db)
        .await?;
    let now = now_ms();
    if row.revoked_at.is_some() || row.expires_at.is_some_and(|e| e <= now) {
        return Ok(None);
    }
    let user = accounts::user_by_id(db, row.user_id).await?;
    if user.active == 0 {
        return Ok(None);
    }
    touch(db, id, now).await?;
    Ok(Some((user, row)))
}

/// Records a use of a token, at most once a minute.
async fn touch(db: &AnyPool, id: i64, now: i64) -> Result<()> {
    sqlx::query(
        "UPDATE tokens SET last_used_at = $1
         WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $3)",
    )
    .bind(now)
    .bind(id)
    .bind(now - TOUCH_EVERY_MS)
    .execute(db)
    .await?;
    Ok(())
}

/// The first of the user's tokens valid now (not revoked, not expired,
/// sealed) for which `accepts` holds, given the token in clear. For
/// signatures keyed by the token: `accepts` recomputes the signature with
/// each candidate and compares in constant time. The caller checks that the
/// user is active.
pub async fn find_active_sealed(
    db: &AnyPool,
    keys: &Keys,
    user_id: i64,
    accepts: impl Fn(&[u8]) -> bool,
) -> Result<Option<Token>> {
    let now = now_ms();
    let candidates: Vec<(i64, String)> = sqlx::query_as(
        "SELECT id, sealed FROM tokens
         WHERE user_id = $1 AND sealed IS NOT NULL AND revoked_at IS NULL
           AND (expires_at IS NULL OR expires_at > $2)
         ORDER BY id",
    )
    .bind(user_id)
    .bind(now)
    .fetch_all(db)
    .await?;
    let context = seal_context(user_id);
    let found = candidates.iter().find_map(|(id, sealed)| {
        let token = keys.unseal(sealed, &context)?;
        accepts(&token).then_some(*id)
    });
    let Some(id) = found else {
        return Ok(None);
    };
    touch(db, id, now).await?;
    let row = sqlx::query_as(&format!("SELECT {COLUMNS} FROM tokens WHERE id = $1"))
        .bind(id)
        .fetch_one(db)
        .await?;
    Ok(Some(row))
}

pub async fn list(db: &AnyPool, user_id: i64) -> Result<Vec<Token>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM tokens WHERE user_id = $1 ORDER BY id"
    ))
    .bind(user_id)
    .fetch_all(db)
    .await?)
}

/// Revokes one of the user's tokens; revoking twice is not an error.
pub async fn revoke(db: &AnyPool, user_id: i64, token_id: i64) -> Result<()> {
    let done = sqlx::query(
        "UPDATE tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2 AND user_id = $3",
    )
    .bind(now_ms())
    .bind(token_id)
    .bind(user_id)
    .execute(db)
    .await?;
    if done.rows_affected() == 0 {
        return Err(Error::not_found(format!("token {token_id}")));
    }
    Ok(())
}
