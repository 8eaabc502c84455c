//! Build projects under `/api/v1/projects`: create (the webhook secret is
//! shown in that answer only), list, read, change, delete. A project is
//! visible with its collection; only its owner or an admin may change it.
//! Its target collection must be one the caller may push to; a missing one
//! is created as a push would create it.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use sreg_api::builds::{BuildProject, CreatedBuildProject, NewBuildProject};
use sreg_api::v1::ErrorBody;

use super::builds::{may_manage, may_see, visible_projects};
use super::error::{ApiError, ApiResult};
use super::json::JsonBody;
use super::resolve;
use crate::error::Error;
use crate::http::auth;
use crate::model::access::{Access, Caller, collection_access, entity_access};
use crate::model::accounts::{self, User};
use crate::model::builds::projects::{self, Project, Settings};
use crate::model::catalog::{self, Collection};
use crate::serve::AppState;

/// The collection a project builds into (`ENTITY/COLLECTION`, or
/// `COLLECTION` under the caller's own name), created when missing; the
/// caller must be able to push to it.
async fn target_collection(
    state: &AppState,
    caller: &Caller,
    user: &User,
    spec: &str,
) -> ApiResult<Collection> {
    let db = &state.db.pool;
    let (entity_name, name) = match spec.split_once('/') {
        Some((e, c)) => (e.to_string(), c.to_string()),
        None => (user.name.clone(), spec.to_string()),
    };
    if name.contains('/') || name.is_empty() || entity_name.is_empty() {
        return Err(ApiError::bad_request(format!(
            "collection {spec:?} is not ENTITY/COLLECTION"
        )));
    }
    if let Some(c) = catalog::collection(db, &entity_name, &name).await? {
        return match collection_access(db, caller, &c).await? {
            Access::Write => Ok(c),
            Access::Read => Err(Error::Forbidden(format!(
                "you may not push to {entity_name}/{name}, so a project may not build into it"
            ))
            .into()),
            Access::None => {
                Err(Error::not_found(format!("collection {entity_name}/{name}")).into())
            }
        };
    }
    let entity = accounts::entity_by_name(db, &entity_name)
        .await?
        .ok_or_else(|| Error::not_found(format!("user or team {entity_name}")))?;
    if entity_access(db, caller, entity.id).await? != Access::Write {
        return Err(Error::Forbidden(format!(
            "you may not create collections under {} {:?}",
            entity.kind, entity.name
        ))
        .into());
    }
    resolve::check_collection_limit(state, user).await?;
    let asked = (entity.default_private != 0).then_some(true);
    let private = state.config.registry.new_collection_private(asked);
    match catalog::create_collection(db, entity.id, &name, private, user.id).await {
        Ok(c) => Ok(c),
        // Created by someone else in the meantime.
        Err(Error::Conflict(_)) => Ok(catalog::collection(db, &entity_name, &name)
            .await?
            .ok_or_else(|| Error::Internal("collection vanished".into()))?),
        Err(e) => Err(e.into()),
    }
}

fn webhook_urls(state: &AppState) -> Vec<String> {
    let base = state.config.public_url.as_str().trim_end_matches('/');
    ["github", "gitlab", "gitea"]
        .iter()
        .map(|f| format!("{base}/api/v1/hooks/{f}"))
        .collect()
}

/// Create a build project. The answer holds the webhook secret (the one
/// given, or a new random one): the only time it is shown.
#[utoipa::path(
    post,
    path = "/api/v1/projects",
    tag = "builds",
    request_body = NewBuildProject,
    responses(
        (status = 201, description = "Created", body = CreatedBuildProject),
        (status = 400, description = "A bad field", body = ErrorBody),
        (status = 401, description = "No token, or a bad one", body = ErrorBody),
        (status = 403, description = "The caller may not push to the collection", body = ErrorBody),
        (status = 409, description = "The name is taken", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn create_project(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(new): JsonBody<NewBuildProject>,
) -> ApiResult<(StatusCode, Json<CreatedBuildProject>)> {
    let caller = auth::user(&state, &headers).await?;
    let user = caller.user.clone().expect("auth::user returns a user");
    let spec = new
        .collection
        .clone()
        .ok_or_else(|| ApiError::bad_request("a project needs a collection: ENTITY/COLLECTION"))?;
    // Checked before the collection is created, so bad input changes nothing.
    Settings::new(&new, 0)?;
    let collection = target_collection(&state, &caller, &user, &spec).await?;
    let settings = Settings::new(&new, collection.id)?;
    let (project, secret) = projects::create(
        &state.db.pool,
        &state.keys,
        user.id,
        &settings,
        new.webhook_secret.as_deref(),
        new.forge_token.as_deref(),
    )
    .await?;
    tracing::info!(project = %project.name, owner = %user.name, "build project created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedBuildProject {
            project: project.to_api(),
            webhook_secret: secret,
            webhook_urls: webhook_urls(&state),
        }),
    ))
}

/// The build projects the caller may see.
#[utoipa::path(
    get,
    path = "/api/v1/projects",
    tag = "builds",
    responses(
        (status = 200, description = "Projects", body = Vec<BuildProject>),
        (status = 401, description = "A bad token", body = ErrorBody)
    ),
    security((), ("bearer" = []))
)]
pub async fn list_projects(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Json<Vec<BuildProject>>> {
    let caller = auth::caller(&state, &headers).await?;
    let list = visible_projects(&state, &caller).await?;
    Ok(Json(list.iter().map(Project::to_api).collect()))
}

async fn visible(state: &AppState, caller: &Caller, id: i64) -> ApiResult<Project> {
    match projects::get(&state.db.pool, id).await? {
        Some(p) if may_see(state, caller, &p).await? => Ok(p),
        _ => Err(Error::not_found(format!("build project {id}")).into()),
    }
}

async fn managed(state: &AppState, caller: &Caller, id: i64) -> ApiResult<Project> {
    let p = visible(state, caller, id).await?;
    if !may_manage(caller, &p) {
        return Err(Error::Forbidden(format!(
            "only the owner of project {} ({}) or an admin may change it",
            p.name, p.owner
        ))
        .into());
    }
    Ok(p)
}

/// One build project.
#[utoipa::path(
    get,
    path = "/api/v1/projects/{id}",
    tag = "builds",
    params(("id" = i64, Path, description = "Project id")),
    responses(
        (status = 200, description = "The project", body = BuildProject),
        (status = 404, description = "No such project, or not visible to the caller", body = ErrorBody)
    ),
    security((), ("bearer" = []))
)]
pub async fn get_project(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    headers: HeaderMap,
) -> ApiResult<Json<BuildProject>> {
    let caller = auth::caller(&state, &headers).await?;
    Ok(Json(visible(&state, &caller, id).await?.to_api()))
}

/// Change a build project: absent fields keep their value; an empty string
/// clears an optional one (`forge_token: ""` removes the token).
#[utoipa::path(
    patch,
    path = "/api/v1/projects/{id}",
    tag = "builds",
    params(("id" = i64, Path, description = "Project id")),
    request_body = NewBuildProject,
    responses(
        (status = 200, description = "The changed project", body = BuildProject),
        (status = 400, description = "A bad field", body = ErrorBody),
        (status = 403, description = "Not the owner or an admin", body = ErrorBody),
        (status = 404, description = "No such project, or not visible to the caller", body = ErrorBody),
        (status = 409, description = "The new name is taken", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn update_project(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    JsonBody(patch): JsonBody<NewBuildProject>,
) -> ApiResult<Json<BuildProject>> {
    let caller = auth::user(&state, &headers).await?;
    let user = caller.user.clone().expect("auth::user returns a user");
    let p = managed(&state, &caller, id).await?;
    Settings::patched(&p, &patch, p.collection_id)?;
    let collection_id = match &patch.collection {
        Some(spec) if *spec != p.collection => {
            target_collection(&state, &caller, &user, spec).await?.id
        }
        _ => p.collection_id,
    };
    let settings = Settings::patched(&p, &patch, collection_id)?;
    let changed = projects::update(
        &state.db.pool,
        &state.keys,
        id,
        &settings,
        patch.webhook_secret.as_deref(),
        patch.forge_token.as_deref(),
    )
    .await?;
    Ok(Json(changed.to_api()))
}

/// Delete a build project with its jobs and their logs.
#[utoipa::path(
    delete,
    path = "/api/v1/projects/{id}",
    tag = "builds",
    params(("id" = i64, Path, description = "Project id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Not the owner or an admin", body = ErrorBody),
        (status = 404, description = "No such project, or not visible to the caller", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn delete_project(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    let caller = auth::user(&state, &headers).await?;
    managed(&state, &caller, id).await?;
    projects::delete(&state.db.pool, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
