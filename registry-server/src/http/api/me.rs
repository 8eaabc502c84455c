//! `GET /api/v1/me`.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use sreg_api::v1::{ErrorBody, Me};

use super::error::ApiResult;
use super::views;
use crate::http::auth;
use crate::serve::AppState;

/// The caller: the user the token belongs to, and their teams.
#[utoipa::path(
    get,
    path = "/api/v1/me",
    tag = "account",
    responses(
        (status = 200, description = "The caller", body = Me),
        (status = 401, description = "No token, or an invalid, revoked or expired one", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn me(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Json<Me>> {
    let caller = auth::user(&state, &headers).await?;
    let user = caller.user.expect("auth::user returns a user");
    let teams: Vec<String> = sqlx::query_scalar(
        "SELECT e.name FROM team_members m JOIN entities e ON e.id = m.team_id
         WHERE m.user_id = $1 ORDER BY e.name",
    )
    .bind(user.id)
    .fetch_all(&state.db.pool)
    .await?;
    Ok(Json(Me {
        user: views::user(&user),
        teams,
        registry: state.config.registry.name.clone(),
    }))
}
