//! Sign-in rate limits: failed attempts are recorded per account name and
//! per client address; past a limit within the window, sign-in is refused
//! (even with the right password) until old failures leave the window.

use sqlx::AnyPool;

use crate::db::now_ms;
use crate::error::Result;

pub const WINDOW_MS: i64 = 15 * 60 * 1000;
/// Failures for one account name within the window.
pub const PER_ACCOUNT: i64 = 5;
/// Failures from one address within the window: higher, as one address
/// may be a whole site behind NAT.
pub const PER_CLIENT: i64 = 20;

/// Account names are compared as typed, in lower case (names are lower case).
fn account_key(account: &str) -> String {
    account.trim().to_lowercase()
}

/// When sign-in is blocked: the seconds until the next attempt may be made.
pub async fn blocked_for(db: &AnyPool, account: &str, client: &str) -> Result<Option<u64>> {
    let now = now_ms();
    let since = now - WINDOW_MS;
    let mut wait_ms: Option<i64> = None;
    for (column, key, limit) in [
        ("account", account_key(account), PER_ACCOUNT),
        ("client", client.to_string(), PER_CLIENT),
    ] {
        // The failure that must leave the window before one more attempt is
        // allowed: the limit-th most recent.
        let nth: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT at FROM login_failures WHERE {column} = $1 AND at > $2
             ORDER BY at DESC LIMIT 1 OFFSET $3"
        ))
        .bind(&key)
        .bind(since)
        .bind(limit - 1)
        .fetch_optional(db)
        .await?;
        if let Some(at) = nth {
            let w = at + WINDOW_MS - now;
            wait_ms = Some(wait_ms.map_or(w, |x| x.max(w)));
        }
    }
    Ok(wait_ms.map(|ms| (ms.max(1000) as u64).div_ceil(1000)))
}

pub async fn record_failure(db: &AnyPool, account: &str, client: &str) -> Result<()> {
    let now = now_ms();
    sqlx::query("DELETE FROM login_failures WHERE at <= $1")
        .bind(now - WINDOW_MS)
        .execute(db)
        .await?;
    sqlx::query("INSERT INTO login_failures (account, client, at) VALUES ($1, $2, $3)")
        .bind(account_key(account))
        .bind(client)
        .bind(now)
        .execute(db)
        .await?;
    Ok(())
}

/// A successful sign-in forgets the account's failures (not the address's).
pub async fn clear_account(db: &AnyPool, account: &str) -> Result<()> {
    sqlx::query("DELETE FROM login_failures WHERE account = $1")
        .bind(account_key(account))
        .execute(db)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Database;

    #[tokio::test]
    async fn the_limit_blocks_per_account_and_per_address() {
        let tmp = tempfile::tempdir().unwrap();
        let db = Database::connect(&format!("sqlite://{}/t.db", tmp.path().display()))
            .await
            .unwrap();
        db.migrate().await.unwrap();
        let p = &db.pool;
        for _ in 0..PER_ACCOUNT - 1 {
            record_failure(p, "Alice", "10.0.0.1").await.unwrap();
        }
        assert_eq!(blocked_for(p, "alice", "10.0.0.2").await.unwrap(), None);
        record_failure(p, "alice", "10.0.0.1").await.unwrap();
        let wait = blocked_for(p, "alice", "10.0.0.2").await.unwrap().unwrap();
        assert!(wait > 800 && wait <= 900, "{wait}");
        assert_eq!(blocked_for(p, "bob", "10.0.0.2").await.unwrap(), None);
        clear_account(p, "alice").await.unwrap();
        assert_eq!(blocked_for(p, "alice", "10.0.0.2").await.unwrap(), None);

        for i in 0..PER_CLIENT {
            record_failure(p, &format!("u{i}"), "10.0.0.9")
                .await
                .unwrap();
        }
        assert!(blocked_for(p, "carol", "10.0.0.9").await.unwrap().is_some());
        assert_eq!(blocked_for(p, "carol", "10.0.0.8").await.unwrap(), None);
    }
}
