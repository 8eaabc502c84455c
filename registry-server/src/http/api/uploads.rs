//! Push: `POST /api/v1/uploads` checks everything that can be checked
//! before a byte is sent (token, reference, access, size limit, tags) and
//! opens a session; `PUT .../log` streams the build log into a blob;
//! `PUT .../image` streams the SIF through the upload pipeline (hashed once,
//! size and sha256 compared with the declaration, SIF structure and
//! architecture checked by `publish.rs`), then creates what the reference
//! lacks, publishes the image with its build metadata in one transaction,
//! and tags it. A session opened without a sha256 stops before publishing
//! (202) until `POST .../commit` confirms the client's own hash of what it
//! sent, so that the client reads its file only once.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header::CONTENT_LENGTH};
use axum::response::{IntoResponse, Response};
use sreg_api::v1::{
    BuildInfo, BuildMetadata, ErrorBody, Image as ImageView, LogInfo, UploadCommit, UploadReceived,
    UploadRequest, UploadSession,
};

use super::error::{ApiError, ApiResult};
use super::json::JsonBody;
use super::resolve::{self, PushTarget};
use super::sessions::{self, Received, SESSION_TTL_MS, Session};
use super::views;
use crate::db::now_ms;
use crate::error::Error;
use crate::http::auth;
use crate::model::accounts::User;
use crate::model::catalog::{self, Image};
use crate::model::tags;
use crate::publish::{self, Expect};
use crate::serve::AppState;

/// Largest build log accepted.
pub const LOG_LIMIT: u64 = 64 << 20;
/// Longest accepted value of a build metadata field other than the recipe.
const FIELD_LIMIT: usize = 4096;

async fn signed_in(state: &AppState, headers: &HeaderMap) -> ApiResult<User> {
    let caller = auth::user(state, headers).await?;
    Ok(caller.user.expect("auth::user returns a user"))
}

/// Open an upload session.
///
/// Checks the token, the reference (a two-part `COLLECTION/CONTAINER` names
/// the one such collection the caller can see, or a new one under the
/// caller's own entity), the caller's right to push there, the declared size
/// against the registry's limit, the tags, and the build metadata. Nothing
/// is created until the image arrives.
#[utoipa::path(
    post,
    path = "/api/v1/uploads",
    tag = "push and pull",
    request_body = UploadRequest,
    responses(
        (status = 201, description = "Session opened", body = UploadSession),
        (status = 400, description = "Bad reference, tag, digest or metadata", body = ErrorBody),
        (status = 401, description = "No token, or a bad one", body = ErrorBody),
        (status = 403, description = "The caller may not push there", body = ErrorBody),
        (status = 404, description = "No such user or team", body = ErrorBody),
        (status = 409, description = "Ambiguous two-part reference, or a frozen tag", body = ErrorBody),
        (status = 413, description = "Larger than the registry's limit", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn start_upload(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<UploadRequest>,
) -> ApiResult<(StatusCode, Json<UploadSession>)> {
    let user = signed_in(&state, &headers).await?;
    let r = resolve::parse_ref(&req.reference)?;
    if r.tag.starts_with("sha256.") {
        return Err(ApiError::bad_request(
            "push to a tag (ENTITY/COLLECTION/CONTAINER:TAG), not to a sha256 hash",
        ));
    }
    let mut all_tags = vec![r.tag.clone()];
    for t in &req.tags {
        tags::validate_tag(t)?;
        if t.starts_with("sha256.") {
            return Err(ApiError::bad_request(format!(
                "{t:?} is not a tag: tags of the form sha256.<hex> are reserved for pulling by content"
            )));
        }
        if !all_tags.contains(t) {
            all_tags.push(t.clone());
        }
    }
    let sha256 = match &req.sha256 {
        Some(declared) => {
            let sha = declared.to_ascii_lowercase();
            catalog::validate_hash(&format!("sha256.{sha}"))
                .map_err(|_| ApiError::bad_request("sha256 must be 64 hex digits"))?;
            Some(sha)
        }
        None => None,
    };
    if req.size == 0 {
        return Err(ApiError::bad_request("an image cannot be empty"));
    }
    let limit = state.config.registry.upload_limit();
    if req.size > limit {
        return Err(Error::TooLarge(format!(
            "the image has {} bytes, more than this registry's limit of {limit} bytes",
            req.size
        ))
        .into());
    }
    if let Some(a) = &req.arch
        && sreg_sif::Arch::from_name(a).is_none()
    {
        return Err(ApiError::bad_request(format!(
            "unknown architecture {a:?}: use a SIF name such as amd64, arm64 or ppc64le"
        )));
    }
    let build = req.build.map(check_build).transpose()?;
    let target = resolve::push_target(&state, &user, &r).await?;
    if let (Some(k), Some(arch), Some(sha)) = (&target.container, &req.arch, &sha256) {
        check_frozen(&state, k.id, arch, &all_tags, sha).await?;
    }
    let now = now_ms();
    let session = Session {
        id: Session::new_id(),
        user_id: user.id,
        entity: target.entity.name.clone(),
        collection: target.collection_name.clone(),
        container: target.container_name.clone(),
        tags: all_tags,
        size: req.size,
        sha256,
        received: None,
        arch: req.arch,
        private: req.private,
        build,
        log: None,
        created_at: now,
        expires_at: now + SESSION_TTL_MS,
    };
    sessions::save(&state.storage, &session).await?;
    let base = format!("/api/v1/uploads/{}", session.id);
    Ok((
        StatusCode::CREATED,
        Json(UploadSession {
            reference: format!("{}:{}", target.path(), session.tags[0]),
            creates_collection: target.collection.is_none(),
            expires_at: views::time(session.expires_at),
            image_url: format!("{base}/image"),
            log_url: format!("{base}/log"),
            id: session.id,
        }),
    ))
}

/// Upload the build log of a session (raw body, at most 64 MiB).
///
/// Stored as a blob at its content address and shown with the image once
/// the image is published.
#[utoipa::path(
    put,
    path = "/api/v1/uploads/{id}/log",
    tag = "push and pull",
    params(("id" = String, Path, description = "Upload session id")),
    request_body(content = String, content_type = "text/plain", description = "The build log"),
    responses(
        (status = 200, description = "Log stored", body = LogInfo),
        (status = 401, description = "No token, or a bad one", body = ErrorBody),
        (status = 404, description = "No such session", body = ErrorBody),
        (status = 413, description = "Larger than 64 MiB", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn put_log(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<LogInfo>> {
    let user = signed_in(&state, &headers).await?;
    let mut session = sessions::load(&state.storage, &id, user.id).await?;
    if content_length(&headers).is_some_and(|n| n > LOG_LIMIT) {
        return Err(log_too_large());
    }
    let upload = state
        .storage
        .ingest(body.into_data_stream(), LOG_LIMIT)
        .await
        .map_err(|e| match e {
            Error::TooLarge(_) => log_too_large(),
            other => other.into(),
        })?;
    state.storage.commit(&upload).await?;
    let info = LogInfo {
        size: upload.size as i64,
        sha256: upload.sha256.clone(),
    };
    session.log = Some(info.clone());
    sessions::save(&state.storage, &session).await?;
    Ok(Json(info))
}

fn log_too_large() -> ApiError {
    Error::TooLarge(format!(
        "the build log is larger than {LOG_LIMIT} bytes: send its tail"
    ))
    .into()
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// Upload the SIF of a session (raw body) and publish it.
///
/// The bytes are hashed once on the way to a temporary object; their size
/// and sha256 must match the session's, the SIF must be sound and of the
/// declared architecture. Only then is the image published, with its build
/// metadata, and tagged.
#[utoipa::path(
    put,
    path = "/api/v1/uploads/{id}/image",
    tag = "push and pull",
    params(("id" = String, Path, description = "Upload session id")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The SIF file"),
    responses(
        (status = 201, description = "Image published (the session declared its sha256)", body = sreg_api::v1::Image),
        (status = 202, description = "Received and checked; publish it with `commit`", body = UploadReceived),
        (status = 400, description = "Size, sha256, SIF structure or architecture do not match", body = ErrorBody),
        (status = 401, description = "No token, or a bad one", body = ErrorBody),
        (status = 403, description = "The caller may no longer push there", body = ErrorBody),
        (status = 404, description = "No such session", body = ErrorBody),
        (status = 409, description = "A tag is frozen", body = ErrorBody),
        (status = 413, description = "Larger than the registry's limit", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn put_image(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let user = signed_in(&state, &headers).await?;
    let mut session = sessions::load(&state.storage, &id, user.id).await?;
    if session.received.is_some() {
        return Err(ApiError::status(
            StatusCode::CONFLICT,
            "this session already has its image: commit it, or start the push again",
        ));
    }
    if let Some(n) = content_length(&headers)
        && n != session.size
    {
        return Err(ApiError::bad_request(format!(
            "the body has {n} bytes, but the upload declared {}",
            session.size
        )));
    }
    let limit = state.config.registry.upload_limit();
    let upload = state.storage.ingest(body.into_data_stream(), limit).await?;
    let expect = Expect {
        size: Some(session.size),
        sha256: session.sha256.clone(),
    };
    let (facts, digest) = publish::verify_and_commit(&state.storage, &upload, &expect).await?;
    let received = Received {
        sha256: upload.sha256.clone(),
        size: upload.size,
        digest,
        facts,
    };
    if session.sha256.is_some() {
        return Ok(finish(&state, &user, &session, received)
            .await?
            .into_response());
    }
    // The client hashed while sending: wait for its word before publishing.
    session.received = Some(received.clone());
    sessions::save(&state.storage, &session).await?;
    let answer = UploadReceived {
        sha256: received.sha256,
        size: received.size,
        commit_url: format!("/api/v1/uploads/{}/commit", session.id),
    };
    Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
}

/// Confirm the sha256 of an image sent without one; publish it if it matches.
///
/// The client hashes the file while sending it, so it reads it only once.
/// A mismatch means the bytes changed on the way: nothing is published, and
/// the push must start again.
#[utoipa::path(
    post,
    path = "/api/v1/uploads/{id}/commit",
    tag = "push and pull",
    params(("id" = String, Path, description = "Upload session id")),
    request_body = UploadCommit,
    responses(
        (status = 201, description = "Image published", body = sreg_api::v1::Image),
        (status = 400, description = "The sha256 differs from what was received", body = ErrorBody),
        (status = 401, description = "No token, or a bad one", body = ErrorBody),
        (status = 404, description = "No such session", body = ErrorBody),
        (status = 409, description = "No image received yet, or a tag is frozen", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn commit_image(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(commit): JsonBody<UploadCommit>,
) -> ApiResult<(StatusCode, Json<ImageView>)> {
    let user = signed_in(&state, &headers).await?;
    let session = sessions::load(&state.storage, &id, user.id).await?;
    let Some(received) = session.received.clone() else {
        return Err(ApiError::status(
            StatusCode::CONFLICT,
            "no image received in this session yet: PUT it first",
        ));
    };
    if !commit.sha256.eq_ignore_ascii_case(&received.sha256) {
        // The stored bytes stay unreferenced; gc removes them.
        sessions::remove(&state.storage, &session.id).await;
        return Err(ApiError::bad_request(format!(
            "the registry received bytes with sha256 {}, but the client sent {}: the upload was corrupted on the way; push again",
            received.sha256, commit.sha256
        )));
    }
    finish(&state, &user, &session, received).await
}

/// Publishes a verified image: creates what the reference lacks, publishes
/// with the build metadata in one transaction, and tags.
async fn finish(
    state: &AppState,
    user: &User,
    session: &Session,
    received: Received,
) -> ApiResult<(StatusCode, Json<ImageView>)> {
    let Received {
        sha256,
        size,
        digest,
        facts,
    } = received;
    if let Some(declared) = &session.arch {
        publish::check_arch(&probe(&facts.arch), declared)?;
    }
    let arch = if !facts.arch.is_empty() {
        facts.arch.clone()
    } else {
        session.arch.clone().unwrap_or_else(|| "amd64".into())
    };

    // Access is checked again: it may have changed since the session opened.
    let r = sreg_api::Reference {
        host: None,
        entity: Some(session.entity.clone()),
        collection: session.collection.clone(),
        container: session.container.clone(),
        tag: session.tags[0].clone(),
    };
    let target: PushTarget = resolve::push_target(state, user, &r).await?;
    if let Some(k) = &target.container {
        check_frozen(state, k.id, &arch, &session.tags, &sha256).await?;
    }
    let (collection, container) =
        resolve::create_missing(state, user, &target, session.private).await?;
    let db = &state.db.pool;
    let hash = format!("sha256.{sha256}");
    let image = catalog::get_or_create_image(db, container.id, &hash, "", user.id).await?;

    let build = (session.build.is_some() || session.log.is_some()).then(|| BuildInfo {
        metadata: session.build.clone().unwrap_or_default(),
        size: size as i64,
        sha256: sha256.clone(),
        log: session.log.clone(),
        pushed_by: Some(user.name.clone()),
    });
    let mut published = publish::published(&facts, size, digest);
    published.build = match &build {
        Some(b) => Some(serde_json::to_string(b).map_err(|e| Error::Internal(e.to_string()))?),
        None => None,
    };
    let image = catalog::publish_image(db, image.id, &published).await?;
    for t in &session.tags {
        tags::set(db, container.id, &arch, t, image.id).await?;
    }
    sessions::remove(&state.storage, &session.id).await;
    tracing::info!(
        image = %format!("{}/{}/{}:{}", collection.entity_name, collection.name, container.name, session.tags[0]),
        size,
        user = %user.name,
        "image pushed over /api/v1"
    );
    let view = views::image(
        state,
        &collection,
        &container,
        &image,
        Some(&session.tags[0]),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// An image row that only carries an architecture, for `publish::check_arch`.
fn probe(arch: &str) -> Image {
    Image {
        id: 0,
        container_id: 0,
        hash: String::new(),
        size: 0,
        arch: arch.to_string(),
        uploaded: 0,
        blob_digest: None,
        description: String::new(),
        signed: 0,
        encrypted: 0,
        deffile: None,
        labels: None,
        partitions: None,
        build: None,
        fingerprints: None,
        created_by: None,
        created_at: 0,
        uploaded_at: None,
        downloads: 0,
    }
}

/// Refuses tags that are frozen on another image.
async fn check_frozen(
    state: &AppState,
    container_id: i64,
    arch: &str,
    names: &[String],
    sha256: &str,
) -> ApiResult<()> {
    let hash = format!("sha256.{sha256}");
    for name in names {
        let frozen: Option<(String,)> = sqlx::query_as(
            "SELECT i.hash FROM tags t JOIN images i ON i.id = t.image_id
             WHERE t.container_id = $1 AND t.arch = $2 AND t.name = $3 AND t.frozen <> 0",
        )
        .bind(container_id)
        .bind(arch)
        .bind(name)
        .fetch_optional(&state.db.pool)
        .await?;
        if let Some((current,)) = frozen
            && current != hash
        {
            return Err(ApiError::status(
                StatusCode::CONFLICT,
                format!("tag {name:?} is frozen on another image: push under another tag"),
            ));
        }
    }
    Ok(())
}

/// Validates build metadata and fills in the duration from the two times.
fn check_build(mut b: BuildMetadata) -> ApiResult<BuildMetadata> {
    let fields = [
        ("recipe_path", &b.recipe_path),
        ("repository", &b.repository),
        ("branch", &b.branch),
        ("commit", &b.commit),
        ("builder_host", &b.builder_host),
        ("backend", &b.backend),
        ("backend_version", &b.backend_version),
        ("ci_provider", &b.ci_provider),
        ("ci_url", &b.ci_url),
    ];
    for (name, value) in fields {
        if value.as_ref().is_some_and(|v| v.len() > FIELD_LIMIT) {
            return Err(ApiError::bad_request(format!(
                "build.{name} is longer than {FIELD_LIMIT} bytes"
            )));
        }
    }
    if b.extra.len() > 100
        || b.extra
            .iter()
            .any(|(k, v)| k.len() > 100 || v.len() > FIELD_LIMIT)
    {
        return Err(ApiError::bad_request(format!(
            "build.extra takes at most 100 keys of at most 100 bytes, with values of at most {FIELD_LIMIT} bytes"
        )));
    }
    let parse = |name: &str, v: &Option<String>| -> ApiResult<Option<std::time::SystemTime>> {
        v.as_deref()
            .map(|s| {
                humantime::parse_rfc3339(s).map_err(|_| {
                    ApiError::bad_request(format!(
                        "build.{name} {s:?} is not an RFC 3339 UTC time such as 2026-01-31T12:00:00Z"
                    ))
                })
            })
            .transpose()
    };
    let started = parse("started_at", &b.started_at)?;
    let finished = parse("finished_at", &b.finished_at)?;
    if let (Some(s), Some(f)) = (started, finished) {
        let d = f
            .duration_since(s)
            .map_err(|_| ApiError::bad_request("build.finished_at is before build.started_at"))?;
        b.duration_seconds = Some(d.as_secs_f64());
    }
    if b.duration_seconds
        .is_some_and(|d| !d.is_finite() || d < 0.0)
    {
        return Err(ApiError::bad_request(
            "build.duration_seconds must be a non-negative number",
        ));
    }
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_times_give_the_duration_and_bad_ones_are_refused() {
        let b = check_build(BuildMetadata {
            started_at: Some("2026-01-31T12:00:00Z".into()),
            finished_at: Some("2026-01-31T12:01:30.500Z".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(b.duration_seconds, Some(90.5));
        for (s, f) in [
            ("yesterday", "2026-01-31T12:00:00Z"),
            ("2026-01-31T12:00:00Z", "2026-01-31T11:00:00Z"),
        ] {
            assert!(
                check_build(BuildMetadata {
                    started_at: Some(s.into()),
                    finished_at: Some(f.into()),
                    ..Default::default()
                })
                .is_err()
            );
        }
        assert!(
            check_build(BuildMetadata {
                commit: Some("x".repeat(FIELD_LIMIT + 1)),
                ..Default::default()
            })
            .is_err()
        );
    }
}
