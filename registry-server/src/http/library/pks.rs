//! A minimal HKP keyserver (draft-shaw-openpgp-hkp), the `keystoreAPI` of
//! the discovery document: Apptainer pushes public keys to it and fetches
//! them to verify signed images.
//!
//! - `POST /pks/add`, form field `keytext`: one or more armored public keys.
//!   Each must parse and carry valid self-signatures; it is stored by its
//!   fingerprint (an existing one is replaced). Adding needs a token, so
//!   that the key table is not open to anyone.
//! - `GET /pks/lookup?op=get|index&search=0x<fingerprint or key id>`.
//!
//! HKP answers are plain text, not the library envelope.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use pgp::composed::{Deserializable, SignedPublicKey};
use pgp::types::{KeyDetails, PublicKeyTrait, PublicParams};

use super::Query;
use super::envelope::{small_body, text};
use crate::db::now_ms;
use crate::error::Error;
use crate::http::auth;
use crate::serve::AppState;

/// A key accepted by `/pks/add`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedKey {
    /// Upper-case hex.
    pub fingerprint: String,
    pub armored: String,
    pub uids: Vec<String>,
}

/// Parses armored text holding one or more public keys; refuses anything
/// that is not, or whose self-signatures do not verify.
pub fn parse_keys(armored: &str) -> Result<Vec<ParsedKey>, String> {
    // The parser reads one armor block (which may hold several keys); `gpg
    // --export --armor` of several keys makes one, but texts pasted
    // together hold one block each.
    const BEGIN: &str = "-----BEGIN PGP PUBLIC KEY BLOCK-----";
    let mut blocks: Vec<&str> = armored
        .match_indices(BEGIN)
        .map(|(i, _)| i)
        .chain([armored.len()])
        .collect::<Vec<_>>()
        .windows(2)
        .map(|w| &armored[w[0]..w[1]])
        .collect();
    if blocks.is_empty() {
        blocks.push(armored);
    }
    let mut out = Vec::new();
    for block in blocks {
        out.extend(parse_block(block)?);
    }
    if out.is_empty() {
        return Err("no public key in the text".into());
    }
    Ok(out)
}

fn parse_block(armored: &str) -> Result<Vec<ParsedKey>, String> {
    let (keys, _) = SignedPublicKey::from_string_many(armored)
        .map_err(|e| format!("not an armored OpenPGP public key: {e}"))?;
    let mut out = Vec::new();
    for key in keys {
        let key = key.map_err(|e| format!("not an OpenPGP public key: {e}"))?;
        key.verify()
            .map_err(|e| format!("the key's self-signatures do not verify: {e}"))?;
        let armored = key
            .to_armored_string(Default::default())
            .map_err(|e| format!("cannot re-armor the key: {e}"))?;
        out.push(ParsedKey {
            fingerprint: key.fingerprint().to_string().to_uppercase(),
            armored,
            uids: key
                .details
                .users
                .iter()
                .map(|u| String::from_utf8_lossy(u.id.id()).into_owned())
                .collect(),
        });
    }
    Ok(out)
}

pub async fn add(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    // Read the body first: an early answer would reach a Go client as a reset.
    let bytes = match small_body(body).await {
        Ok(b) => b,
        Err(e) => return text(e.0.status(), e.0.public_message()),
    };
    let user = match auth::user(&state, &headers).await {
        Ok(c) => c.user.map(|u| u.name).unwrap_or_default(),
        Err(e) => return text(e.status(), e.public_message()),
    };
    let Some(keytext) = url::form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == "keytext")
        .map(|(_, v)| v.into_owned())
    else {
        return text(StatusCode::BAD_REQUEST, "missing form field keytext");
    };
    let keys = match parse_keys(&keytext) {
        Ok(k) => k,
        Err(msg) => return text(StatusCode::BAD_REQUEST, msg),
    };
    let mut added = Vec::new();
    for k in keys {
        let stored = sqlx::query(
            "INSERT INTO pgp_keys (fingerprint, armored, uids, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (fingerprint) DO UPDATE SET armored = excluded.armored, uids = excluded.uids",
        )
        .bind(&k.fingerprint)
        .bind(&k.armored)
        .bind(k.uids.join("\n"))
        .bind(now_ms())
        .execute(&state.db.pool)
        .await;
        if let Err(e) = stored {
            let e = Error::from(e);
            return text(e.status(), e.public_message());
        }
        tracing::info!(fingerprint = %k.fingerprint, by = %user, "pks: key stored");
        added.push(k.fingerprint);
    }
    text(StatusCode::OK, format!("added {}\n", added.join(" ")))
}

pub async fn lookup(State(state): State<AppState>, uri: Uri) -> Response {
    let q = Query::parse(&uri);
    let op = q.get("op").unwrap_or("get");
    let Some(search) = q.get("search") else {
        return text(
            StatusCode::BAD_REQUEST,
            "missing search=0x<fingerprint or key id>",
        );
    };
    let hex = search
        .strip_prefix("0x")
        .or_else(|| search.strip_prefix("0X"))
        .unwrap_or(search)
        .to_uppercase();
    // v4 fingerprints (40), v5/v6 (64), long (16) and short (8) key ids;
    // names and e-mail addresses are not searched.
    if !matches!(hex.len(), 8 | 16 | 40 | 64) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return text(
            StatusCode::BAD_REQUEST,
            "search by 0x followed by a fingerprint or a key id",
        );
    }
    let rows: Result<Vec<(String, String)>, sqlx::Error> = if hex.len() >= 40 {
        sqlx::query_as("SELECT fingerprint, armored FROM pgp_keys WHERE fingerprint = $1")
            .bind(&hex)
            .fetch_all(&state.db.pool)
            .await
    } else {
        // A v4 key id is the end of its fingerprint.
        sqlx::query_as(
            "SELECT fingerprint, armored FROM pgp_keys WHERE fingerprint LIKE $1 ORDER BY fingerprint",
        )
        .bind(format!("%{hex}"))
        .fetch_all(&state.db.pool)
        .await
    };
    let rows = match rows {
        Ok(r) => r,
        Err(e) => {
            let e = Error::from(e);
            return text(e.status(), e.public_message());
        }
    };
    if rows.is_empty() {
        return text(StatusCode::NOT_FOUND, "No results found");
    }
    match op {
        "get" => {
            let body: String = rows
                .iter()
                .map(|(_, a)| a.as_str())
                .collect::<Vec<_>>()
                .join("\n");
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/pgp-keys; charset=utf-8")],
                body,
            )
                .into_response()
        }
        "index" | "vindex" => text(StatusCode::OK, index(&rows)),
        _ => text(
            StatusCode::NOT_IMPLEMENTED,
            format!("op={op} is not supported"),
        ),
    }
}

/// The machine-readable index (`options=mr`): an `info` line, then per key
/// a `pub` line and its `uid` lines.
fn index(rows: &[(String, String)]) -> String {
    let mut out = format!("info:1:{}\n", rows.len());
    for (fingerprint, armored) in rows {
        let Ok((key, _)) = SignedPublicKey::from_string(armored) else {
            // Stored keys were parsed on the way in; a damaged row still shows.
            out.push_str(&format!("pub:{fingerprint}::::::\n"));
            continue;
        };
        let expires = key
            .expires_at()
            .map(|t| t.timestamp().to_string())
            .unwrap_or_default();
        out.push_str(&format!(
            "pub:{fingerprint}:{}:{}:{}:{expires}:\n",
            u8::from(key.algorithm()),
            bits(key.public_params())
                .map(|b| b.to_string())
                .unwrap_or_default(),
            key.created_at().timestamp(),
        ));
        for u in &key.details.users {
            out.push_str(&format!(
                "uid:{}:{}::\n",
                escape(&String::from_utf8_lossy(u.id.id())),
                key.created_at().timestamp()
            ));
        }
    }
    out
}

/// Key length in bits, where the algorithm has one size.
fn bits(params: &PublicParams) -> Option<usize> {
    use rsa::traits::PublicKeyParts;
    match params {
        PublicParams::RSA(p) => Some(p.key.n().bits()),
        PublicParams::EdDSALegacy(_) | PublicParams::Ed25519(_) | PublicParams::X25519(_) => {
            Some(256)
        }
        PublicParams::Ed448(_) | PublicParams::X448(_) => Some(448),
        _ => None,
    }
}

/// HKP escapes `:`, `%` and anything not printable in index fields.
fn escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b == b':' || b == b'%' || !(0x20..0x7f).contains(&b) {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(b as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_not_a_key() {
        assert!(parse_keys("garbage").is_err());
        assert!(parse_keys("").is_err());
        assert!(
            parse_keys(
                "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nAAAA\n-----END PGP PUBLIC KEY BLOCK-----\n"
            )
            .is_err()
        );
    }

    #[test]
    fn index_fields_are_escaped() {
        assert_eq!(escape("A <a@b.c>: 100%"), "A <a@b.c>%3A 100%25");
        assert_eq!(escape("é"), "%C3%A9");
    }
}
