//! Download links: `/shub/download/{image}/{expires}/{user}/{signature}`.
//!
//! sregistry put the collection's permanent secret in the link, so a link
//! in a CI log or a shell history opened the image forever. Here a link is
//! a capability signed with the server's key: it names one image, who asked
//! for it (for the pull record), and when it stops working
//! (`[registry] download_link_ttl`). It carries no token.
//!
//! sregistry-cli first sends a HEAD, which must answer 200 or 401, then
//! streams a GET; only the GET counts as a pull.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::response::Response;

use super::Reply;
use crate::error::{Error, Result};
use crate::model::activity::{self, Client};
use crate::model::catalog::{self, Image};
use crate::serve::AppState;

/// Domain separation: these signatures are good for nothing else.
const PURPOSE: &[u8] = b"shub download";

/// A link to `image_id` for `user` (None: anonymous), valid for the
/// configured lifetime.
pub fn link(state: &AppState, image_id: i64, user: Option<i64>) -> Result<String> {
    let ttl = i64::try_from(state.config.registry.download_link_ttl.max(1)).unwrap_or(i64::MAX);
    let expires = chrono::Utc::now().timestamp().saturating_add(ttl);
    let user = user.unwrap_or(0);
    let signature = sign(state, image_id, expires, user);
    let path = format!("shub/download/{image_id}/{expires}/{user}/{signature}");
    state
        .config
        .public_url
        .join(&path)
        .map(String::from)
        .map_err(|e| Error::Internal(format!("cannot build a download link: {e}")))
}

/// The signed fields of a link (decimal numbers), after [`PURPOSE`].
fn fields(image: i64, expires: i64, user: i64) -> [String; 3] {
    [image.to_string(), expires.to_string(), user.to_string()]
}

fn sign(state: &AppState, image: i64, expires: i64, user: i64) -> String {
    let [i, e, u] = fields(image, expires, user);
    hex::encode(
        state
            .keys
            .sign_link(&[PURPOSE, i.as_bytes(), e.as_bytes(), u.as_bytes()]),
    )
}

type LinkParts = Path<(String, String, String, String)>;

/// The image a link opens, with the user it was made for.
async fn open(state: &AppState, parts: (String, String, String, String)) -> Result<(Image, i64)> {
    let (image, expires, user, signature) = parts;
    let invalid = || {
        Error::Unauthorized(
            "this download link is not valid or has expired: ask for a new one with \
             GET /api/container/<collection>/<name>:<tag>"
                .into(),
        )
    };
    let (Ok(image), Ok(expires), Ok(user), Ok(signature)) = (
        image.parse::<i64>(),
        expires.parse::<i64>(),
        user.parse::<i64>(),
        hex::decode(&signature),
    ) else {
        return Err(invalid());
    };
    let [i, e, u] = fields(image, expires, user);
    if !state.keys.verify_link(
        &[PURPOSE, i.as_bytes(), e.as_bytes(), u.as_bytes()],
        &signature,
    ) {
        return Err(invalid());
    }
    if expires < chrono::Utc::now().timestamp() {
        return Err(invalid());
    }
    let image = catalog::image_by_id(&state.db.pool, image)
        .await?
        .filter(|i| i.is_uploaded() && i.blob_digest.is_some())
        // Deleted since the link was made.
        .ok_or_else(|| Error::not_found("image"))?;
    Ok((image, user))
}

fn headers(image: &Image) -> axum::http::response::Builder {
    Response::builder()
        .header(CONTENT_TYPE, "application/octet-stream")
        .header(CONTENT_LENGTH, image.size)
}

pub async fn head(State(state): State<AppState>, Path(parts): LinkParts) -> Reply<Response> {
    let (image, _) = open(&state, parts).await?;
    headers(&image)
        .body(Body::empty())
        .map_err(|e| Error::Internal(e.to_string()).into())
}

pub async fn get(State(state): State<AppState>, Path(parts): LinkParts) -> Reply<Response> {
    let (image, user) = open(&state, parts).await?;
    let digest = image.blob_digest.clone().unwrap_or_default();
    let blob = state.storage.get_blob(&digest, None).await?;
    // A failure to count (say the user was deleted a moment ago) must not
    // fail the download itself.
    if let Err(e) = activity::record_pull(
        &state.db.pool,
        image.id,
        (user != 0).then_some(user),
        Client::Shub,
    )
    .await
    {
        tracing::warn!(image = image.id, "could not record a shub pull: {e}");
    }
    headers(&image)
        .body(Body::from_stream(blob.into_stream()))
        .map_err(|e| Error::Internal(e.to_string()).into())
}
