//! The library API's envelopes (`sylabs/json-resp`): `{"data": ...}` on
//! success, `{"error": {"code": N, "message": "..."}}` on failure, whose
//! message Apptainer shows to the user. Also the request-side tolerance the
//! Go client needs: JSON bodies without a Content-Type, read in full (and
//! capped) before anything is answered.

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::error::Error;

/// Largest JSON request body accepted. The biggest legitimate one, a
/// multipart completion listing 10,000 parts, is well below.
pub const JSON_LIMIT: usize = 1 << 20;

/// An error rendered in the library envelope.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl<E: Into<Error>> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError(e.into())
    }
}

pub type ApiResult<T = Response> = Result<T, ApiError>;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = error_response(self.0.status(), &self.0.public_message());
        if resp.status() == StatusCode::PAYLOAD_TOO_LARGE {
            // The body may not have been read to its end: the client must not
            // send its next request on this connection, which the server closes.
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

/// `{"error":{"code":N,"message":...}}` with status N.
pub fn error_response(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"code": status.as_u16(), "message": message}})),
    )
        .into_response()
}

/// `{"data": value}` with status 200.
pub fn data(value: impl Serialize) -> Response {
    data_with(StatusCode::OK, value)
}

/// `{"data": value}` with the given status (201 for a created object).
pub fn data_with(status: StatusCode, value: impl Serialize) -> Response {
    (status, axum::Json(json!({ "data": value }))).into_response()
}

/// A JSON request body, parsed whatever its Content-Type (the Go client
/// sends none). Go's decoder matches keys case-insensitively, so the types
/// parsed here carry aliases for the spellings clients use.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, ApiError> {
        let bytes = small_body(req.into_body()).await?;
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            Error::BadRequest(format!("the request body is not the expected JSON: {e}")).into()
        })
    }
}

/// Reads a small body whole: at most [`JSON_LIMIT`] bytes. A larger one is
/// refused (413) after reading on a little, so that a client that sent a
/// few MiB by mistake still gets the answer.
pub async fn small_body(body: Body) -> Result<Bytes, ApiError> {
    let mut stream = body.into_data_stream();
    let mut buf = bytes::BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|_| Error::BadRequest("the request body could not be read".into()))?;
        if buf.len() + chunk.len() > JSON_LIMIT {
            drain(Body::from_stream(stream), 8 * JSON_LIMIT as u64).await;
            return Err(Error::TooLarge(format!(
                "the request body is larger than {JSON_LIMIT} bytes"
            ))
            .into());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// Reads and drops what is left of a request body (at most `limit` bytes),
/// so that an early error reaches a Go client that is still sending: Go
/// reports a connection reset, not our message, when the server answers
/// and closes while it writes.
pub async fn drain(body: Body, limit: u64) {
    let mut stream = body.into_data_stream();
    let mut seen: u64 = 0;
    while let Some(Ok(chunk)) = stream.next().await {
        seen += chunk.len() as u64;
        if seen > limit {
            break;
        }
    }
}

/// Answers `err` after draining `body`.
pub async fn drain_then(body: Body, limit: u64, err: impl Into<Error>) -> Response {
    drain(body, limit).await;
    ApiError(err.into()).into_response()
}

/// axum's `Path`, with its rejection in the envelope.
#[derive(Debug)]
pub struct LibPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for LibPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| LibPath(v))
            .map_err(|e: PathRejection| Error::BadRequest(e.body_text()).into())
    }
}

/// Plain text, for the HKP endpoints (keyserver clients show the body as is).
pub fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body.into(),
    )
        .into_response()
}
