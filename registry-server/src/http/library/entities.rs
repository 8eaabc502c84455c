//! Entities, collections and containers: get, and the get-or-create that a
//! push does on a 404 (library-api.md §4 steps 1-3).
//!
//! A POST for an object that already exists answers it with 200 (two
//! pushes racing both see a 404 first); a created one gets 201. Both are
//! statuses the client accepts.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;

use super::envelope::{ApiResult, JsonBody, LibPath, data, data_with};
use super::{names, objects, parse_id, require_write, visible_collection};
use crate::error::Error;
use crate::http::auth;
use crate::model::access::{self, Access};
use crate::model::{accounts, catalog};
use crate::serve::AppState;

pub async fn get_entity(
    State(state): State<AppState>,
    headers: HeaderMap,
    LibPath(name): LibPath<String>,
) -> ApiResult {
    let caller = auth::caller(&state, &headers).await?;
    accounts::validate_name("entity", &name)?;
    let db = &state.db.pool;
    let entity = accounts::entity_by_name(db, &name)
        .await?
        .ok_or_else(|| Error::not_found(format!("entity {name}")))?;
    Ok(data(objects::entity(db, &caller, &entity).await?))
}

#[derive(Debug, Deserialize)]
pub struct NewEntity {
    #[serde(default, alias = "Name")]
    name: String,
}

/// Users and teams are entities already. A push may "create" the caller's
/// own entity or one of their teams (it exists: answered as is); only an
/// admin creates a new one, as a team they own.
pub async fn create_entity(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<NewEntity>,
) -> ApiResult {
    let (caller, user) = super::signed_in(&state, &headers).await?;
    accounts::validate_name("entity", &body.name)?;
    let db = &state.db.pool;
    if let Some(entity) = accounts::entity_by_name(db, &body.name).await? {
        if access::entity_access(db, &caller, entity.id).await? < Access::Write {
            return Err(Error::Forbidden(format!(
                "entity {} is another user or a team you are not a member of: push to {}/...",
                entity.name, user.name
            ))
            .into());
        }
        return Ok(data(objects::entity(db, &caller, &entity).await?));
    }
    if !caller.is_admin() {
        return Err(Error::Forbidden(format!(
            "entity {} does not exist and only an administrator can create it: push to {}/...",
            body.name, user.name
        ))
        .into());
    }
    let entity = match accounts::create_team(db, &body.name, user.id).await {
        Ok(e) => e,
        // Created by a concurrent push in the meantime.
        Err(Error::Conflict(_)) => accounts::entity_by_name(db, &body.name)
            .await?
            .ok_or_else(|| Error::Internal("entity vanished after a conflict".into()))?,
        Err(e) => return Err(e.into()),
    };
    tracing::info!(entity = %entity.name, by = %user.name, "library: entity created");
    Ok(data_with(
        StatusCode::CREATED,
        objects::entity(db, &caller, &entity).await?,
    ))
}

pub async fn get_collection(
    State(state): State<AppState>,
    headers: HeaderMap,
    LibPath(path): LibPath<String>,
) -> ApiResult {
    let caller = auth::caller(&state, &headers).await?;
    let n = names(&state, &path, false)?;
    let (c, _) = visible_collection(&state, &caller, &n.entity, &n.collection)
        .await?
        .ok_or_else(|| Error::not_found(format!("collection {}/{}", n.entity, n.collection)))?;
    Ok(data(objects::collection(&state.db.pool, &c).await?))
}

#[derive(Debug, Deserialize)]
pub struct NewCollection {
    #[serde(default, alias = "Name")]
    name: String,
    #[serde(default, alias = "Entity")]
    entity: String,
    #[serde(default, alias = "Private")]
    private: bool,
}

pub async fn create_collection(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<NewCollection>,
) -> ApiResult {
    let (caller, user) = super::signed_in(&state, &headers).await?;
    let entity_id = parse_id("entity", &body.entity)?;
    accounts::validate_name("collection", &body.name)?;
    let db = &state.db.pool;
    let entity = accounts::entity_by_id(db, entity_id).await?;
    if access::entity_access(db, &caller, entity.id).await? < Access::Write {
        return Err(Error::Forbidden(format!(
            "you may not create collections in {}: push to {}/...",
            entity.name, user.name
        ))
        .into());
    }
    if let Some(c) = catalog::collection(db, &entity.name, &body.name).await? {
        return Ok(data(objects::collection(db, &c).await?));
    }
    let settings = &state.config.registry;
    if !caller.is_admin() && settings.user_collection_limit > 0 {
        let made = catalog::count_collections_created_by(db, user.id).await?;
        if made >= i64::from(settings.user_collection_limit) {
            return Err(Error::Forbidden(format!(
                "you have reached this registry's limit of {} collections",
                settings.user_collection_limit
            ))
            .into());
        }
    }
    // The Go client always sends `"private": false` (its zero value), so
    // only `true` is an explicit choice; otherwise the entity's and the
    // registry's defaults decide.
    let asked = (body.private || entity.default_private != 0).then_some(true);
    let private = settings.new_collection_private(asked);
    let c = match catalog::create_collection(db, entity.id, &body.name, private, user.id).await {
        Ok(c) => c,
        Err(Error::Conflict(_)) => catalog::collection(db, &entity.name, &body.name)
            .await?
            .ok_or_else(|| Error::Internal("collection vanished after a conflict".into()))?,
        Err(e) => return Err(e.into()),
    };
    tracing::info!(collection = %format!("{}/{}", c.entity_name, c.name), private, by = %user.name, "library: collection created");
    Ok(data_with(
        StatusCode::CREATED,
        objects::collection(db, &c).await?,
    ))
}

pub async fn get_container(
    State(state): State<AppState>,
    headers: HeaderMap,
    LibPath(path): LibPath<String>,
) -> ApiResult {
    let caller = auth::caller(&state, &headers).await?;
    let n = names(&state, &path, true)?;
    let name = n.container.unwrap_or_default();
    let shown = format!("container {}/{}/{name}", n.entity, n.collection);
    let (c, access) = visible_collection(&state, &caller, &n.entity, &n.collection)
        .await?
        .ok_or_else(|| Error::not_found(&shown))?;
    let db = &state.db.pool;
    let k = catalog::container(db, c.id, &name)
        .await?
        .ok_or_else(|| Error::not_found(&shown))?;
    Ok(data(objects::container(db, &c, &k, access).await?))
}

#[derive(Debug, Deserialize)]
pub struct NewContainer {
    #[serde(default, alias = "Name")]
    name: String,
    #[serde(default, alias = "Collection")]
    collection: String,
    #[serde(default, alias = "Description")]
    description: String,
}

pub async fn create_container(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<NewContainer>,
) -> ApiResult {
    let (caller, _) = super::signed_in(&state, &headers).await?;
    let collection_id = parse_id("collection", &body.collection)?;
    accounts::validate_name("container", &body.name)?;
    let db = &state.db.pool;
    let c = catalog::collection_by_id(db, collection_id)
        .await?
        .ok_or_else(|| Error::not_found(format!("collection {collection_id}")))?;
    let access = access::collection_access(db, &caller, &c).await?;
    if access < Access::Read {
        return Err(Error::not_found(format!("collection {collection_id}")).into());
    }
    require_write(&caller, access, &format!("{}/{}", c.entity_name, c.name))?;
    if let Some(k) = catalog::container(db, c.id, &body.name).await? {
        return Ok(data(objects::container(db, &c, &k, access).await?));
    }
    let k = match catalog::create_container(db, c.id, &body.name, &body.description).await {
        Ok(k) => k,
        Err(Error::Conflict(_)) => catalog::container(db, c.id, &body.name)
            .await?
            .ok_or_else(|| Error::Internal("container vanished after a conflict".into()))?,
        Err(e) => return Err(e.into()),
    };
    Ok(data_with(
        StatusCode::CREATED,
        objects::container(db, &c, &k, access).await?,
    ))
}
