//! Who is calling: the bearer token of a request, checked once, the same
//! way for every protocol. A request without a token is anonymous; one with
//! a token that is unknown, revoked or expired is refused, never treated as
//! anonymous, so a broken CI secret fails loudly.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;

use crate::error::{Error, Result};
use crate::model::access::Caller;
use crate::model::tokens;
use crate::serve::AppState;

/// The token of an `Authorization` header: `Bearer T`, with the scheme in
/// any case (old library clients send `BEARER`), or a bare token.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Some(token.trim()),
        Some(_) => None,
        None if !value.is_empty() => Some(value),
        None => None,
    }
}

/// The caller of a request authenticated by bearer token.
pub async fn caller(state: &AppState, headers: &HeaderMap) -> Result<Caller> {
    match bearer_token(headers) {
        None => Ok(Caller::anonymous()),
        Some(token) => match tokens::authenticate(&state.db.pool, token).await? {
            Some((user, _)) => Ok(Caller::user(user)),
            None => Err(Error::Unauthorized(
                "invalid, revoked or expired token".into(),
            )),
        },
    }
}

/// The caller, who must be signed in.
pub async fn user(state: &AppState, headers: &HeaderMap) -> Result<Caller> {
    let caller = caller(state, headers).await?;
    if caller.user.is_none() {
        return Err(Error::Unauthorized(
            "this needs a token: send `Authorization: Bearer <token>`".into(),
        ));
    }
    Ok(caller)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(v: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(AUTHORIZATION, v.parse().unwrap());
        m
    }

    #[test]
    fn bearer_in_any_case_or_bare() {
        assert_eq!(bearer_token(&h("Bearer abc")), Some("abc"));
        assert_eq!(bearer_token(&h("BEARER abc")), Some("abc"));
        assert_eq!(bearer_token(&h("bearer  abc ")), Some("abc"));
        assert_eq!(bearer_token(&h("abc")), Some("abc"));
        assert_eq!(bearer_token(&h("Basic dXNlcjpwdw==")), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }
}
