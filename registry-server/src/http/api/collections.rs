//! Collections: list the visible ones, create one, show one.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use sreg_api::v1::{Collection, ErrorBody, NewCollection};

use super::error::ApiResult;
use super::json::JsonBody;
use super::resolve;
use super::views;
use crate::error::Error;
use crate::http::auth;
use crate::model::access::{self, Access, Caller};
use crate::model::accounts;
use crate::model::catalog;
use crate::serve::AppState;

/// Every collection the caller may see (public ones, and private ones the
/// caller owns, belongs to or contributes to), by entity and name.
pub async fn visible_collections(
    state: &AppState,
    caller: &Caller,
) -> crate::error::Result<Vec<catalog::Collection>> {
    let db = &state.db.pool;
    let all: Vec<catalog::Collection> = sqlx::query_as(
        "SELECT c.id, c.entity_id, e.name AS entity_name, c.name, c.description, c.private,
                c.created_at, c.updated_at, c.downloads
         FROM collections c JOIN entities e ON e.id = c.entity_id
         ORDER BY e.name, c.name",
    )
    .fetch_all(db)
    .await?;
    let mut out = Vec::with_capacity(all.len());
    for c in all {
        // Public collections are visible to everyone; only private ones
        // need the access rules.
        if c.private == 0 || access::collection_access(db, caller, &c).await? >= Access::Read {
            out.push(c);
        }
    }
    Ok(out)
}

/// The collections the caller can see.
#[utoipa::path(
    get,
    path = "/api/v1/collections",
    tag = "catalog",
    responses(
        (status = 200, description = "Visible collections", body = Vec<Collection>),
        (status = 401, description = "An invalid, revoked or expired token", body = ErrorBody)
    )
)]
pub async fn list_collections(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Json<Vec<Collection>>> {
    let caller = auth::caller(&state, &headers).await?;
    let mut out = Vec::new();
    for c in visible_collections(&state, &caller).await? {
        out.push(views::collection(&state.db.pool, &c).await?);
    }
    Ok(Json(out))
}

/// Create a collection under the caller's own entity or a team of theirs.
#[utoipa::path(
    post,
    path = "/api/v1/collections",
    tag = "catalog",
    request_body = NewCollection,
    responses(
        (status = 201, description = "Created", body = Collection),
        (status = 400, description = "Bad name", body = ErrorBody),
        (status = 401, description = "No token, or a bad one", body = ErrorBody),
        (status = 403, description = "Not the caller's entity, or past the limit", body = ErrorBody),
        (status = 409, description = "It exists already", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn create_collection(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(new): JsonBody<NewCollection>,
) -> ApiResult<(StatusCode, Json<Collection>)> {
    let caller = auth::user(&state, &headers).await?;
    let user = caller.user.clone().expect("auth::user returns a user");
    let db = &state.db.pool;
    let entity = match &new.entity {
        Some(name) => accounts::entity_by_name(db, name)
            .await?
            .ok_or_else(|| Error::not_found(format!("user or team {name}")))?,
        None => accounts::entity_by_id(db, user.id).await?,
    };
    if access::entity_access(db, &caller, entity.id).await? != Access::Write {
        return Err(Error::Forbidden(format!(
            "you may not create collections under {} {:?}",
            entity.kind, entity.name
        ))
        .into());
    }
    resolve::check_collection_limit(&state, &user).await?;
    let asked = new
        .private
        .or((entity.default_private != 0).then_some(true));
    let private = state.config.registry.new_collection_private(asked);
    let c = catalog::create_collection(db, entity.id, &new.name, private, user.id).await?;
    Ok((StatusCode::CREATED, Json(views::collection(db, &c).await?)))
}

/// One collection, with the names of its containers.
#[utoipa::path(
    get,
    path = "/api/v1/collections/{entity}/{collection}",
    tag = "catalog",
    params(
        ("entity" = String, Path, description = "User or team"),
        ("collection" = String, Path, description = "Collection name")
    ),
    responses(
        (status = 200, description = "The collection", body = Collection),
        (status = 404, description = "No such collection, or not visible to the caller", body = ErrorBody)
    )
)]
pub async fn get_collection(
    State(state): State<AppState>,
    Path((entity, collection)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<Collection>> {
    let caller = auth::caller(&state, &headers).await?;
    let c = resolve::visible_collection(&state, &caller, Some(&entity), &collection).await?;
    Ok(Json(views::collection(&state.db.pool, &c).await?))
}
