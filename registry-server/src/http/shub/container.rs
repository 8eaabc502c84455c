//! `GET` and `DELETE /api/container/{collection}/{name}[:tag][@version]`.
//!
//! The GET is what `singularity pull shub://HOST/c/n:t` and `sregistry pull`
//! read (`image,name,tag,version` at least); `image` is a short-lived
//! download link, never a permanent secret.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use chrono::Utc;
use serde_json::{Value, json};

use super::resolve::{self, Reference};
use super::views::{iso, metadata};
use super::{Reply, authorization, download, hmac, reader};
use crate::error::{Error, Result};
use crate::model::access::{Access, Caller};
use crate::model::catalog::{self, Collection, Container, Image};
use crate::model::tags;
use crate::serve::AppState;

/// What a name points at.
struct Found {
    collection: Collection,
    container: Container,
    image: Image,
    frozen: bool,
    updated_at: i64,
}

pub async fn get(
    State(state): State<AppState>,
    Path((collection, segment)): Path<(String, String)>,
    headers: HeaderMap,
) -> Reply<Json<Value>> {
    let r = resolve::reference(&segment)?;
    let caller = reader(
        &state,
        &headers,
        hmac::Kind::Pull,
        (&collection, &r.name, &r.tag),
    )
    .await?;
    let found = find(&state, &caller, &collection, &r).await?;
    let image_url = download::link(&state, found.image.id, caller.id())?;
    Ok(Json(json!({
        "id": found.image.id,
        "name": found.container.name,
        "tag": r.tag,
        "version": found.image.hash,
        "add_date": iso(found.updated_at),
        "metrics": {},
        "frozen": found.frozen,
        "metadata": metadata(
            found.image.size,
            &found.image.arch,
            found.image.labels.as_deref(),
            &found.collection.entity_name,
        ),
        "collection": found.collection.name,
        "image": image_url,
    })))
}

async fn find(state: &AppState, caller: &Caller, collection: &str, r: &Reference) -> Result<Found> {
    let pool = &state.db.pool;
    let uri = format!("{collection}/{}:{}", r.name, r.tag);
    let Some((coll, _)) = resolve::collection(state, caller, collection).await? else {
        if caller.user.is_none() {
            // The same answer for a private collection and for none at all,
            // so that nothing private shows. A 403 rather than a 404 because
            // sregistry-cli signs its request and asks again only after a
            // 401 or 403 (and gives up on a 401): the owner of a private
            // collection can then pull it.
            return Err(Error::Forbidden(format!(
                "{uri} was not found, or it is private: sign the request as a user who may see it"
            )));
        }
        return Err(Error::not_found(format!("container {uri}")));
    };
    let not_found = || Error::not_found(format!("container {uri}"));
    let container = catalog::container(pool, coll.id, &r.name)
        .await?
        .ok_or_else(not_found)?;
    let tagged = tags::of_container(pool, container.id).await?;
    let image_id = match &r.version {
        Some(version) => catalog::image_by_hash(pool, container.id, version)
            .await?
            .map(|i| i.id),
        None => tags::resolve(pool, container.id, &r.tag, None).await?,
    };
    let image = match image_id {
        Some(id) => catalog::image_by_id(pool, id).await?,
        None => None,
    }
    .filter(|i| i.is_uploaded() && i.blob_digest.is_some())
    .ok_or_else(not_found)?;
    let tag = tagged
        .iter()
        .find(|t| t.name == r.tag && t.image_id == image.id);
    Ok(Found {
        frozen: tag.is_some_and(|t| t.frozen != 0),
        updated_at: tag
            .map(|t| t.updated_at)
            .or(image.uploaded_at)
            .unwrap_or(image.created_at),
        collection: coll,
        container,
        image,
    })
}

/// Deletes a tag: signed (`delete`) by an owner of the collection. 204;
/// 403 when the tag is frozen or the caller may not write; 404 when there
/// is no such tag (or the collection is invisible to the caller).
pub async fn delete(
    State(state): State<AppState>,
    Path((collection, segment)): Path<(String, String)>,
    headers: HeaderMap,
) -> Reply<StatusCode> {
    let r = resolve::reference(&segment)?;
    let Some(header) = authorization(&headers) else {
        return Err(Error::Forbidden(
            "deleting needs a signed request ('delete'), as `sregistry delete` sends".into(),
        )
        .into());
    };
    let user = hmac::authenticate(
        &state,
        header,
        hmac::Kind::Delete,
        (&collection, &r.name, &r.tag),
        Utc::now(),
    )
    .await?;
    let caller = Caller::user(user);
    let pool = &state.db.pool;
    let uri = format!("{collection}/{}:{}", r.name, r.tag);
    let not_found = || Error::not_found(format!("container {uri}"));
    let (coll, access) = resolve::collection(&state, &caller, &collection)
        .await?
        .ok_or_else(not_found)?;
    if access < Access::Write {
        return Err(Error::Forbidden(format!(
            "only owners of {}/{} may delete from it",
            coll.entity_name, coll.name
        ))
        .into());
    }
    let container = catalog::container(pool, coll.id, &r.name)
        .await?
        .ok_or_else(not_found)?;
    let named: Vec<_> = tags::of_container(pool, container.id)
        .await?
        .into_iter()
        .filter(|t| t.name == r.tag)
        .collect();
    if named.is_empty() {
        return Err(not_found().into());
    }
    // All architectures of the tag or none: a frozen one keeps them all.
    if named.iter().any(|t| t.frozen != 0) {
        return Err(Error::Forbidden(format!("{uri} is frozen: it cannot be deleted")).into());
    }
    for t in &named {
        tags::delete(pool, container.id, &t.arch, &t.name)
            .await
            .map_err(|e| match e {
                // Frozen between the check and now.
                Error::Conflict(m) => Error::Forbidden(m),
                other => other,
            })?;
    }
    // An image no tag names any more goes with its tag, as sregistry's
    // container row did; its blob stays until `gc` finds it unreferenced.
    for t in &named {
        if tags::of_image(pool, t.image_id).await?.is_empty() {
            catalog::delete_image(pool, t.image_id).await?;
        }
    }
    tracing::info!(uri = %uri, user = %caller.user.as_ref().map(|u| u.name.as_str()).unwrap_or(""), "shub delete");
    Ok(StatusCode::NO_CONTENT)
}
