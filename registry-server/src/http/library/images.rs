//! Images: lookup by tag or hash, creation by a push (step 4), deletion.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use serde::Deserialize;

use super::envelope::{ApiResult, JsonBody, LibPath, data, data_with};
use super::{Query, container_by_id, objects, parse_id, require_write, resolve};
use crate::error::Error;
use crate::http::auth;
use crate::model::{catalog, tags};
use crate::serve::AppState;

/// `GET /v1/images/{path}:{ref}?arch=X`. Images not uploaded yet are not
/// found: a push then POSTs `/v1/images`, which answers the existing one.
pub async fn get_image(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    LibPath(path): LibPath<String>,
) -> ApiResult {
    let caller = auth::caller(&state, &headers).await?;
    let q = Query::parse(&uri);
    let r = resolve(&state, &caller, &path, q.arch()).await?;
    Ok(data(
        objects::image(&state.db.pool, &r.collection, &r.container, &r.image).await?,
    ))
}

#[derive(Debug, Deserialize)]
pub struct NewImage {
    #[serde(default, alias = "Hash")]
    hash: String,
    #[serde(default, alias = "Container")]
    container: String,
    #[serde(default, alias = "Description")]
    description: String,
}

/// Get-or-create of the image with this hash in the container. The client
/// sends no arch here: it comes from the SIF on upload and from the tags.
pub async fn create_image(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<NewImage>,
) -> ApiResult {
    let (caller, user) = super::signed_in(&state, &headers).await?;
    let container_id = parse_id("container", &body.container)?;
    catalog::validate_hash(&body.hash)?;
    let (c, k, access) = container_by_id(&state, &caller, container_id).await?;
    require_write(&caller, access, &super::container_path(&c, &k))?;
    let db = &state.db.pool;
    let existed = catalog::image_by_hash(db, k.id, &body.hash)
        .await?
        .is_some();
    let image =
        catalog::get_or_create_image(db, k.id, &body.hash, &body.description, user.id).await?;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(data_with(status, objects::image(db, &c, &k, &image).await?))
}

/// `DELETE /v1/images/{path}:{ref}?arch=X`: 200 with the deleted image (a
/// 204 fails the client). Its tags go with it; a frozen one refuses.
pub async fn delete_image(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    LibPath(path): LibPath<String>,
) -> ApiResult {
    let caller = auth::caller(&state, &headers).await?;
    let q = Query::parse(&uri);
    let r = resolve(&state, &caller, &path, q.arch()).await?;
    let shown = super::container_path(&r.collection, &r.container);
    require_write(&caller, r.access, &shown)?;
    let db = &state.db.pool;
    let frozen: Vec<String> = tags::of_image(db, r.image.id)
        .await?
        .into_iter()
        .filter(|t| t.frozen != 0)
        .map(|t| t.name)
        .collect();
    if !frozen.is_empty() {
        return Err(Error::Conflict(format!(
            "the image carries the frozen tag(s) {}: it cannot be deleted",
            frozen.join(", ")
        ))
        .into());
    }
    let shown_image = objects::image(db, &r.collection, &r.container, &r.image).await?;
    catalog::delete_image(db, r.image.id).await?;
    let user = caller.user.as_ref().map(|u| u.name.as_str()).unwrap_or("");
    tracing::info!(image = %r.image.hash, container = %shown, by = %user, "library: image deleted");
    Ok(data(shown_image))
}
