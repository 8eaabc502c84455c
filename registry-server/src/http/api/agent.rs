//! The build-agent protocol (`/api/v1/agent/...`): lease a job, send
//! heartbeats and the log, finish. Every call needs an admin's token (an
//! agent pushes into any project's collection); the calls about a job also
//! need the lease id its lease gave.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use sreg_api::builds::{
    BuildJob, FinishRequest, HeartbeatAnswer, Lease, LeaseRef, LeaseRequest, LogAppended,
};
use sreg_api::v1::ErrorBody;

use super::error::{ApiError, ApiResult};
use super::json::JsonBody;
use crate::error::Error;
use crate::http::auth;
use crate::model::builds::{self, jobs, log};
use crate::serve::AppState;

/// Largest log chunk one call may send.
pub const LOG_CHUNK_LIMIT: usize = 1 << 20;
pub const LEASE_HEADER: &str = "x-sreg-lease";
pub const OFFSET_HEADER: &str = "x-sreg-log-offset";

/// The caller, who must be an admin.
async fn agent(state: &AppState, headers: &HeaderMap) -> ApiResult<()> {
    let caller = auth::user(state, headers).await?;
    if !caller.is_admin() {
        return Err(Error::Forbidden(
            "build agents need an admin's token (SREG_TOKEN of an admin user)".into(),
        )
        .into());
    }
    Ok(())
}

fn lease_ms(state: &AppState) -> i64 {
    (state.config.builds.lease_seconds as i64).saturating_mul(1000)
}

/// Lease the oldest queued job whose labels the agent has.
#[utoipa::path(
    post,
    path = "/api/v1/agent/lease",
    tag = "builds",
    request_body = LeaseRequest,
    responses(
        (status = 200, description = "A job, leased to the caller", body = Lease),
        (status = 204, description = "No queued job fits"),
        (status = 401, description = "No token, or a bad one", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn lease(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<LeaseRequest>,
) -> ApiResult<Response> {
    agent(&state, &headers).await?;
    let name = req.agent.trim();
    if name.is_empty() || name.len() > 255 || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "agent must be a name of 1 to 255 characters (the host name, say)",
        ));
    }
    if req.labels.len() > 100 || req.labels.iter().any(|l| l.len() > 64) {
        return Err(ApiError::bad_request(
            "labels takes at most 100 labels of at most 64 bytes",
        ));
    }
    let leased = jobs::lease(&state.db.pool, name, &req.labels, lease_ms(&state)).await?;
    let Some((lease_id, job)) = leased else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let job = job.to_api();
    builds::notify(&state, std::slice::from_ref(&job));
    tracing::info!(job = job.id, agent = name, reference = %job.reference, "build job leased");
    Ok(Json(Lease {
        lease_id,
        lease_seconds: state.config.builds.lease_seconds as i64,
        heartbeat_seconds: state.config.builds.heartbeat_seconds as i64,
        job,
    })
    .into_response())
}

/// Extend the lease; the answer says whether to stop (cancel asked).
#[utoipa::path(
    post,
    path = "/api/v1/agent/jobs/{id}/heartbeat",
    tag = "builds",
    params(("id" = i64, Path, description = "Build job id")),
    request_body = LeaseRef,
    responses(
        (status = 200, description = "Lease extended", body = HeartbeatAnswer),
        (status = 401, description = "No token, or a bad one", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "The lease is lost: stop building", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn heartbeat(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<LeaseRef>,
) -> ApiResult<Json<HeartbeatAnswer>> {
    agent(&state, &headers).await?;
    let cancel = jobs::heartbeat(&state.db.pool, id, &req.lease_id, lease_ms(&state)).await?;
    Ok(Json(HeartbeatAnswer {
        cancel,
        lease_seconds: state.config.builds.lease_seconds as i64,
    }))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// Append to the job's log (raw bytes, at most 1 MiB a call).
///
/// `X-Sreg-Log-Offset` says where the bytes start; bytes already stored
/// (a chunk sent again) are stored once, and a gap is refused with 409
/// naming the log's size.
#[utoipa::path(
    post,
    path = "/api/v1/agent/jobs/{id}/log",
    tag = "builds",
    params(
        ("id" = i64, Path, description = "Build job id"),
        ("X-Sreg-Lease" = String, Header, description = "The lease id"),
        ("X-Sreg-Log-Offset" = i64, Header, description = "Byte offset of this chunk in the log")
    ),
    request_body(content = String, content_type = "text/plain", description = "Log bytes"),
    responses(
        (status = 200, description = "Stored", body = LogAppended),
        (status = 400, description = "A header is missing or bad", body = ErrorBody),
        (status = 401, description = "No token, or a bad one", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "The lease is lost, or the offset is past the log's end", body = ErrorBody),
        (status = 413, description = "Chunk or log too large", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn append_log(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<LogAppended>> {
    agent(&state, &headers).await?;
    let lease_id = header(&headers, LEASE_HEADER)
        .filter(|l| !l.is_empty())
        .ok_or_else(|| ApiError::bad_request("send the lease id in X-Sreg-Lease"))?;
    let offset: i64 = header(&headers, OFFSET_HEADER)
        .and_then(|v| v.parse().ok())
        .filter(|&o| o >= 0)
        .ok_or_else(|| {
            ApiError::bad_request("send X-Sreg-Log-Offset: the byte offset where this chunk starts")
        })?;
    let bytes: Bytes = axum::body::to_bytes(body, LOG_CHUNK_LIMIT)
        .await
        .map_err(|_| {
            ApiError::from(Error::TooLarge(format!(
                "a log chunk is at most {LOG_CHUNK_LIMIT} bytes: send it in pieces"
            )))
        })?;
    let log_size = log::append(&state.db.pool, id, lease_id, offset, &bytes).await?;
    Ok(Json(LogAppended { log_size }))
}

/// End the job: succeeded (with the pushed image's sha256) or failed.
#[utoipa::path(
    post,
    path = "/api/v1/agent/jobs/{id}/finish",
    tag = "builds",
    params(("id" = i64, Path, description = "Build job id")),
    request_body = FinishRequest,
    responses(
        (status = 200, description = "The finished job", body = BuildJob),
        (status = 400, description = "Succeeded without image_sha256", body = ErrorBody),
        (status = 401, description = "No token, or a bad one", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "The lease is lost", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn finish(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<FinishRequest>,
) -> ApiResult<Json<BuildJob>> {
    agent(&state, &headers).await?;
    let job = jobs::finish(
        &state.db.pool,
        id,
        &req.lease_id,
        req.outcome,
        req.error.as_deref(),
        req.image_sha256.as_deref(),
    )
    .await?
    .to_api();
    builds::notify(&state, std::slice::from_ref(&job));
    tracing::info!(
        job = job.id,
        state = job.state.as_str(),
        "build job finished"
    );
    Ok(Json(job))
}
