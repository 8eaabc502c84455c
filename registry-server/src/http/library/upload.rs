//! Uploads in one piece (library-api.md §4.1): the legacy v1 POST of the
//! whole file, and the v2 single part flow, whose upload URL is served here:
//! `/v2/imagefile/_upload/<opaque id>`, one row of `uploads`, usable once,
//! expiring, and needing no token (the client sends none to it).
//!
//! Every variant streams the body into storage while hashing it, and makes
//! the image visible only once its size, its sha256 (the image's hash) and
//! its SIF structure check out (`publish::publish`).

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use rand::distr::{Alphanumeric, SampleString};
use serde::Deserialize;
use serde_json::json;

use super::envelope::{ApiError, ApiResult, JsonBody, LibPath, data, drain_then, small_body};
use super::{image_by_id, parse_id, public_url, require_write};
use crate::db::now_ms;
use crate::error::{Error, Result};
use crate::model::catalog::{Collection, Container, Image};
use crate::publish::{self, Expect};
use crate::serve::AppState;

/// How long a single-part upload URL may wait for its PUT.
const UPLOAD_URL_TTL_MS: i64 = 30 * 60 * 1000;
/// `uploads.kind` of a single-part upload URL.
pub(super) const KIND_SINGLE: &str = "library-single";

/// The caller's image, which they may write to.
pub(super) async fn writable_image(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
) -> Result<(Collection, Container, Image, i64)> {
    let (caller, user) = super::signed_in(state, headers).await?;
    let (c, k, i, access) = image_by_id(state, &caller, parse_id("image", id)?).await?;
    require_write(&caller, access, &super::container_path(&c, &k))?;
    Ok((c, k, i, user.id))
}

/// `POST /v1/imagefile/{imageID}` with the whole SIF as body (servers whose
/// apiVersion is below 2.0.0-alpha.1 get this from the client; any client
/// may still use it). Only 200 is accepted.
pub async fn legacy_upload(
    State(state): State<AppState>,
    headers: HeaderMap,
    LibPath(id): LibPath<String>,
    body: Body,
) -> Response {
    let limit = state.config.registry.upload_limit();
    let (c, k, image, _) = match writable_image(&state, &headers, &id).await {
        Ok(found) => found,
        Err(e) => return drain_then(body, limit, e).await,
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match receive(&state, &image, body, declared).await {
        Ok(image) => match super::objects::image(&state.db.pool, &c, &k, &image).await {
            Ok(v) => data(v),
            Err(e) => ApiError(e).into_response(),
        },
        Err(e) => ApiError(e).into_response(),
    }
}

/// Streams `body` in, checks it and publishes the image.
pub(super) async fn receive(
    state: &AppState,
    image: &Image,
    body: Body,
    size: Option<u64>,
) -> Result<Image> {
    let limit = state.config.registry.upload_limit();
    if let Some(n) = size
        && n > limit
    {
        return Err(Error::TooLarge(format!(
            "the image has {n} bytes, more than this registry's limit of {limit}"
        )));
    }
    let published = async {
        let upload = state.storage.ingest(body.into_data_stream(), limit).await?;
        publish::publish(
            &state.db.pool,
            &state.storage,
            image,
            &upload,
            Expect { size, sha256: None },
        )
        .await
    }
    .await
    .inspect_err(|e| tracing::warn!(image = image.id, "library: upload refused: {e}"))?;
    tracing::info!(image = published.id, hash = %published.hash, size = published.size, "library: image uploaded");
    Ok(published)
}

#[derive(Debug, Deserialize)]
pub struct UploadRequest {
    #[serde(default, alias = "Size", alias = "fileSize")]
    filesize: i64,
    #[serde(default, alias = "SHA256Checksum")]
    sha256sum: String,
}

/// `POST /v2/imagefile/{imageID}`: hands out the upload URL.
pub async fn start_upload(
    State(state): State<AppState>,
    headers: HeaderMap,
    LibPath(id): LibPath<String>,
    JsonBody(body): JsonBody<UploadRequest>,
) -> ApiResult {
    let (_, _, image, user_id) = writable_image(&state, &headers, &id).await?;
    let size = check_size(&state, body.filesize)?;
    check_declared_sha(&image, &body.sha256sum)?;
    let upload_id = new_upload_id();
    let now = now_ms();
    sqlx::query(
        "INSERT INTO uploads (id, image_id, user_id, kind, size, sha256, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&upload_id)
    .bind(image.id)
    .bind(user_id)
    .bind(KIND_SINGLE)
    .bind(size as i64)
    .bind(image.hash.trim_start_matches("sha256."))
    .bind(now)
    .bind(now + UPLOAD_URL_TTL_MS)
    .execute(&state.db.pool)
    .await?;
    Ok(data(json!({
        "uploadURL": public_url(&state, &format!("/v2/imagefile/_upload/{upload_id}")),
    })))
}

/// A positive size within the registry's limit.
pub(super) fn check_size(state: &AppState, filesize: i64) -> Result<u64> {
    let limit = state.config.registry.upload_limit();
    let size = u64::try_from(filesize)
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| Error::BadRequest(format!("filesize {filesize} is not a size")))?;
    if size > limit {
        return Err(Error::TooLarge(format!(
            "the image has {size} bytes, more than this registry's limit of {limit}"
        )));
    }
    Ok(size)
}

/// A sha256 the client declares must be the image's own.
fn check_declared_sha(image: &Image, declared: &str) -> Result<()> {
    let own = image.hash.trim_start_matches("sha256.");
    if !declared.is_empty() && !declared.eq_ignore_ascii_case(own) {
        return Err(Error::BadRequest(format!(
            "the file's sha256 {declared} is not the image's hash {}",
            image.hash
        )));
    }
    Ok(())
}

/// 32 random letters and digits: the upload URL's only credential.
pub(super) fn new_upload_id() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 32)
}

/// `PUT /v2/imagefile/_upload/{id}`: the bytes, without a token. The URL is
/// claimed (deleted) first, so it works once, even when the bytes are then
/// refused.
pub async fn put_upload(
    State(state): State<AppState>,
    LibPath(upload_id): LibPath<String>,
    body: Body,
) -> Response {
    let limit = state.config.registry.upload_limit();
    let claimed: Result<Option<(i64, i64, i64)>> = sqlx::query_as(
        "DELETE FROM uploads WHERE id = $1 AND kind = $2 RETURNING image_id, size, expires_at",
    )
    .bind(&upload_id)
    .bind(KIND_SINGLE)
    .fetch_optional(&state.db.pool)
    .await
    .map_err(Error::from);
    let (image_id, size, expires_at) = match claimed {
        Ok(Some(row)) => row,
        Ok(None) => {
            return drain_then(
                body,
                limit,
                Error::NotFound(
                    "unknown or already used upload URL: start the upload again".into(),
                ),
            )
            .await;
        }
        Err(e) => return drain_then(body, limit, e).await,
    };
    if expires_at <= now_ms() {
        return drain_then(
            body,
            limit,
            Error::NotFound("this upload URL has expired: start the upload again".into()),
        )
        .await;
    }
    let image = match crate::model::catalog::image_by_id(&state.db.pool, image_id).await {
        Ok(Some(i)) => i,
        Ok(None) => return drain_then(body, limit, Error::not_found("image")).await,
        Err(e) => return drain_then(body, limit, e).await,
    };
    match receive(&state, &image, body, Some(size as u64)).await {
        Ok(image) => {
            data(json!({"id": image.id.to_string(), "size": image.size, "uploaded": true}))
        }
        Err(e) => ApiError(e).into_response(),
    }
}

/// `PUT /v2/imagefile/{imageID}/_complete`: the upload itself already made
/// the image visible; this answers the quota and the container URL that
/// Apptainer prints.
pub async fn complete_upload(
    State(state): State<AppState>,
    headers: HeaderMap,
    LibPath(id): LibPath<String>,
    body: Body,
) -> ApiResult {
    // The body (`{}`) says nothing, but is read so the connection stays usable.
    small_body(body).await?;
    let (c, k, image, _) = writable_image(&state, &headers, &id).await?;
    if !image.is_uploaded() {
        return Err(Error::BadRequest(
            "no verified upload for this image: PUT the file to the upload URL first".into(),
        )
        .into());
    }
    Ok(data(completion(&state, &c, &k).await?))
}

/// `{"quota":{...},"containerUrl":"e/c/n"}`. No quotas here: total 0 means
/// unlimited; usage is what the entity stores.
pub(super) async fn completion(
    state: &AppState,
    c: &Collection,
    k: &Container,
) -> Result<serde_json::Value> {
    let usage: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(i.size), 0) AS BIGINT) FROM images i
         JOIN containers k ON k.id = i.container_id
         JOIN collections c ON c.id = k.collection_id
         WHERE c.entity_id = $1 AND i.uploaded = 1",
    )
    .bind(c.entity_id)
    .fetch_one(&state.db.pool)
    .await?;
    Ok(json!({
        "quota": {"quotaTotal": 0, "quotaUsage": usage},
        "containerUrl": super::container_path(c, k),
    }))
}
