//! Reading builds: the job list, one job, its log (from an offset, to
//! follow a running build), and cancel. A job is visible to whoever may see
//! its project's collection; to anyone else it does not exist (404).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sreg_api::builds::BuildJob;
use sreg_api::v1::ErrorBody;

use super::error::{ApiError, ApiResult};
use crate::error::Error;
use crate::http::auth;
use crate::model::access::{Access, Caller, collection_access};
use crate::model::builds::projects::{self, Project};
use crate::model::builds::{self, jobs, log};
use crate::model::catalog;
use crate::serve::AppState;

/// Whether the caller may see a project: it is visible with its collection.
pub async fn may_see(state: &AppState, caller: &Caller, p: &Project) -> ApiResult<bool> {
    if caller.is_admin() {
        return Ok(true);
    }
    let db = &state.db.pool;
    Ok(
        match catalog::collection_by_id(db, p.collection_id).await? {
            Some(c) => collection_access(db, caller, &c).await? >= Access::Read,
            None => false,
        },
    )
}

/// Whether the caller may change a project: its owner or an admin.
pub fn may_manage(caller: &Caller, p: &Project) -> bool {
    caller.is_admin() || caller.id() == Some(p.owner_id)
}

/// The projects the caller may see.
pub async fn visible_projects(state: &AppState, caller: &Caller) -> ApiResult<Vec<Project>> {
    let mut out = Vec::new();
    for p in projects::list(&state.db.pool).await? {
        if may_see(state, caller, &p).await? {
            out.push(p);
        }
    }
    Ok(out)
}

/// A job and its project, if the caller may see them.
async fn visible_job(
    state: &AppState,
    caller: &Caller,
    id: i64,
) -> ApiResult<(jobs::Job, Project)> {
    let db = &state.db.pool;
    let not_found = || ApiError::from(Error::not_found(format!("build job {id}")));
    let job = jobs::get(db, id).await?.ok_or_else(not_found)?;
    let project = projects::get(db, job.project_id)
        .await?
        .ok_or_else(not_found)?;
    if !may_see(state, caller, &project).await? {
        return Err(not_found());
    }
    Ok((job, project))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BuildFilter {
    /// Only this project's jobs (its id).
    pub project: Option<i64>,
    /// Only jobs in this state (`queued`, `running`, `succeeded`, `failed`,
    /// `cancelled`, `superseded`).
    pub state: Option<String>,
    /// At most this many (default 50, at most 500).
    pub limit: Option<i64>,
}

/// Build jobs the caller may see, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/builds",
    tag = "builds",
    params(BuildFilter),
    responses(
        (status = 200, description = "Jobs, newest first", body = Vec<BuildJob>),
        (status = 400, description = "A bad filter", body = ErrorBody),
        (status = 401, description = "A bad token", body = ErrorBody)
    ),
    security((), ("bearer" = []))
)]
pub async fn list_builds(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(filter): Query<BuildFilter>,
) -> ApiResult<Json<Vec<BuildJob>>> {
    let caller = auth::caller(&state, &headers).await?;
    let wanted_state = match filter.state.as_deref() {
        None | Some("") => None,
        Some(s) => Some(jobs::parse_state(s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "state {s:?} is not one of queued, running, succeeded, failed, cancelled, superseded"
            ))
        })?),
    };
    let limit = filter.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 500"));
    }
    let ids: Vec<i64> = visible_projects(&state, &caller)
        .await?
        .into_iter()
        .map(|p| p.id)
        .filter(|id| filter.project.is_none_or(|want| want == *id))
        .collect();
    let list = jobs::list(&state.db.pool, &ids, wanted_state, limit).await?;
    Ok(Json(list.iter().map(jobs::Job::to_api).collect()))
}

/// One build job.
#[utoipa::path(
    get,
    path = "/api/v1/builds/{id}",
    tag = "builds",
    params(("id" = i64, Path, description = "Build job id")),
    responses(
        (status = 200, description = "The job", body = BuildJob),
        (status = 404, description = "No such job, or not visible to the caller", body = ErrorBody)
    ),
    security((), ("bearer" = []))
)]
pub async fn get_build(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    headers: HeaderMap,
) -> ApiResult<Json<BuildJob>> {
    let caller = auth::caller(&state, &headers).await?;
    let (job, _) = visible_job(&state, &caller, id).await?;
    Ok(Json(job.to_api()))
}

/// Cancel a job: a queued one at once; a running one is stopped by its
/// agent at its next heartbeat. The project's owner or an admin.
#[utoipa::path(
    post,
    path = "/api/v1/builds/{id}/cancel",
    tag = "builds",
    params(("id" = i64, Path, description = "Build job id")),
    responses(
        (status = 200, description = "Cancelled, or cancel asked of the agent", body = BuildJob),
        (status = 401, description = "No token, or a bad one", body = ErrorBody),
        (status = 403, description = "Not the project's owner or an admin", body = ErrorBody),
        (status = 404, description = "No such job, or not visible to the caller", body = ErrorBody),
        (status = 409, description = "The job has finished already", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn cancel_build(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    headers: HeaderMap,
) -> ApiResult<Json<BuildJob>> {
    let caller = auth::user(&state, &headers).await?;
    let (_, project) = visible_job(&state, &caller, id).await?;
    if !may_manage(&caller, &project) {
        return Err(Error::Forbidden(format!(
            "only the owner of project {} or an admin may cancel its builds",
            project.name
        ))
        .into());
    }
    let by = caller.user.as_ref().map_or("?", |u| u.name.as_str());
    let job = jobs::cancel(&state.db.pool, id, by).await?.to_api();
    builds::notify(&state, std::slice::from_ref(&job));
    Ok(Json(job))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogFrom {
    /// The byte to start from (default 0).
    pub offset: Option<i64>,
}

/// A job's log from a byte offset (at most 4 MiB an answer).
///
/// `X-Sreg-Build-State` gives the job's state, `X-Sreg-Log-Size` the log's
/// size so far, and `X-Sreg-Log-Complete: true` says the job has finished
/// and this answer reaches the end of its log; otherwise ask again from the
/// offset plus the bytes received to follow the build.
#[utoipa::path(
    get,
    path = "/api/v1/builds/{id}/log",
    tag = "builds",
    params(("id" = i64, Path, description = "Build job id"), LogFrom),
    responses(
        (status = 200, description = "Log bytes", content_type = "text/plain", body = String),
        (status = 400, description = "A negative offset", body = ErrorBody),
        (status = 404, description = "No such job, or not visible to the caller", body = ErrorBody)
    ),
    security((), ("bearer" = []))
)]
pub async fn get_log(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    Query(from): Query<LogFrom>,
) -> ApiResult<Response> {
    let caller = auth::caller(&state, &headers).await?;
    let offset = from.offset.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::bad_request("offset must not be negative"));
    }
    let (job, _) = visible_job(&state, &caller, id).await?;
    let bytes = log::read(&state.db.pool, id, offset, log::READ_LIMIT).await?;
    let complete =
        job.state().is_final() && offset.saturating_add(bytes.len() as i64) >= job.log_size;
    let mut res = bytes.into_response();
    let h = res.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        "x-sreg-build-state",
        HeaderValue::from_static(job.state().as_str()),
    );
    h.insert(
        "x-sreg-log-complete",
        HeaderValue::from_static(if complete { "true" } else { "false" }),
    );
    h.insert("x-sreg-log-size", HeaderValue::from(job.log_size));
    Ok(res)
}
