//! Tokens are stored hashed and sealed with the server's key: the sealed
//! value opens only with that key, for that user, and only while the token
//! is valid. On SQLite and on a real PostgreSQL.

use registry_server::db::{Database, now_ms};
use registry_server::model::{accounts, tokens};
use registry_server::sealing::Keys;
use sreg_tests::postgres::Postgres;

async fn scenario(db: &Database) {
    let pool = &db.pool;
    let keys = Keys::from_master(&[3; 32]);
    let alice = accounts::create_user(pool, "alice", "", false)
        .await
        .unwrap();
    let bob = accounts::create_user(pool, "bob", "", false).await.unwrap();
    let (token, row) = tokens::create(pool, &keys, alice.id, "ci", None)
        .await
        .unwrap();

    // What the database holds is neither the token nor anything derived
    // from it without the key.
    let (sealed, hash): (Option<String>, String) =
        sqlx::query_as("SELECT sealed, token_hash FROM tokens WHERE id = $1")
            .bind(row.id)
            .fetch_one(pool)
            .await
            .unwrap();
    let sealed = sealed.expect("new tokens are sealed");
    assert!(!sealed.contains(&token[5..]), "token stored in clear");
    assert!(!sealed.contains(&hex::encode(token.as_bytes())));
    assert_ne!(sealed, hash);

    let is_token = |t: &[u8]| t == token.as_bytes();
    let found = tokens::find_active_sealed(pool, &keys, alice.id, is_token)
        .await
        .unwrap()
        .expect("the right key opens it");
    assert_eq!(found.id, row.id);
    assert!(found.last_used_at.is_some(), "use recorded");
    // Another key (a database restored next to another server's key file).
    let wrong = Keys::from_master(&[4; 32]);
    assert!(
        tokens::find_active_sealed(pool, &wrong, alice.id, is_token)
            .await
            .unwrap()
            .is_none()
    );
    // Moved to another user's row, the sealed value does not open.
    sqlx::query("UPDATE tokens SET user_id = $1 WHERE id = $2")
        .bind(bob.id)
        .bind(row.id)
        .execute(pool)
        .await
        .unwrap();
    assert!(
        tokens::find_active_sealed(pool, &keys, bob.id, |_| true)
            .await
            .unwrap()
            .is_none()
    );
    sqlx::query("UPDATE tokens SET user_id = $1 WHERE id = $2")
        .bind(alice.id)
        .bind(row.id)
        .execute(pool)
        .await
        .unwrap();

    // Revoked and expired tokens never verify, even with the right key.
    tokens::revoke(pool, alice.id, row.id).await.unwrap();
    assert!(
        tokens::find_active_sealed(pool, &keys, alice.id, |_| true)
            .await
            .unwrap()
            .is_none()
    );
    let (old, _) = tokens::create(pool, &keys, alice.id, "old", Some(now_ms() - 1))
        .await
        .unwrap();
    assert!(
        tokens::find_active_sealed(pool, &keys, alice.id, |t| t == old.as_bytes())
            .await
            .unwrap()
            .is_none()
    );
    // A valid one among them is found.
    let (fresh, fresh_row) = tokens::create(pool, &keys, alice.id, "new", Some(now_ms() + 60_000))
        .await
        .unwrap();
    let found = tokens::find_active_sealed(pool, &keys, alice.id, |t| t == fresh.as_bytes())
        .await
        .unwrap()
        .expect("valid token");
    assert_eq!(found.id, fresh_row.id);
}

#[tokio::test]
async fn sealed_tokens_on_sqlite() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Database::connect(&format!("sqlite://{}/t.db", tmp.path().display()))
        .await
        .unwrap();
    db.migrate().await.unwrap();
    scenario(&db).await;
}

#[tokio::test]
async fn sealed_tokens_on_postgres() {
    let pg = Postgres::start();
    let db = Database::connect(&pg.url).await.unwrap();
    db.migrate().await.unwrap();
    scenario(&db).await;
}
