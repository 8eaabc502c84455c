//! The Singularity Hub protocol: what `singularity pull shub://HOST/c/n:t`
//! and sregistry-cli's "registry" client speak (shared/docs/
//! sregistry-reference.md §2b, ci-and-clients.md §1).
//!
//! Names are two-part, `collection/name:tag`: the collection is the one so
//! named that the caller can see (see [`resolve`]). Errors come back in
//! Django REST framework's envelope, `{"detail": "..."}`, with real 4xx
//! statuses (sregistry answered some failures with a 200).
//!
//! Differences from sregistry, on purpose: ownership is enforced on delete;
//! private collections are invisible; download links are short-lived
//! capabilities signed by the server instead of a permanent collection
//! secret; uploads stream straight into storage and are checked (size,
//! hash, SIF structure) before anything becomes visible.

mod collections;
mod container;
mod download;
pub mod hmac;
mod labels;
mod resolve;
mod search;
mod upload;
mod views;

use axum::Json;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use serde_json::json;

use crate::error::Error;
use crate::http::auth;
use crate::model::access::Caller;
use crate::serve::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/container/{collection}/{reference}",
            get(container::get).delete(container::delete),
        )
        .route("/api/container/search/name/{name}", get(search::by_name))
        .route(
            "/api/container/search/name/{name}/tag/{tag}",
            get(search::by_name_and_tag),
        )
        .route(
            "/api/container/search/collection/{collection}/name/{name}",
            get(search::in_collection),
        )
        .route(
            "/api/container/search/collection/{collection}/name/{name}/tag/{tag}",
            get(search::in_collection_with_tag),
        )
        .route("/api/collection/{name}", get(collections::one))
        .route("/api/collections/", get(collections::all))
        .route("/api/collections", get(collections::all))
        .route("/api/labels/search", get(labels::all))
        .route("/api/labels/search/{term}/key", get(labels::by_key))
        .route("/api/labels/search/{term}/value", get(labels::by_value))
        .route(
            "/api/labels/search/{term}/key/{value}/value",
            get(labels::by_key_and_value),
        )
        .route("/api/upload/chunked_upload", post(upload::announce))
        // The image streams into storage, which enforces the registry's own
        // size limit; axum's default 2 MB body limit would refuse it.
        .route(
            "/upload",
            post(upload::upload).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/shub/download/{image}/{expires}/{user}/{signature}",
            get(download::get).head(download::head),
        )
}

/// A registry error, rendered as DRF does: `{"detail": "..."}`.
#[derive(Debug)]
pub struct ShubError(pub Error);

impl<E: Into<Error>> From<E> for ShubError {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for ShubError {
    fn into_response(self) -> Response {
        (
            self.0.status(),
            Json(json!({"detail": self.0.public_message()})),
        )
            .into_response()
    }
}

pub type Reply<T> = Result<T, ShubError>;

fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers.get(AUTHORIZATION)?.to_str().ok()
}

/// The caller of a read: a user who signed it (sregistry-cli, with
/// `kind` over `names`), a bearer token (sreg, curl), or nobody. A
/// signature or token that does not verify is refused, never taken as
/// anonymous.
async fn reader(
    state: &AppState,
    headers: &HeaderMap,
    kind: hmac::Kind,
    names: (&str, &str, &str),
) -> Result<Caller, Error> {
    match authorization(headers) {
        Some(value) if hmac::is_hmac(value) => Ok(Caller::user(
            hmac::authenticate(state, value, kind, names, Utc::now()).await?,
        )),
        _ => auth::caller(state, headers).await,
    }
}
