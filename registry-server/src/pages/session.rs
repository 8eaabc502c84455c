//! Browser sessions: a random id in an HttpOnly cookie, of which the
//! database keeps only a SHA-256, with a server-side expiry. The `Visitor`
//! extractor turns the cookie into a `Caller`, so that pages apply the same
//! access rules as every protocol.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use cookie::{Cookie, SameSite};
use rand::distr::{Alphanumeric, SampleString};
use sha2::{Digest, Sha256};
use sqlx::AnyPool;

use super::PageError;
use crate::db::now_ms;
use crate::error::Result;
use crate::model::access::Caller;
use crate::model::accounts::{self, User};
use crate::serve::AppState;

pub const SESSION_COOKIE: &str = "sreg_session";
/// The anonymous visitor's random value that form tokens are bound to
/// before sign-in (see `csrf`).
pub const CSRF_COOKIE: &str = "sreg_csrf";
/// A session ends this long after sign-in, whatever happens meanwhile.
pub const SESSION_TTL_MS: i64 = 7 * 24 * 60 * 60 * 1000;
/// last_seen_at is written at most this often per session (ms).
const TOUCH_EVERY_MS: i64 = 60_000;

fn hash(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

fn new_secret() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 43)
}

/// Who is looking at a page.
#[derive(Debug, Clone)]
pub struct Visitor {
    pub caller: Caller,
    /// The session id from the cookie, when it names a live session.
    pub session: Option<String>,
    /// The anonymous form-binding value: from the cookie, or new (then
    /// `csrf_cookie_is_new` says that the response must set it).
    pub anon: String,
    pub csrf_cookie_is_new: bool,
    /// The client's address, for rate limits.
    pub client: Option<IpAddr>,
}

impl Visitor {
    /// An anonymous visitor without cookies.
    pub fn nobody() -> Self {
        Self {
            caller: Caller::anonymous(),
            session: None,
            anon: new_secret(),
            csrf_cookie_is_new: true,
            client: None,
        }
    }

    pub fn user(&self) -> Option<&User> {
        self.caller.user.as_ref()
    }

    /// What this visitor's form tokens are bound to: the session once signed
    /// in, the anonymous cookie before.
    pub fn csrf_binding(&self) -> &str {
        self.session.as_deref().unwrap_or(&self.anon)
    }

    pub fn client_key(&self) -> String {
        self.client
            .map(|a| a.to_string())
            .unwrap_or_else(|| "unknown".into())
    }
}

fn cookies(headers: &HeaderMap) -> impl Iterator<Item = Cookie<'static>> + '_ {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| Cookie::split_parse(v.to_string()).filter_map(|c| c.ok()))
}

pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    cookies(headers)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_string())
        .filter(|v| !v.is_empty())
}

impl FromRequestParts<AppState> for Visitor {
    type Rejection = PageError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> std::result::Result<Self, Self::Rejection> {
        let client = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(a)| a.ip());
        let mut session = None;
        let mut caller = Caller::anonymous();
        if let Some(id) = cookie_value(&parts.headers, SESSION_COOKIE)
            && let Some(user) = user_of_session(&state.db.pool, &id).await?
        {
            caller = Caller::user(user);
            session = Some(id);
        }
        let (anon, csrf_cookie_is_new) = match cookie_value(&parts.headers, CSRF_COOKIE) {
            Some(v) => (v, false),
            None => (new_secret(), true),
        };
        Ok(Visitor {
            caller,
            session,
            anon,
            csrf_cookie_is_new,
            client,
        })
    }
}

/// The active user of a live session, touching its last-seen time.
async fn user_of_session(db: &AnyPool, id: &str) -> Result<Option<User>> {
    let now = now_ms();
    let row: Option<(i64, i64)> = sqlx::query_as(
        "SELECT s.user_id, s.last_seen_at FROM sessions s JOIN users u ON u.entity_id = s.user_id
         WHERE s.id_hash = $1 AND s.expires_at > $2 AND u.active = 1",
    )
    .bind(hash(id))
    .bind(now)
    .fetch_optional(db)
    .await?;
    let Some((user_id, last_seen)) = row else {
        return Ok(None);
    };
    if now - last_seen > TOUCH_EVERY_MS {
        sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id_hash = $2")
            .bind(now)
            .bind(hash(id))
            .execute(db)
            .await?;
    }
    Ok(Some(accounts::user_by_id(db, user_id).await?))
}

/// Starts a session for a user and returns its id (shown only in the
/// cookie). Expired sessions are swept on the way.
pub async fn create(db: &AnyPool, user_id: i64) -> Result<String> {
    let id = new_secret();
    let now = now_ms();
    sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
        .bind(now)
        .execute(db)
        .await?;
    sqlx::query(
        "INSERT INTO sessions (id_hash, user_id, created_at, expires_at, last_seen_at)
         VALUES ($1, $2, $3, $4, $3)",
    )
    .bind(hash(&id))
    .bind(user_id)
    .bind(now)
    .bind(now + SESSION_TTL_MS)
    .execute(db)
    .await?;
    Ok(id)
}

/// Ends a session.
pub async fn end(db: &AnyPool, id: &str) -> Result<()> {
    sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
        .bind(hash(id))
        .execute(db)
        .await?;
    Ok(())
}

/// Whether cookies must be `Secure`: when people reach the registry over
/// https.
fn secure(state: &AppState) -> bool {
    state.config.public_url.scheme() == "https"
}

fn set_cookie(headers: &mut HeaderMap, c: Cookie<'_>) {
    if let Ok(v) = HeaderValue::from_str(&c.to_string()) {
        headers.append(SET_COOKIE, v);
    }
}

fn base(name: &'static str, value: String, state: &AppState) -> Cookie<'static> {
    Cookie::build((name, value))
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure(state))
        .path("/")
        .build()
}

pub fn set_session_cookie(headers: &mut HeaderMap, state: &AppState, id: String) {
    let mut c = base(SESSION_COOKIE, id, state);
    c.set_max_age(cookie::time::Duration::milliseconds(SESSION_TTL_MS));
    set_cookie(headers, c);
}

pub fn clear_session_cookie(headers: &mut HeaderMap, state: &AppState) {
    let mut c = base(SESSION_COOKIE, String::new(), state);
    c.make_removal();
    set_cookie(headers, c);
}

/// Sets the anonymous form-binding cookie when the visitor had none (a
/// browser-session cookie).
pub fn set_csrf_cookie_if_new(headers: &mut HeaderMap, state: &AppState, v: &Visitor) {
    if v.csrf_cookie_is_new {
        set_cookie(headers, base(CSRF_COOKIE, v.anon.clone(), state));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_read_from_every_cookie_header() {
        let mut h = HeaderMap::new();
        h.append(COOKIE, "a=1; sreg_session=abc".parse().unwrap());
        h.append(COOKIE, "sreg_csrf=xyz".parse().unwrap());
        assert_eq!(cookie_value(&h, SESSION_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie_value(&h, CSRF_COOKIE).as_deref(), Some("xyz"));
        assert_eq!(cookie_value(&h, "nope"), None);
    }

    #[tokio::test]
    async fn sessions_end_at_their_expiry_on_logout_and_when_the_user_is_disabled() {
        let tmp = tempfile::tempdir().unwrap();
        let db = crate::db::Database::connect(&format!("sqlite://{}/t.db", tmp.path().display()))
            .await
            .unwrap();
        db.migrate().await.unwrap();
        let p = &db.pool;
        let alice = accounts::create_user(p, "alice", "", false).await.unwrap();
        let id = create(p, alice.id).await.unwrap();
        let stored: String = sqlx::query_scalar("SELECT id_hash FROM sessions")
            .fetch_one(p)
            .await
            .unwrap();
        assert_eq!(stored, hash(&id), "only the hash is stored");
        assert_eq!(
            user_of_session(p, &id).await.unwrap().unwrap().name,
            "alice"
        );
        assert!(user_of_session(p, "guessed").await.unwrap().is_none());

        sqlx::query("UPDATE sessions SET expires_at = $1")
            .bind(now_ms() - 1)
            .execute(p)
            .await
            .unwrap();
        assert!(user_of_session(p, &id).await.unwrap().is_none(), "expired");

        let id = create(p, alice.id).await.unwrap();
        let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sessions")
            .fetch_one(p)
            .await
            .unwrap();
        assert_eq!(left, 1, "expired sessions are swept");
        sqlx::query("UPDATE users SET active = 0")
            .execute(p)
            .await
            .unwrap();
        assert!(user_of_session(p, &id).await.unwrap().is_none(), "disabled");
        sqlx::query("UPDATE users SET active = 1")
            .execute(p)
            .await
            .unwrap();
        end(p, &id).await.unwrap();
        assert!(user_of_session(p, &id).await.unwrap().is_none(), "ended");
    }

    #[test]
    fn session_ids_are_long_and_stored_hashed() {
        let id = new_secret();
        assert_eq!(id.len(), 43);
        assert_eq!(hash(&id).len(), 64);
        assert_ne!(hash(&id), id);
    }
}
