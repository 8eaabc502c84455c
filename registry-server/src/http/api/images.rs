//! Images: their JSON, their SIF (streamed, with `Range`) and their build log.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use serde::Deserialize;
use sreg_api::v1::{ErrorBody, Image as ImageView};
use utoipa::IntoParams;

use super::error::{ApiError, ApiResult};
use super::resolve;
use super::views;
use crate::http::auth;
use crate::http::range::{self as byte_range, RangeAsk};
use crate::model::activity::{self, Client};
use crate::serve::AppState;

#[derive(Debug, Deserialize, IntoParams)]
pub struct ArchQuery {
    /// Architecture of the image a tag should resolve to (`amd64`, `arm64`,
    /// ...); default: any, preferring amd64.
    pub arch: Option<String>,
}

/// An image, by tag or by `sha256.<hex>`.
#[utoipa::path(
    get,
    path = "/api/v1/images/{*reference}",
    tag = "catalog",
    params(
        ("reference" = String, Path, description = "ENTITY/COLLECTION/CONTAINER[:TAG] or COLLECTION/CONTAINER[:TAG]; TAG may be sha256.<hex>"),
        ArchQuery
    ),
    responses(
        (status = 200, description = "The image", body = ImageView),
        (status = 404, description = "No such image, or not visible to the caller", body = ErrorBody),
        (status = 409, description = "Ambiguous two-part reference", body = ErrorBody)
    )
)]
pub async fn get_image(
    State(state): State<AppState>,
    Path(reference): Path<String>,
    Query(q): Query<ArchQuery>,
    headers: HeaderMap,
) -> ApiResult<Json<ImageView>> {
    let caller = auth::caller(&state, &headers).await?;
    let r = resolve::parse_ref(&reference)?;
    let (c, k, i) = resolve::visible_image(&state, &caller, &r, q.arch.as_deref()).await?;
    Ok(Json(views::image(&state, &c, &k, &i, Some(&r.tag)).await?))
}

/// Download an image's SIF file. A whole download, or a range starting at
/// byte 0, counts as a pull.
#[utoipa::path(
    get,
    path = "/api/v1/files/{*reference}",
    tag = "push and pull",
    params(
        ("reference" = String, Path, description = "ENTITY/COLLECTION/CONTAINER[:TAG] or COLLECTION/CONTAINER[:TAG]; TAG may be sha256.<hex>"),
        ("Range" = Option<String>, Header, description = "One byte range: bytes=FIRST-LAST, bytes=FIRST- or bytes=-SUFFIX"),
        ArchQuery
    ),
    responses(
        (status = 200, description = "The SIF file", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 206, description = "The requested range", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 404, description = "No such image, or not visible to the caller", body = ErrorBody),
        (status = 416, description = "The range is outside the file", body = ErrorBody)
    )
)]
pub async fn download_file(
    State(state): State<AppState>,
    Path(reference): Path<String>,
    Query(q): Query<ArchQuery>,
    method: Method,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let caller = auth::caller(&state, &headers).await?;
    let r = resolve::parse_ref(&reference)?;
    let (_, k, i) = resolve::visible_image(&state, &caller, &r, q.arch.as_deref()).await?;
    let digest = i
        .blob_digest
        .clone()
        .ok_or_else(|| crate::error::Error::Internal(format!("image {} has no blob", i.id)))?;
    let size = u64::try_from(i.size).unwrap_or(0);
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        None => None,
        // Anything but one satisfiable byte range is refused (416).
        Some(value) => match byte_range::parse(value, size) {
            RangeAsk::One(r) => Some(r),
            RangeAsk::Ignore | RangeAsk::Unsatisfiable => {
                let mut resp = ApiError::status(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    format!("range {value:?} is not within the file's {size} bytes"),
                )
                .into_response();
                resp.headers_mut().insert(
                    header::CONTENT_RANGE,
                    HeaderValue::from_str(&format!("bytes */{size}")).expect("ascii"),
                );
                return Ok(resp);
            }
        },
    };
    let counts = method != Method::HEAD && range.as_ref().is_none_or(|r| r.start == 0);
    let got = state.storage.get_blob(&digest, range.clone()).await?;
    if counts {
        activity::record_pull(&state.db.pool, i.id, caller.id(), Client::Sreg).await?;
    }
    let body = Body::from_stream(got.into_stream().map_err(std::io::Error::other));
    let filename = format!("{}_{}.sif", k.name, r.tag.replace('.', "-"));
    let mut builder = Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::ETAG, format!("\"{}\"", i.hash))
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{filename}\""),
        );
    builder = match &range {
        Some(rg) => builder
            .status(StatusCode::PARTIAL_CONTENT)
            .header(header::CONTENT_LENGTH, rg.end - rg.start)
            .header(
                header::CONTENT_RANGE,
                format!("bytes {}-{}/{size}", rg.start, rg.end - 1),
            ),
        None => builder
            .status(StatusCode::OK)
            .header(header::CONTENT_LENGTH, size),
    };
    builder
        .body(body)
        .map_err(|e| crate::error::Error::Internal(e.to_string()).into())
}

/// An image's build log, when its push carried one.
#[utoipa::path(
    get,
    path = "/api/v1/logs/{*reference}",
    tag = "catalog",
    params(
        ("reference" = String, Path, description = "ENTITY/COLLECTION/CONTAINER[:TAG] or COLLECTION/CONTAINER[:TAG]; TAG may be sha256.<hex>"),
        ArchQuery
    ),
    responses(
        (status = 200, description = "The build log", content_type = "text/plain", body = String),
        (status = 404, description = "No such image, or it has no log", body = ErrorBody)
    )
)]
pub async fn download_log(
    State(state): State<AppState>,
    Path(reference): Path<String>,
    Query(q): Query<ArchQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let caller = auth::caller(&state, &headers).await?;
    let r = resolve::parse_ref(&reference)?;
    let (_, _, i) = resolve::visible_image(&state, &caller, &r, q.arch.as_deref()).await?;
    let log = i
        .build
        .as_deref()
        .and_then(|b| serde_json::from_str::<sreg_api::v1::BuildInfo>(b).ok())
        .and_then(|b| b.log)
        .ok_or_else(|| {
            crate::error::Error::NotFound(format!(
                "image {reference} has no build log: push it with `sreg push --log FILE`"
            ))
        })?;
    let got = state
        .storage
        .get_blob(&format!("sha256:{}", log.sha256), None)
        .await?;
    Response::builder()
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(header::CONTENT_LENGTH, log.size)
        .body(Body::from_stream(
            got.into_stream().map_err(std::io::Error::other),
        ))
        .map_err(|e| crate::error::Error::Internal(e.to_string()).into())
}
