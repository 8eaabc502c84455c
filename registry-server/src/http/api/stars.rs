//! Stars: the caller's starred containers; star and unstar.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use sreg_api::v1::{ErrorBody, StarState, Starred};

use super::error::ApiResult;
use super::resolve;
use super::views;
use crate::http::auth;
use crate::model::activity;
use crate::serve::AppState;

/// The containers the caller starred, most recent first.
#[utoipa::path(
    get,
    path = "/api/v1/stars",
    tag = "account",
    responses(
        (status = 200, description = "Starred containers", body = Vec<Starred>),
        (status = 401, description = "No token, or a bad one", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn list_stars(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Json<Vec<Starred>>> {
    let caller = auth::user(&state, &headers).await?;
    let uid = caller.id().expect("auth::user returns a user");
    let rows: Vec<(i64, String, String, String, i64)> = sqlx::query_as(
        "SELECT k.id, e.name, c.name, k.name, s.created_at
         FROM stars s JOIN containers k ON k.id = s.container_id
         JOIN collections c ON c.id = k.collection_id JOIN entities e ON e.id = c.entity_id
         WHERE s.user_id = $1 ORDER BY s.created_at DESC, k.id DESC",
    )
    .bind(uid)
    .fetch_all(&state.db.pool)
    .await?;
    let mut out = Vec::new();
    for (id, entity, collection, container, at) in rows {
        // A star on a collection that became invisible is not shown.
        let r = sreg_api::Reference {
            host: None,
            entity: Some(entity.clone()),
            collection: collection.clone(),
            container: container.clone(),
            tag: "latest".into(),
        };
        if resolve::visible_container(&state, &caller, &r)
            .await
            .is_err()
        {
            continue;
        }
        out.push(Starred {
            entity,
            collection,
            container,
            stars: activity::star_count(&state.db.pool, id).await?,
            starred_at: views::time(at),
        });
    }
    Ok(Json(out))
}

/// Star a container (starring twice is one star).
#[utoipa::path(
    put,
    path = "/api/v1/stars/{*path}",
    tag = "account",
    params(("path" = String, Path, description = "ENTITY/COLLECTION/CONTAINER or COLLECTION/CONTAINER")),
    responses(
        (status = 200, description = "Starred", body = StarState),
        (status = 401, description = "No token, or a bad one", body = ErrorBody),
        (status = 404, description = "No such container, or not visible to the caller", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn star(
    State(state): State<AppState>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<StarState>> {
    set(state, path, headers, true).await
}

/// Remove the caller's star from a container.
#[utoipa::path(
    delete,
    path = "/api/v1/stars/{*path}",
    tag = "account",
    params(("path" = String, Path, description = "ENTITY/COLLECTION/CONTAINER or COLLECTION/CONTAINER")),
    responses(
        (status = 200, description = "Not starred", body = StarState),
        (status = 401, description = "No token, or a bad one", body = ErrorBody),
        (status = 404, description = "No such container, or not visible to the caller", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn unstar(
    State(state): State<AppState>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<StarState>> {
    set(state, path, headers, false).await
}

async fn set(
    state: AppState,
    path: String,
    headers: HeaderMap,
    starred: bool,
) -> ApiResult<Json<StarState>> {
    let caller = auth::user(&state, &headers).await?;
    let uid = caller.id().expect("auth::user returns a user");
    let r = resolve::parse_container_path(&path)?;
    let (_, k) = resolve::visible_container(&state, &caller, &r).await?;
    let db = &state.db.pool;
    if starred {
        activity::star(db, uid, k.id).await?;
    } else {
        activity::unstar(db, uid, k.id).await?;
    }
    Ok(Json(StarState {
        starred,
        stars: activity::star_count(db, k.id).await?,
    }))
}
