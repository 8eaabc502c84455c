//! Multipart uploads (library-api.md §4.1, "v2 multipart"), which the client
//! tries for files over 64 MiB.
//!
//! The upload is a row of `uploads`; each part arrives at its own URL
//! (`/v2/imagefile/_part/<upload id>/<n>`, no token, like an S3 presigned
//! URL), streams into a temporary object while hashed, and is kept under
//! `uploads/` with its size and sha256 in `upload_parts`. The completion
//! streams the parts in order into one final ingest, so the whole file is
//! hashed once and checked like any other upload before the image becomes
//! visible. Everything under `uploads/` that an abandoned upload leaves is
//! what `gc` removes.
//!
//! We answer `options.s3compliant: "false"`: the parts are ours, not S3's,
//! so the client need not hash every part twice to send an
//! `x-amz-content-sha256` header. A part sha256 it sends anyway is checked.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;
use object_store::path::Path;
use serde::Deserialize;
use serde_json::json;

use super::envelope::{ApiError, ApiResult, JsonBody, LibPath, data, drain_then};
use super::upload::{check_size, completion, new_upload_id, writable_image};
use crate::db::now_ms;
use crate::error::{Error, Result};
use crate::publish::{self, Expect};
use crate::serve::AppState;
use crate::storage::Storage;

/// `uploads.kind` of a multipart upload.
const KIND: &str = "library-multipart";
/// The part size we ask for (what Sylabs' library uses), grown for huge
/// files so that no upload needs more than [`MAX_PARTS`] parts.
const PART_SIZE: u64 = 64 << 20;
const MAX_PARTS: u64 = 10_000;
/// How long a multipart upload may take from start to completion: the
/// default grace of `sreg-server gc`, which removes what lies under
/// `uploads/` for longer than that, parts of live uploads included.
const TTL_MS: i64 = 3600 * 1000;

#[derive(Debug, Deserialize)]
pub struct StartRequest {
    #[serde(default, alias = "Size", alias = "fileSize")]
    filesize: i64,
}

/// `POST /v2/imagefile/{imageID}/_multipart`.
pub async fn start(
    State(state): State<AppState>,
    headers: HeaderMap,
    LibPath(id): LibPath<String>,
    JsonBody(body): JsonBody<StartRequest>,
) -> ApiResult {
    let (_, _, image, user_id) = writable_image(&state, &headers, &id).await?;
    let size = check_size(&state, body.filesize)?;
    let part_size = PART_SIZE.max(size.div_ceil(MAX_PARTS));
    let total = size.div_ceil(part_size);
    let upload_id = new_upload_id();
    let now = now_ms();
    sqlx::query(
        "INSERT INTO uploads (id, image_id, user_id, kind, size, sha256, part_size, total_parts,
                              created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&upload_id)
    .bind(image.id)
    .bind(user_id)
    .bind(KIND)
    .bind(size as i64)
    .bind(image.hash.trim_start_matches("sha256."))
    .bind(part_size as i64)
    .bind(total as i64)
    .bind(now)
    .bind(now + TTL_MS)
    .execute(&state.db.pool)
    .await?;
    Ok(data(json!({
        "uploadID": upload_id,
        "totalParts": total,
        "partSize": part_size,
        "options": {"s3compliant": "false"},
    })))
}

/// A multipart upload under way.
#[derive(Debug, sqlx::FromRow)]
struct Upload {
    id: String,
    image_id: i64,
    size: i64,
    part_size: i64,
    total_parts: i64,
    expires_at: i64,
}

impl Upload {
    /// The size part `n` must have.
    fn part_len(&self, n: i64) -> Option<u64> {
        if n < 1 || n > self.total_parts {
            return None;
        }
        let len = if n < self.total_parts {
            self.part_size
        } else {
            self.size - (self.total_parts - 1) * self.part_size
        };
        u64::try_from(len).ok()
    }
}

/// The upload `id`, of `image_id` when given; unknown and expired ones are
/// both 404.
async fn find(state: &AppState, id: &str, image_id: Option<i64>) -> Result<Upload> {
    let upload: Option<Upload> = sqlx::query_as(
        "SELECT id, image_id, size, part_size, total_parts, expires_at FROM uploads
         WHERE id = $1 AND kind = $2",
    )
    .bind(id)
    .bind(KIND)
    .fetch_optional(&state.db.pool)
    .await?;
    let upload = upload
        .filter(|u| image_id.is_none_or(|i| i == u.image_id))
        .ok_or_else(|| {
            Error::NotFound("unknown multipart upload: start the upload again".into())
        })?;
    if upload.expires_at <= now_ms() {
        return Err(Error::NotFound(
            "this multipart upload has expired: start the upload again".into(),
        ));
    }
    Ok(upload)
}

fn part_path(storage: &Storage, upload_id: &str, n: i64) -> Path {
    parts_prefix(storage, upload_id).join(n.to_string())
}

fn parts_prefix(storage: &Storage, upload_id: &str) -> Path {
    storage
        .uploads_prefix()
        .join("library-multipart")
        .join(upload_id)
}

#[derive(Debug, Deserialize)]
pub struct PartRequest {
    #[serde(default, rename = "partSize", alias = "PartSize")]
    part_size: i64,
    #[serde(default, rename = "uploadID", alias = "UploadID", alias = "uploadId")]
    upload_id: String,
    #[serde(default, rename = "partNumber", alias = "PartNumber")]
    part_number: i64,
    #[serde(default, alias = "SHA256Checksum")]
    sha256sum: String,
}

/// `PUT /v2/imagefile/{imageID}/_multipart`: the URL for one part.
pub async fn part_url(
    State(state): State<AppState>,
    headers: HeaderMap,
    LibPath(id): LibPath<String>,
    JsonBody(body): JsonBody<PartRequest>,
) -> ApiResult {
    let (_, _, image, _) = writable_image(&state, &headers, &id).await?;
    let upload = find(&state, &body.upload_id, Some(image.id)).await?;
    let n = body.part_number;
    let expected = upload.part_len(n).ok_or_else(|| {
        Error::BadRequest(format!(
            "part {n} does not exist: this upload has parts 1 to {}",
            upload.total_parts
        ))
    })?;
    if u64::try_from(body.part_size).ok() != Some(expected) {
        return Err(Error::BadRequest(format!(
            "part {n} has {expected} bytes, not {}",
            body.part_size
        ))
        .into());
    }
    let declared = body.sha256sum.to_ascii_lowercase();
    if !declared.is_empty() && !is_sha256_hex(&declared) {
        return Err(Error::BadRequest(format!("{:?} is not a sha256", body.sha256sum)).into());
    }
    // size -1: announced, not received yet.
    sqlx::query(
        "INSERT INTO upload_parts (upload_id, part_number, size, sha256) VALUES ($1, $2, -1, $3)
         ON CONFLICT (upload_id, part_number) DO UPDATE SET size = -1, sha256 = excluded.sha256",
    )
    .bind(&upload.id)
    .bind(n)
    .bind(&declared)
    .execute(&state.db.pool)
    .await?;
    Ok(data(json!({
        "presignedURL": super::public_url(&state, &format!("/v2/imagefile/_part/{}/{n}", upload.id)),
    })))
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `PUT /v2/imagefile/_part/{uploadID}/{n}`: one part's bytes, without a
/// token. Answers 200 with an `ETag` (the part's sha256, quoted), which the
/// completion must name.
pub async fn put_part(
    State(state): State<AppState>,
    headers: HeaderMap,
    LibPath((upload_id, part)): LibPath<(String, String)>,
    body: Body,
) -> Response {
    let limit = state.config.registry.upload_limit();
    let checked = async {
        let upload = find(&state, &upload_id, None).await?;
        let n = part.parse::<i64>().unwrap_or(0);
        let expected = upload
            .part_len(n)
            .ok_or_else(|| Error::NotFound(format!("this upload has no part {part:?}")))?;
        let announced: Option<String> = sqlx::query_scalar(
            "SELECT sha256 FROM upload_parts WHERE upload_id = $1 AND part_number = $2",
        )
        .bind(&upload.id)
        .bind(n)
        .fetch_optional(&state.db.pool)
        .await?;
        Ok::<_, Error>((upload, n, expected, announced.unwrap_or_default()))
    }
    .await;
    let (upload, n, expected, mut declared) = match checked {
        Ok(v) => v,
        Err(e) => return drain_then(body, limit, e).await,
    };
    // An S3-style client also sends the part's sha256 as a header.
    if let Some(h) = headers
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase)
        .filter(|h| is_sha256_hex(h))
    {
        declared = h;
    }
    match receive_part(&state, &upload, n, expected, &declared, body).await {
        Ok(sha) => {
            let etag = format!("\"{sha}\"");
            let mut resp = StatusCode::OK.into_response();
            if let Ok(v) = HeaderValue::from_str(&etag) {
                resp.headers_mut().insert(header::ETAG, v);
            }
            resp
        }
        Err(e) => ApiError(e).into_response(),
    }
}

async fn receive_part(
    state: &AppState,
    upload: &Upload,
    n: i64,
    expected: u64,
    declared: &str,
    body: Body,
) -> Result<String> {
    let storage = &state.storage;
    let temp = storage
        .ingest(
            body.into_data_stream(),
            state.config.registry.upload_limit(),
        )
        .await?;
    let problem = if temp.size != expected {
        Some(format!(
            "part {n} has {expected} bytes, but {} arrived: the part was truncated or padded",
            temp.size
        ))
    } else if !declared.is_empty() && declared != temp.sha256 {
        Some(format!(
            "the sha256 of part {n} is {}, not the declared {declared}",
            temp.sha256
        ))
    } else {
        None
    };
    if let Some(p) = problem {
        storage.discard(&temp.temp).await;
        return Err(Error::BadRequest(p));
    }
    let target = part_path(storage, &upload.id, n);
    if let Err(e) = storage.store.rename(&temp.temp, &target).await {
        storage.discard(&temp.temp).await;
        return Err(e.into());
    }
    sqlx::query(
        "INSERT INTO upload_parts (upload_id, part_number, size, sha256) VALUES ($1, $2, $3, $4)
         ON CONFLICT (upload_id, part_number) DO UPDATE SET size = excluded.size, sha256 = excluded.sha256",
    )
    .bind(&upload.id)
    .bind(n)
    .bind(temp.size as i64)
    .bind(&temp.sha256)
    .execute(&state.db.pool)
    .await?;
    Ok(temp.sha256)
}

#[derive(Debug, Deserialize)]
pub struct CompletedPart {
    #[serde(default, rename = "partNumber", alias = "PartNumber")]
    part_number: i64,
    #[serde(default, alias = "Token")]
    token: String,
}

#[derive(Debug, Deserialize)]
pub struct CompleteRequest {
    #[serde(default, rename = "uploadID", alias = "UploadID", alias = "uploadId")]
    upload_id: String,
    #[serde(default, rename = "completedParts", alias = "CompletedParts")]
    completed_parts: Option<Vec<CompletedPart>>,
}

/// `PUT /v2/imagefile/{imageID}/_multipart_complete`: joins the parts, checks
/// the whole and publishes the image. Answers 200 with a body (the client
/// fails on an empty one). The upload is used up, whatever the outcome.
pub async fn complete(
    State(state): State<AppState>,
    headers: HeaderMap,
    LibPath(id): LibPath<String>,
    JsonBody(body): JsonBody<CompleteRequest>,
) -> ApiResult {
    let (c, k, image, _) = writable_image(&state, &headers, &id).await?;
    let upload = find(&state, &body.upload_id, Some(image.id)).await?;
    let parts: Vec<(i64, i64, String)> = sqlx::query_as(
        "SELECT part_number, size, sha256 FROM upload_parts WHERE upload_id = $1 ORDER BY part_number",
    )
    .bind(&upload.id)
    .fetch_all(&state.db.pool)
    .await?;
    // Claim it: a concurrent completion or abort finds nothing.
    let claimed = sqlx::query("DELETE FROM uploads WHERE id = $1")
        .bind(&upload.id)
        .execute(&state.db.pool)
        .await?;
    if claimed.rows_affected() == 0 {
        return Err(
            Error::NotFound("unknown multipart upload: start the upload again".into()).into(),
        );
    }
    let result = async {
        check_parts(
            &upload,
            &parts,
            body.completed_parts.as_deref().unwrap_or(&[]),
        )?;
        let store = state.storage.store.clone();
        let paths: Vec<Path> = (1..=upload.total_parts)
            .map(|n| part_path(&state.storage, &upload.id, n))
            .collect();
        let joined = futures_util::stream::iter(paths)
            .then(move |p| {
                let store = store.clone();
                async move { store.get(&p).await }
            })
            .map_ok(|got| got.into_stream())
            .try_flatten()
            .boxed();
        let whole = state
            .storage
            .ingest(joined, state.config.registry.upload_limit())
            .await?;
        publish::publish(
            &state.db.pool,
            &state.storage,
            &image,
            &whole,
            Expect {
                size: u64::try_from(upload.size).ok(),
                sha256: None,
            },
        )
        .await
    }
    .await;
    remove_parts(&state.storage, &upload.id).await;
    let published = result.inspect_err(|e| {
        tracing::warn!(image = image.id, "library: multipart upload refused: {e}")
    })?;
    tracing::info!(image = published.id, hash = %published.hash, size = published.size, parts = upload.total_parts, "library: multipart upload complete");
    Ok(data(completion(&state, &c, &k).await?))
}

/// Every part received, each with its size, and named by the completion
/// with the ETag it got.
fn check_parts(
    upload: &Upload,
    parts: &[(i64, i64, String)],
    named: &[CompletedPart],
) -> Result<()> {
    for n in 1..=upload.total_parts {
        let expected = upload.part_len(n).map(|l| l as i64);
        let got = parts.iter().find(|(p, _, _)| *p == n);
        match got {
            Some((_, size, _)) if Some(*size) == expected => {}
            _ => {
                return Err(Error::BadRequest(format!(
                    "part {n} of {} was not received",
                    upload.total_parts
                )));
            }
        }
    }
    if named.len() as i64 != upload.total_parts {
        return Err(Error::BadRequest(format!(
            "the completion names {} parts, the upload has {}",
            named.len(),
            upload.total_parts
        )));
    }
    for p in named {
        let token = p.token.trim().trim_matches('"');
        let matches = parts
            .iter()
            .any(|(n, _, sha)| *n == p.part_number && sha.eq_ignore_ascii_case(token));
        if !matches {
            return Err(Error::BadRequest(format!(
                "part {} is named with the token {:?}, which is not the ETag it got",
                p.part_number, p.token
            )));
        }
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
pub struct AbortRequest {
    #[serde(default, rename = "uploadID", alias = "UploadID", alias = "uploadId")]
    upload_id: String,
}

/// `PUT /v2/imagefile/{imageID}/_multipart_abort`: forgets the upload and
/// removes its parts.
pub async fn abort(
    State(state): State<AppState>,
    headers: HeaderMap,
    LibPath(id): LibPath<String>,
    JsonBody(body): JsonBody<AbortRequest>,
) -> ApiResult {
    let (_, _, image, _) = writable_image(&state, &headers, &id).await?;
    // Expired uploads may be aborted too: only the image must match.
    let row: Option<(String,)> =
        sqlx::query_as("SELECT id FROM uploads WHERE id = $1 AND kind = $2 AND image_id = $3")
            .bind(&body.upload_id)
            .bind(KIND)
            .bind(image.id)
            .fetch_optional(&state.db.pool)
            .await?;
    let Some((upload_id,)) = row else {
        return Err(Error::NotFound("unknown multipart upload".into()).into());
    };
    sqlx::query("DELETE FROM uploads WHERE id = $1")
        .bind(&upload_id)
        .execute(&state.db.pool)
        .await?;
    remove_parts(&state.storage, &upload_id).await;
    tracing::info!(image = image.id, "library: multipart upload aborted");
    Ok(data(json!({"uploadID": upload_id, "aborted": true})))
}

/// Removes the stored parts of an upload; what fails to go is left to `gc`.
async fn remove_parts(storage: &Storage, upload_id: &str) {
    let prefix = parts_prefix(storage, upload_id);
    let listed: Vec<_> = match storage.store.list(Some(&prefix)).try_collect().await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("could not list the parts of an upload: {e}");
            return;
        }
    };
    for meta in listed {
        storage.discard(&meta.location).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upload(size: i64, part: i64) -> Upload {
        Upload {
            id: "u".into(),
            image_id: 1,
            size,
            part_size: part,
            total_parts: (size + part - 1) / part,
            expires_at: i64::MAX,
        }
    }

    #[test]
    fn part_lengths_cover_the_file() {
        let u = upload(67_108_874, 67_108_864);
        assert_eq!(u.total_parts, 2);
        assert_eq!(u.part_len(1), Some(67_108_864));
        assert_eq!(u.part_len(2), Some(10));
        assert_eq!(u.part_len(0), None);
        assert_eq!(u.part_len(3), None);
        let u = upload(128, 64);
        assert_eq!(u.part_len(2), Some(64));
    }

    #[test]
    fn completion_must_name_every_part_with_its_etag() {
        let u = upload(20, 10);
        let parts = vec![(1, 10, "aa".to_string()), (2, 10, "bb".to_string())];
        let named = |t1: &str, t2: &str| {
            vec![
                CompletedPart {
                    part_number: 1,
                    token: t1.into(),
                },
                CompletedPart {
                    part_number: 2,
                    token: t2.into(),
                },
            ]
        };
        assert!(check_parts(&u, &parts, &named("\"aa\"", "\"bb\"")).is_ok());
        assert!(check_parts(&u, &parts, &named("\"aa\"", "\"aa\"")).is_err());
        assert!(check_parts(&u, &parts, &named("\"aa\"", "\"bb\"")[..1]).is_err());
        let missing = vec![(1, 10, "aa".to_string()), (2, -1, "".to_string())];
        assert!(check_parts(&u, &missing, &named("\"aa\"", "\"\"")).is_err());
    }
}
