//! `library://`: the Sylabs/Apptainer Container Library API
//! (shared/docs/library-api.md), and the minimal HKP keyserver that its
//! discovery document points at.
//!
//! Every answer uses the library envelope ([`envelope`]); HKP answers plain
//! text. Handlers resolve names and check access through `model`, so the
//! rules are those of every other protocol: a private collection is
//! invisible (404) to whoever may not read it, writes need a signed-in user
//! with write access.

mod discovery;
mod download;
mod entities;
mod envelope;
mod images;
mod multipart;
mod objects;
mod pks;
mod search;
mod tags;
mod upload;

use axum::Router;
use axum::extract::Request;
use axum::http::Uri;
use axum::routing::{get, post, put};

use crate::error::{Error, Result};
use crate::model::access::{self, Access, Caller};
use crate::model::accounts;
use crate::model::catalog::{self, Collection, Container, Image};
use crate::model::tags as tag_model;
use crate::serve::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/assets/config/config.prod.json",
            get(discovery::config_json),
        )
        .route("/version", get(discovery::version))
        .route("/v1/token-status", get(discovery::token_status))
        .route("/v1/rbac/users/current", get(discovery::current_user))
        .route("/v1/oci-redirect", get(discovery::oci_redirect))
        .route("/v1/entities", post(entities::create_entity))
        .route("/v1/entities/{name}", get(entities::get_entity))
        .route("/v1/collections", post(entities::create_collection))
        .route("/v1/collections/{*path}", get(entities::get_collection))
        .route("/v1/containers", post(entities::create_container))
        .route("/v1/containers/{*path}", get(entities::get_container))
        .route("/v1/images", post(images::create_image))
        .route(
            "/v1/images/{*path}",
            get(images::get_image).delete(images::delete_image),
        )
        .route(
            "/v1/imagefile/{*path}",
            get(download::imagefile).post(upload::legacy_upload),
        )
        .route("/v2/imagefile/{id}", post(upload::start_upload))
        .route("/v2/imagefile/{id}/_complete", put(upload::complete_upload))
        .route("/v2/imagefile/_upload/{upload}", put(upload::put_upload))
        .route(
            "/v2/imagefile/{id}/_multipart",
            post(multipart::start).put(multipart::part_url),
        )
        .route(
            "/v2/imagefile/{id}/_multipart_complete",
            put(multipart::complete),
        )
        .route("/v2/imagefile/{id}/_multipart_abort", put(multipart::abort))
        .route(
            "/v2/imagefile/_part/{upload}/{part}",
            put(multipart::put_part),
        )
        .route("/v2/imagefile/_blob/{id}", get(download::blob))
        .route("/v1/tags/{id}", get(tags::get_v1).post(tags::set_v1))
        .route("/v2/tags/{id}", get(tags::get_v2).post(tags::set_v2))
        .route("/v1/search", get(search::search))
        .route("/pks/add", post(pks::add))
        .route("/pks/lookup", get(pks::lookup))
}

/// Rewrites runs of `/` in the request path to one, before routing: old
/// library clients leave the entity empty (`/v1/images//c/n:t`), and a
/// base URL with a trailing slash doubles the first one. The query is kept
/// as it is.
pub fn normalize_path(mut req: Request) -> Request {
    let uri = req.uri();
    if !uri.path().contains("//") {
        return req;
    }
    let mut path = String::with_capacity(uri.path().len());
    for c in uri.path().chars() {
        if c == '/' && path.ends_with('/') {
            continue;
        }
        path.push(c);
    }
    let path_and_query = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    let mut parts = uri.clone().into_parts();
    if let Ok(pq) = path_and_query.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(new) = Uri::from_parts(parts) {
            *req.uri_mut() = new;
        }
    }
    req
}

/// The query of a library request, decoded.
#[derive(Debug, Default)]
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(uri: &Uri) -> Self {
        let raw = uri.query().unwrap_or("");
        let mut pairs: Vec<(String, String)> = url::form_urlencoded::parse(raw.as_bytes())
            .into_owned()
            .collect();
        // Singularity 3.7.0 escapes the '=' (`?arch%3Damd64`): the whole
        // pair then decodes as a key with an empty value.
        for (k, v) in &mut pairs {
            if v.is_empty()
                && let Some((key, value)) = k.clone().split_once('=')
            {
                *k = key.to_string();
                *v = value.to_string();
            }
        }
        Self(pairs)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `arch`, empty when absent (old clients send none).
    pub fn arch(&self) -> &str {
        self.get("arch").unwrap_or("")
    }
}

/// A `[[entity/]collection/]container` path with the registry's defaults
/// filled in (library-api.md §2: `library://alpine` is
/// `<default entity>/<default collection>/alpine`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Names {
    pub entity: String,
    pub collection: String,
    pub container: Option<String>,
}

pub(crate) fn names(state: &AppState, path: &str, with_container: bool) -> Result<Names> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let settings = &state.config.registry;
    let (e, c, n) = match (with_container, parts.as_slice()) {
        (true, [n]) => (
            settings.default_entity.as_str(),
            settings.default_collection.as_str(),
            Some(*n),
        ),
        (true, [c, n]) => (settings.default_entity.as_str(), *c, Some(*n)),
        (true, [e, c, n]) => (*e, *c, Some(*n)),
        (false, [c]) => (settings.default_entity.as_str(), *c, None),
        (false, [e, c]) => (*e, *c, None),
        _ => {
            return Err(Error::BadRequest(format!(
                "{path:?} is not a valid path: expected {}",
                if with_container {
                    "ENTITY/COLLECTION/CONTAINER"
                } else {
                    "ENTITY/COLLECTION"
                }
            )));
        }
    };
    accounts::validate_name("entity", e)?;
    accounts::validate_name("collection", c)?;
    if let Some(n) = n {
        accounts::validate_name("container", n)?;
    }
    Ok(Names {
        entity: e.to_string(),
        collection: c.to_string(),
        container: n.map(str::to_string),
    })
}

/// A decimal row id from a path or body.
pub(crate) fn parse_id(what: &str, s: &str) -> Result<i64> {
    s.parse::<i64>()
        .ok()
        .filter(|id| *id > 0 && s.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| Error::BadRequest(format!("{what} id {s:?} is not a valid id")))
}

/// A collection the caller can see, by entity and name; `None` when it does
/// not exist or is invisible, which callers must not tell apart.
pub(crate) async fn visible_collection(
    state: &AppState,
    caller: &Caller,
    entity: &str,
    name: &str,
) -> Result<Option<(Collection, Access)>> {
    let db = &state.db.pool;
    let Some(c) = catalog::collection(db, entity, name).await? else {
        return Ok(None);
    };
    let access = access::collection_access(db, caller, &c).await?;
    Ok((access >= Access::Read).then_some((c, access)))
}

/// A container the caller can see, by id.
pub(crate) async fn container_by_id(
    state: &AppState,
    caller: &Caller,
    id: i64,
) -> Result<(Collection, Container, Access)> {
    let db = &state.db.pool;
    let missing = || Error::not_found(format!("container {id}"));
    let k = catalog::container_by_id(db, id)
        .await?
        .ok_or_else(missing)?;
    let c = catalog::collection_by_id(db, k.collection_id)
        .await?
        .ok_or_else(missing)?;
    let access = access::collection_access(db, caller, &c).await?;
    if access < Access::Read {
        return Err(missing());
    }
    Ok((c, k, access))
}

/// An image the caller can see, by id, uploaded or not (uploads address
/// images by id before they are uploaded).
pub(crate) async fn image_by_id(
    state: &AppState,
    caller: &Caller,
    id: i64,
) -> Result<(Collection, Container, Image, Access)> {
    let db = &state.db.pool;
    let i = catalog::image_by_id(db, id)
        .await?
        .ok_or_else(|| Error::not_found(format!("image {id}")))?;
    let (c, k, access) = container_by_id(state, caller, i.container_id)
        .await
        .map_err(|_| Error::not_found(format!("image {id}")))?;
    Ok((c, k, i, access))
}

/// The caller, who must be signed in (401 otherwise).
pub(crate) async fn signed_in(
    state: &AppState,
    headers: &axum::http::HeaderMap,
) -> Result<(Caller, accounts::User)> {
    let caller = crate::http::auth::user(state, headers).await?;
    let user = caller
        .user
        .clone()
        .ok_or_else(|| Error::Unauthorized("this needs a token".into()))?;
    Ok((caller, user))
}

/// Refuses a write without write access: 401 for the anonymous, 403 for a
/// user who may only read.
pub(crate) fn require_write(caller: &Caller, access: Access, what: &str) -> Result<()> {
    if access >= Access::Write {
        Ok(())
    } else if caller.user.is_none() {
        Err(Error::Unauthorized(format!(
            "pushing to {what} needs a token: run `apptainer remote login`"
        )))
    } else {
        Err(Error::Forbidden(format!("you may not write to {what}")))
    }
}

/// An image named by `[[entity/]collection/]container[:ref]`, as a pull, an
/// image lookup or a delete names it.
pub(crate) struct Resolved {
    pub collection: Collection,
    pub container: Container,
    pub image: Image,
    pub access: Access,
}

/// Resolves `path` for `arch` (library-api.md §5): `sha256.<hex>` selects by
/// hash, anything else is a tag of `arch` (of any arch, amd64 first, when
/// `arch` is empty). Only uploaded images are found; anything missing or
/// invisible is the same 404.
pub(crate) async fn resolve(
    state: &AppState,
    caller: &Caller,
    path: &str,
    arch: &str,
) -> Result<Resolved> {
    let (path_part, reference) = match path.rsplit_once('/') {
        Some((head, last)) => match last.split_once(':') {
            Some((name, r)) => (format!("{head}/{name}"), r.to_string()),
            None => (path.to_string(), tag_model_default()),
        },
        None => match path.split_once(':') {
            Some((name, r)) => (name.to_string(), r.to_string()),
            None => (path.to_string(), tag_model_default()),
        },
    };
    let n = names(state, &path_part, true)?;
    let container_name = n.container.clone().unwrap_or_default();
    let shown = format!(
        "image {}/{}/{}:{reference}",
        n.entity, n.collection, container_name
    );
    let by_hash = reference.starts_with("sha256.");
    if by_hash {
        catalog::validate_hash(&reference)?;
    } else {
        tag_model::validate_tag(&reference)?;
    }
    let db = &state.db.pool;
    let missing = || Error::not_found(&shown);
    let (collection, access) = visible_collection(state, caller, &n.entity, &n.collection)
        .await?
        .ok_or_else(missing)?;
    let container = catalog::container(db, collection.id, &container_name)
        .await?
        .ok_or_else(missing)?;
    let image = if by_hash {
        catalog::image_by_hash(db, container.id, &reference)
            .await?
            // A lookup by hash for an arch is refused for an image known to be another.
            .filter(|i| arch.is_empty() || i.arch.is_empty() || i.arch == arch)
    } else {
        match tag_image(db, container.id, &reference, arch).await? {
            Some(id) => catalog::image_by_id(db, id).await?,
            None => None,
        }
    };
    let image = image.filter(Image::is_uploaded).ok_or_else(missing)?;
    Ok(Resolved {
        collection,
        container,
        image,
        access,
    })
}

fn tag_model_default() -> String {
    sreg_api::reference::DEFAULT_TAG.to_string()
}

/// The image a tag names for `arch`; a tag set without an architecture (v1
/// tags of an image whose arch is unknown) serves every arch.
async fn tag_image(
    db: &sqlx::AnyPool,
    container_id: i64,
    tag: &str,
    arch: &str,
) -> Result<Option<i64>> {
    if arch.is_empty() {
        return tag_model::resolve(db, container_id, tag, None).await;
    }
    if let Some(id) = tag_model::resolve(db, container_id, tag, Some(arch)).await? {
        return Ok(Some(id));
    }
    Ok(tag_model::of_container(db, container_id)
        .await?
        .into_iter()
        .find(|t| t.arch.is_empty() && t.name == tag)
        .map(|t| t.image_id))
}

/// `public_url` joined with an absolute path, for URLs handed to clients
/// (upload and part URLs, redirects): the Go client needs absolute ones.
pub(crate) fn public_url(state: &AppState, path: &str) -> String {
    format!(
        "{}{path}",
        state.config.public_url.as_str().trim_end_matches('/')
    )
}

/// `e/c/n` of a container, as `containerUrl` and messages show it.
pub(crate) fn container_path(c: &Collection, k: &Container) -> String {
    format!("{}/{}/{}", c.entity_name, c.name, k.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(uri: &str) -> Request {
        Request::builder()
            .uri(uri)
            .body(axum::body::Body::empty())
            .unwrap()
    }

    #[test]
    fn double_slashes_collapse_and_the_query_stays() {
        let r = normalize_path(req("/v1/images//c/n:latest?arch=amd64&x=a//b"));
        assert_eq!(r.uri(), "/v1/images/c/n:latest?arch=amd64&x=a//b");
        let r = normalize_path(req("//version"));
        assert_eq!(r.uri(), "/version");
        let r = normalize_path(req("/v1/images/a/b/c:t"));
        assert_eq!(r.uri(), "/v1/images/a/b/c:t");
    }

    #[test]
    fn query_takes_the_escaped_equals_sign_of_singularity_370() {
        let q = Query::parse(&"/x?arch%3Damd64".parse().unwrap());
        assert_eq!(q.arch(), "amd64");
        let q = Query::parse(&"/x?arch=&value=sam".parse().unwrap());
        assert_eq!(q.arch(), "");
        assert_eq!(q.get("value"), Some("sam"));
        let q = Query::parse(&"/x".parse().unwrap());
        assert_eq!(q.arch(), "");
    }

    #[test]
    fn ids_are_positive_decimals() {
        assert_eq!(parse_id("image", "42").unwrap(), 42);
        for bad in ["", "0", "-1", "+3", "4a", "1e3", "99999999999999999999"] {
            assert!(parse_id("image", bad).is_err(), "{bad}");
        }
    }
}
