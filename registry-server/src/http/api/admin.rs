//! Users and teams, for admins.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use sreg_api::v1::{ErrorBody, NewTeam, NewTeamMember, NewUser, Team, TeamMember, User};

use super::error::{ApiError, ApiResult};
use super::json::JsonBody;
use super::views;
use crate::error::Error;
use crate::http::auth;
use crate::model::accounts::{self, Entity};
use crate::serve::AppState;

/// The caller, who must be an admin: 401 without a token, 403 for others.
async fn admin(state: &AppState, headers: &HeaderMap) -> ApiResult<()> {
    let caller = auth::user(state, headers).await?;
    if !caller.is_admin() {
        return Err(Error::Forbidden("only admins may manage users and teams".into()).into());
    }
    Ok(())
}

/// Every user.
#[utoipa::path(
    get,
    path = "/api/v1/users",
    tag = "admin",
    responses(
        (status = 200, description = "Users", body = Vec<User>),
        (status = 401, description = "No token, or a bad one", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn list_users(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Json<Vec<User>>> {
    admin(&state, &headers).await?;
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT e.id FROM entities e JOIN users u ON u.entity_id = e.id ORDER BY e.name",
    )
    .fetch_all(&state.db.pool)
    .await?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.push(views::user(
            &accounts::user_by_id(&state.db.pool, id).await?,
        ));
    }
    Ok(Json(out))
}

/// Create a user.
#[utoipa::path(
    post,
    path = "/api/v1/users",
    tag = "admin",
    request_body = NewUser,
    responses(
        (status = 201, description = "Created", body = User),
        (status = 400, description = "Bad name", body = ErrorBody),
        (status = 401, description = "No token, or a bad one", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 409, description = "The name is taken", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn create_user(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(new): JsonBody<NewUser>,
) -> ApiResult<(StatusCode, Json<User>)> {
    admin(&state, &headers).await?;
    let u = accounts::create_user(&state.db.pool, &new.name, &new.email, new.admin).await?;
    Ok((StatusCode::CREATED, Json(views::user(&u))))
}

async fn team_view(state: &AppState, e: &Entity) -> ApiResult<Team> {
    let members: Vec<(String, String)> = sqlx::query_as(
        "SELECT u.name, m.role FROM team_members m JOIN entities u ON u.id = m.user_id
         WHERE m.team_id = $1 ORDER BY u.name",
    )
    .bind(e.id)
    .fetch_all(&state.db.pool)
    .await?;
    Ok(Team {
        id: e.id,
        name: e.name.clone(),
        description: e.description.clone(),
        created_at: views::time(e.created_at),
        members: members
            .into_iter()
            .map(|(user, role)| TeamMember { user, role })
            .collect(),
    })
}

async fn team_named(state: &AppState, name: &str) -> ApiResult<Entity> {
    match accounts::entity_by_name(&state.db.pool, name).await? {
        Some(e) if e.kind == "team" => Ok(e),
        _ => Err(Error::not_found(format!("team {name}")).into()),
    }
}

async fn user_named(state: &AppState, name: &str) -> ApiResult<accounts::User> {
    accounts::user_by_name(&state.db.pool, name)
        .await?
        .ok_or_else(|| Error::not_found(format!("user {name}")).into())
}

/// Every team, with its members.
#[utoipa::path(
    get,
    path = "/api/v1/teams",
    tag = "admin",
    responses(
        (status = 200, description = "Teams", body = Vec<Team>),
        (status = 401, description = "No token, or a bad one", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn list_teams(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Json<Vec<Team>>> {
    admin(&state, &headers).await?;
    let teams: Vec<Entity> =
        sqlx::query_as("SELECT * FROM entities WHERE kind = 'team' ORDER BY name")
            .fetch_all(&state.db.pool)
            .await?;
    let mut out = Vec::with_capacity(teams.len());
    for t in &teams {
        out.push(team_view(&state, t).await?);
    }
    Ok(Json(out))
}

/// Create a team owned by a user.
#[utoipa::path(
    post,
    path = "/api/v1/teams",
    tag = "admin",
    request_body = NewTeam,
    responses(
        (status = 201, description = "Created", body = Team),
        (status = 400, description = "Bad name", body = ErrorBody),
        (status = 401, description = "No token, or a bad one", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such owner", body = ErrorBody),
        (status = 409, description = "The name is taken", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn create_team(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(new): JsonBody<NewTeam>,
) -> ApiResult<(StatusCode, Json<Team>)> {
    admin(&state, &headers).await?;
    let owner = user_named(&state, &new.owner).await?;
    let team = accounts::create_team(&state.db.pool, &new.name, owner.id).await?;
    Ok((StatusCode::CREATED, Json(team_view(&state, &team).await?)))
}

/// One team and its members.
#[utoipa::path(
    get,
    path = "/api/v1/teams/{team}",
    tag = "admin",
    params(("team" = String, Path, description = "Team name")),
    responses(
        (status = 200, description = "The team", body = Team),
        (status = 401, description = "No token, or a bad one", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such team", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn get_team(
    State(state): State<AppState>,
    Path(team): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<Team>> {
    admin(&state, &headers).await?;
    let e = team_named(&state, &team).await?;
    Ok(Json(team_view(&state, &e).await?))
}

/// Add a member to a team, or change their role.
#[utoipa::path(
    put,
    path = "/api/v1/teams/{team}/members",
    tag = "admin",
    params(("team" = String, Path, description = "Team name")),
    request_body = NewTeamMember,
    responses(
        (status = 200, description = "The team", body = Team),
        (status = 400, description = "Bad role", body = ErrorBody),
        (status = 401, description = "No token, or a bad one", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such team or user", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn add_team_member(
    State(state): State<AppState>,
    Path(team): Path<String>,
    headers: HeaderMap,
    JsonBody(new): JsonBody<NewTeamMember>,
) -> ApiResult<Json<Team>> {
    admin(&state, &headers).await?;
    let role = new.role.as_deref().unwrap_or("member");
    if role != "member" && role != "owner" {
        return Err(ApiError::bad_request(format!(
            "role {role:?} is not `member` or `owner`"
        )));
    }
    let e = team_named(&state, &team).await?;
    let user = user_named(&state, &new.user).await?;
    accounts::add_team_member(&state.db.pool, e.id, user.id, role).await?;
    Ok(Json(team_view(&state, &e).await?))
}
