//! sregistry-cli's push, in two requests (ci-and-clients.md §1):
//!
//! 1. `POST /api/upload/chunked_upload` with JSON `{collection,name,tag}`,
//!    signed `push`: finds (or creates, under the caller's own entity) the
//!    collection and answers `{"cid": <id>}`.
//! 2. `POST /upload`, one `multipart/form-data` body with the fields
//!    `SREGISTRY_EVENT` (the signature again), `name`, `collection` (the
//!    cid), `tag` and `file1`, signed `upload`.
//!
//! The signature is checked from the header before any of the file is
//! read, so a long upload cannot run out of its hour, and an unsigned one
//! is refused at once. `file1` streams straight into storage (constant
//! memory, hashed once); it is checked (a sound SIF) before anything
//! becomes visible. Every failure is a real 4xx with `{"detail": ...}`.

use std::pin::pin;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::multipart::{Field, Multipart, MultipartError, MultipartRejection};
use axum::http::HeaderMap;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Reply, authorization, hmac, resolve};
use crate::error::{Error, Result};
use crate::model::access::{Access, Caller, collection_access};
use crate::model::accounts::{self, User, validate_name};
use crate::model::catalog::{self, Collection, Container};
use crate::model::tags;
use crate::publish::{self, Expect};
use crate::serve::AppState;

#[derive(Debug, Deserialize)]
pub struct Announce {
    collection: String,
    name: String,
    #[serde(default)]
    tag: Option<String>,
}

/// Step 1: the collection to push to, as `{"cid": <id>}`.
pub async fn announce(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Reply<Json<Value>> {
    let a: Announce = serde_json::from_slice(&body).map_err(|e| {
        Error::BadRequest(format!(
            "expected JSON {{\"collection\", \"name\", \"tag\"}}: {e}"
        ))
    })?;
    let tag = a.tag.unwrap_or_else(|| "latest".into());
    let Some(header) = authorization(&headers) else {
        return Err(Error::Forbidden("pushing needs a signed request ('push')".into()).into());
    };
    let user = hmac::authenticate(
        &state,
        header,
        hmac::Kind::Push,
        (&a.collection, &a.name, &tag),
        Utc::now(),
    )
    .await?;
    // Refuse bad names before anything is created.
    validate_name("collection", &a.collection)?;
    validate_name("container", &a.name)?;
    tags::validate_tag(&tag)?;
    let collection = collection_for_push(&state, &user, &a.collection).await?;
    Ok(Json(json!({ "cid": collection.id })))
}

/// The collection named `name` that `user` can see, which they must be
/// allowed to push to; with none, a new one under their own entity.
async fn collection_for_push(state: &AppState, user: &User, name: &str) -> Result<Collection> {
    let caller = Caller::user(user.clone());
    if let Some((c, access)) = resolve::collection(state, &caller, name).await? {
        return if access >= Access::Write {
            Ok(c)
        } else {
            Err(Error::Forbidden(format!(
                "you may not push to {}/{}: ask one of its owners to add you",
                c.entity_name, c.name
            )))
        };
    }
    let pool = &state.db.pool;
    let settings = &state.config.registry;
    if !user.is_admin() && settings.user_collection_limit > 0 {
        let made = catalog::count_collections_created_by(pool, user.id).await?;
        if made >= i64::from(settings.user_collection_limit) {
            return Err(Error::Forbidden(format!(
                "you have created {made} collections, this registry's limit per user: \
                 push to an existing one, or ask an administrator"
            )));
        }
    }
    let entity = accounts::entity_by_id(pool, user.id).await?;
    let private = settings.new_collection_private((entity.default_private != 0).then_some(true));
    match catalog::create_collection(pool, user.id, name, private, user.id).await {
        Ok(c) => {
            tracing::info!(collection = %format!("{}/{}", c.entity_name, c.name), private, "shub push created a collection");
            Ok(c)
        }
        // Created by a concurrent push of the same user: use it.
        Err(Error::Conflict(_)) => catalog::collection(pool, &user.name, name)
            .await?
            .ok_or_else(|| Error::Internal("collection vanished after a conflict".into())),
        Err(e) => Err(e),
    }
}

/// The small fields of the form, which come before `file1`.
#[derive(Debug, Default)]
struct Form {
    event: Option<String>,
    name: Option<String>,
    collection: Option<String>,
    tag: Option<String>,
}

/// Largest small field accepted: a signature header is about 150 bytes.
const FIELD_LIMIT: usize = 4096;

fn bad_form(e: MultipartError) -> Error {
    Error::BadRequest(format!("the multipart body could not be read: {e}"))
}

async fn small_text(mut field: Field<'_>) -> Result<String> {
    let name = field.name().unwrap_or("").to_string();
    let mut buf = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(bad_form)? {
        if buf.len() + chunk.len() > FIELD_LIMIT {
            return Err(Error::BadRequest(format!(
                "the form field {name:?} is longer than {FIELD_LIMIT} bytes"
            )));
        }
        buf.extend_from_slice(&chunk);
    }
    String::from_utf8(buf)
        .map(|s| s.trim().to_string())
        .map_err(|_| Error::BadRequest(format!("the form field {name:?} is not UTF-8 text")))
}

/// Where an upload goes, once its signature is checked.
struct Target {
    user: User,
    collection: Collection,
    name: String,
    tag: String,
}

/// Step 2: the image.
pub async fn upload(
    State(state): State<AppState>,
    headers: HeaderMap,
    multipart: std::result::Result<Multipart, MultipartRejection>,
) -> Reply<Json<Value>> {
    let mut multipart = multipart
        .map_err(|e| Error::BadRequest(format!("expected a multipart/form-data body: {e}")))?;
    let mut form = Form::default();
    let mut done = false;
    while let Some(field) = multipart.next_field().await.map_err(bad_form)? {
        match field.name().unwrap_or("") {
            "file1" if done => {
                return Err(Error::BadRequest("one file1 per upload".into()).into());
            }
            "file1" => {
                let target = authorize(&state, &headers, &form).await?;
                receive(&state, &target, field).await?;
                done = true;
            }
            "SREGISTRY_EVENT" => form.event = Some(small_text(field).await?),
            "name" => form.name = Some(small_text(field).await?),
            "collection" => form.collection = Some(small_text(field).await?),
            "tag" => form.tag = Some(small_text(field).await?),
            // Anything else is skipped (next_field discards it).
            _ => {}
        }
    }
    if !done {
        return Err(Error::BadRequest("the form has no file1: nothing was uploaded".into()).into());
    }
    Ok(Json(json!({"message": "Upload Complete"})))
}

/// Checks the signature and the caller's rights before any byte of the
/// file is read.
async fn authorize(state: &AppState, headers: &HeaderMap, form: &Form) -> Result<Target> {
    let missing = |f: &str| {
        Error::BadRequest(format!(
            "the form field {f:?} must come before file1, as sregistry-cli sends it"
        ))
    };
    let name = form.name.clone().ok_or_else(|| missing("name"))?;
    let tag = form.tag.clone().unwrap_or_else(|| "latest".into());
    let cid: i64 = form
        .collection
        .as_deref()
        .ok_or_else(|| missing("collection"))?
        .parse()
        .map_err(|_| {
            Error::BadRequest("the form field \"collection\" must be the cid that POST /api/upload/chunked_upload answered".into())
        })?;
    let header = authorization(headers)
        .or(form.event.as_deref())
        .ok_or_else(|| Error::Forbidden("uploading needs a signed request ('upload')".into()))?;
    let pool = &state.db.pool;
    // The signature names the collection, the form its id. An unknown id
    // gets the answer of a bad signature, so ids say nothing to strangers.
    let collection = catalog::collection_by_id(pool, cid).await?;
    let signed_name = collection.as_ref().map(|c| c.name.as_str()).unwrap_or("");
    let user = hmac::authenticate(
        state,
        header,
        hmac::Kind::Upload,
        (signed_name, &name, &tag),
        Utc::now(),
    )
    .await?;
    let collection = collection.ok_or_else(|| Error::not_found(format!("collection {cid}")))?;
    let caller = Caller::user(user.clone());
    match collection_access(pool, &caller, &collection).await? {
        Access::None => return Err(Error::not_found(format!("collection {cid}"))),
        Access::Read => {
            return Err(Error::Forbidden(format!(
                "you may not push to {}/{}: ask one of its owners to add you",
                collection.entity_name, collection.name
            )));
        }
        Access::Write => {}
    }
    validate_name("container", &name)?;
    tags::validate_tag(&tag)?;
    // A frozen tag is refused now rather than after the whole file.
    if let Some(container) = catalog::container(pool, collection.id, &name).await?
        && tags::of_container(pool, container.id)
            .await?
            .iter()
            .any(|t| t.name == tag && t.frozen != 0)
    {
        return Err(frozen(&collection, &name, &tag));
    }
    Ok(Target {
        user,
        collection,
        name,
        tag,
    })
}

fn frozen(c: &Collection, name: &str, tag: &str) -> Error {
    Error::Conflict(format!(
        "{}/{name}:{tag} is frozen: it cannot be overwritten; push under another tag",
        c.name
    ))
}

/// Streams `file1` into storage, checks it, and tags it.
async fn receive(state: &AppState, target: &Target, field: Field<'_>) -> Result<()> {
    let pool = &state.db.pool;
    let limit = state.config.registry.upload_limit();
    let upload = state.storage.ingest(pin!(field), limit).await?;
    // sregistry-cli declares neither size nor hash: the SIF check is what
    // stands between a broken file and a visible image.
    let (facts, digest) =
        publish::verify_and_commit(&state.storage, &upload, &Expect::default()).await?;
    let hash = format!("sha256.{}", upload.sha256);
    let container = container_for(pool, target.collection.id, &target.name).await?;
    let image = catalog::get_or_create_image(pool, container.id, &hash, "", target.user.id).await?;
    let fresh = !image.is_uploaded();
    let image = if fresh {
        let published = publish::published(&facts, upload.size, digest);
        catalog::publish_image(pool, image.id, &published).await?
    } else {
        image
    };
    // Tags are per architecture; sregistry-cli knows none, so the image's
    // own (amd64, the library API's default, when the SIF names none).
    let arch = if image.arch.is_empty() {
        "amd64"
    } else {
        image.arch.as_str()
    };
    let previous = tags::resolve(pool, container.id, &target.tag, Some(arch)).await?;
    if let Err(e) = tags::set(pool, container.id, arch, &target.tag, image.id).await {
        // Frozen since the check: leave nothing behind this upload made.
        if fresh {
            let _ = catalog::delete_image(pool, image.id).await;
        }
        return Err(match e {
            Error::Conflict(_) => frozen(&target.collection, &target.name, &target.tag),
            other => other,
        });
    }
    // The image the tag named before goes, unless another tag still names
    // it: sregistry replaced the container row, keeping no history.
    if let Some(old) = previous.filter(|&old| old != image.id)
        && tags::of_image(pool, old).await?.is_empty()
    {
        catalog::delete_image(pool, old).await?;
    }
    tracing::info!(
        uri = %format!("{}/{}/{}:{}", target.collection.entity_name, target.collection.name, target.name, target.tag),
        hash = %image.hash,
        size = image.size,
        user = %target.user.name,
        "shub push"
    );
    Ok(())
}

async fn container_for(pool: &sqlx::AnyPool, collection_id: i64, name: &str) -> Result<Container> {
    if let Some(c) = catalog::container(pool, collection_id, name).await? {
        return Ok(c);
    }
    match catalog::create_container(pool, collection_id, name, "").await {
        Ok(c) => Ok(c),
        // Created by a concurrent push.
        Err(Error::Conflict(_)) => catalog::container(pool, collection_id, name)
            .await?
            .ok_or_else(|| Error::Internal("container vanished after a conflict".into())),
        Err(e) => Err(e),
    }
}
