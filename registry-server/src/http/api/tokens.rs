//! The caller's own API tokens: list (never the secret), create (the token
//! is shown once), revoke.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use sreg_api::v1::{CreatedToken, ErrorBody, NewToken, TokenInfo};

use super::error::{ApiError, ApiResult};
use super::json::JsonBody;
use super::views::time;
use crate::db::now_ms;
use crate::error::Error;
use crate::http::auth;
use crate::model::tokens::{self, Token};
use crate::serve::AppState;

pub(super) fn info(t: &Token) -> TokenInfo {
    let state = if t.revoked_at.is_some() {
        "revoked"
    } else if t.expires_at.is_some_and(|e| e <= now_ms()) {
        "expired"
    } else {
        "active"
    };
    TokenInfo {
        id: t.id,
        name: t.name.clone(),
        prefix: t.prefix.clone(),
        created_at: time(t.created_at),
        expires_at: t.expires_at.map(time),
        last_used_at: t.last_used_at.map(time),
        revoked_at: t.revoked_at.map(time),
        state: state.into(),
    }
}

/// The caller's tokens, without their secrets.
#[utoipa::path(
    get,
    path = "/api/v1/tokens",
    tag = "account",
    responses(
        (status = 200, description = "The caller's tokens", body = Vec<TokenInfo>),
        (status = 401, description = "No token, or a bad one", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn list_tokens(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Json<Vec<TokenInfo>>> {
    let caller = auth::user(&state, &headers).await?;
    let uid = caller.id().expect("auth::user returns a user");
    let list = tokens::list(&state.db.pool, uid).await?;
    Ok(Json(list.iter().map(info).collect()))
}

/// Create a token for the caller. The answer is the only time it is shown.
#[utoipa::path(
    post,
    path = "/api/v1/tokens",
    tag = "account",
    request_body = NewToken,
    responses(
        (status = 201, description = "Created", body = CreatedToken),
        (status = 400, description = "Bad name or lifetime", body = ErrorBody),
        (status = 401, description = "No token, or a bad one", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn create_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(new): JsonBody<NewToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    let caller = auth::user(&state, &headers).await?;
    let uid = caller.id().expect("auth::user returns a user");
    let expires_at = match new.expires_in.as_deref() {
        None => None,
        Some(d) => {
            let d = humantime::parse_duration(d).map_err(|_| {
                ApiError::bad_request(format!(
                    "expires_in {d:?} is not a duration such as 30d, 12h or 90min"
                ))
            })?;
            Some(now_ms().saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)))
        }
    };
    let (token, row) =
        tokens::create(&state.db.pool, &state.keys, uid, &new.name, expires_at).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            token,
            info: info(&row),
        }),
    ))
}

/// Revoke one of the caller's tokens; it is refused from then on.
#[utoipa::path(
    delete,
    path = "/api/v1/tokens/{id}",
    tag = "account",
    params(("id" = i64, Path, description = "Token id")),
    responses(
        (status = 200, description = "Revoked", body = TokenInfo),
        (status = 401, description = "No token, or a bad one", body = ErrorBody),
        (status = 404, description = "Not one of the caller's tokens", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn revoke_token(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    headers: HeaderMap,
) -> ApiResult<Json<TokenInfo>> {
    let caller = auth::user(&state, &headers).await?;
    let uid = caller.id().expect("auth::user returns a user");
    tokens::revoke(&state.db.pool, uid, id).await?;
    let row = tokens::list(&state.db.pool, uid)
        .await?
        .into_iter()
        .find(|t| t.id == id)
        .ok_or_else(|| Error::not_found(format!("token {id}")))?;
    Ok(Json(info(&row)))
}
