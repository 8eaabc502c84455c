//! `GET /api/v1/containers/{path}`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use sreg_api::v1::{Container, ErrorBody};

use super::error::ApiResult;
use super::resolve;
use super::views;
use crate::http::auth;
use crate::serve::AppState;

/// A container with its tags, images, downloads and stars.
#[utoipa::path(
    get,
    path = "/api/v1/containers/{*path}",
    tag = "catalog",
    params(("path" = String, Path, description = "ENTITY/COLLECTION/CONTAINER or COLLECTION/CONTAINER")),
    responses(
        (status = 200, description = "The container", body = Container),
        (status = 404, description = "No such container, or not visible to the caller", body = ErrorBody),
        (status = 409, description = "Ambiguous two-part path", body = ErrorBody)
    )
)]
pub async fn get_container(
    State(state): State<AppState>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<Container>> {
    let caller = auth::caller(&state, &headers).await?;
    let r = resolve::parse_container_path(&path)?;
    let (c, k) = resolve::visible_container(&state, &caller, &r).await?;
    Ok(Json(
        views::container(&state.db.pool, &caller, &c, &k).await?,
    ))
}
