//! Pulls (library-api.md §6).
//!
//! `GET /v1/imagefile/{path}:{ref}?arch=X` answers 200 with the bytes,
//! which every client generation handles. For a large image that anyone
//! may read it answers instead a same-host 303 to
//! `/v2/imagefile/_blob/{imageID}`, which lets the client's concurrent
//! downloader fetch ranges in parallel: every client generation sends those
//! ranged GETs without a token (1.0) or with it (1.1+), and a public image
//! needs none. A private image is always answered directly, so a client
//! that drops the token on the redirect never meets a 404.
//!
//! Both URLs honour a single `Range` with a 206 and the exact
//! `Content-Range` (a client writes each part at its offset without
//! checking the status). A pull is recorded once: on the 200 or on the 303,
//! never on a ranged GET.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use super::envelope::{ApiResult, LibPath};
use super::{Query, image_by_id, parse_id, resolve};
use crate::error::Error;
use crate::http::auth;
use crate::http::range::{self as byte_range, RangeAsk};
use crate::model::access::{self, Access, Caller};
use crate::model::activity::{self, Client};
use crate::model::catalog::{Collection, Image};
use crate::serve::AppState;

/// Images larger than this get the 303 when public: below it, the client's
/// default 5 MiB parts would make one or two requests anyway.
const REDIRECT_ABOVE: i64 = 8 << 20;

pub async fn imagefile(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
    LibPath(path): LibPath<String>,
) -> ApiResult {
    let caller = auth::caller(&state, &headers).await?;
    let q = Query::parse(&uri);
    let r = resolve(&state, &caller, &path, q.arch()).await?;
    let range = headers.get(header::RANGE);
    if range.is_none()
        && r.image.size > REDIRECT_ABOVE
        && anyone_may_read(&state, &r.collection).await?
    {
        record(&state, &caller, &method, &r.image).await;
        let location = super::public_url(&state, &format!("/v2/imagefile/_blob/{}", r.image.id));
        let mut resp = StatusCode::SEE_OTHER.into_response();
        resp.headers_mut().insert(
            header::LOCATION,
            HeaderValue::from_str(&location).map_err(|e| Error::Internal(e.to_string()))?,
        );
        return Ok(resp);
    }
    let resp = serve(&state, &r.image, range).await?;
    if resp.status() == StatusCode::OK {
        record(&state, &caller, &method, &r.image).await;
    }
    Ok(resp)
}

/// `GET /v2/imagefile/_blob/{imageID}`: the redirect target. The caller's
/// access is checked again; no pull is recorded here.
pub async fn blob(
    State(state): State<AppState>,
    headers: HeaderMap,
    LibPath(id): LibPath<String>,
) -> ApiResult {
    let caller = auth::caller(&state, &headers).await?;
    let (_, _, image, _) = image_by_id(&state, &caller, parse_id("image", &id)?).await?;
    if !image.is_uploaded() {
        return Err(Error::not_found(format!("image {id}")).into());
    }
    serve(&state, &image, headers.get(header::RANGE)).await
}

async fn anyone_may_read(state: &AppState, c: &Collection) -> crate::error::Result<bool> {
    Ok(access::collection_access(&state.db.pool, &Caller::anonymous(), c).await? >= Access::Read)
}

/// Counting must not fail a pull: a database hiccup here is only logged.
async fn record(state: &AppState, caller: &Caller, method: &Method, image: &Image) {
    if method == Method::HEAD {
        return;
    }
    if let Err(e) =
        activity::record_pull(&state.db.pool, image.id, caller.id(), Client::Library).await
    {
        tracing::warn!("could not record a pull of image {}: {e}", image.id);
    }
}

/// The image's bytes: all of them (200), or the one range asked for (206),
/// or 416 when that range lies outside the file.
async fn serve(state: &AppState, image: &Image, range: Option<&HeaderValue>) -> ApiResult {
    let size = u64::try_from(image.size).unwrap_or(0);
    let digest = image
        .blob_digest
        .as_deref()
        .ok_or_else(|| Error::Internal(format!("image {} has no blob", image.id)))?;
    let wanted = match range
        .and_then(|v| v.to_str().ok())
        .map(|v| byte_range::parse(v, size))
    {
        None | Some(RangeAsk::Ignore) => None,
        Some(RangeAsk::One(r)) => Some(r),
        Some(RangeAsk::Unsatisfiable) => {
            let mut resp = super::envelope::error_response(
                StatusCode::RANGE_NOT_SATISFIABLE,
                &format!("the range asked for is outside the image's {size} bytes"),
            );
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                resp.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(resp);
        }
    };
    let got = state.storage.get_blob(digest, wanted.clone()).await?;
    let body = Body::from_stream(got.into_stream());
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    let header_value =
        |s: String| HeaderValue::from_str(&s).map_err(|e| Error::Internal(e.to_string()));
    if let Ok(v) = header_value(format!("\"{}\"", image.hash)) {
        h.insert(header::ETAG, v);
    }
    match wanted {
        Some(r) => {
            *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_LENGTH,
                header_value((r.end - r.start).to_string())?,
            );
            h.insert(
                header::CONTENT_RANGE,
                header_value(format!("bytes {}-{}/{size}", r.start, r.end - 1))?,
            );
        }
        None => {
            resp.headers_mut()
                .insert(header::CONTENT_LENGTH, header_value(size.to_string())?);
        }
    }
    Ok(resp)
}
