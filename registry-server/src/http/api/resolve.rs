//! From a reference to the rows it names, with the access rules of
//! `model::access`: what the caller cannot see answers 404, exactly as what
//! does not exist; a two-part `c/n` names the one collection `c` visible to
//! the caller, and several answer 409 naming them.

use axum::http::StatusCode;
use sreg_api::Reference;

use super::error::{ApiError, ApiResult};
use crate::error::Error;
use crate::model::access::{Access, Caller, collection_access, entity_access};
use crate::model::accounts::{self, Entity, User};
use crate::model::catalog::{self, Collection, Container, Image};
use crate::model::tags;
use crate::serve::AppState;

/// A reference taken from a URL path: `ENTITY/COLLECTION/CONTAINER[:TAG]`
/// or `COLLECTION/CONTAINER[:TAG]`.
pub fn parse_ref(s: &str) -> ApiResult<Reference> {
    let r = Reference::parse(s.trim_matches('/'))?;
    if r.host.is_some() {
        return Err(ApiError::bad_request(
            "give the reference without `library://HOST/`",
        ));
    }
    Ok(r)
}

/// A container path taken from a URL: `ENTITY/COLLECTION/CONTAINER` or
/// `COLLECTION/CONTAINER`, no tag.
pub fn parse_container_path(s: &str) -> ApiResult<Reference> {
    if s.contains(':') {
        return Err(ApiError::bad_request(
            "a container path has no tag: ENTITY/COLLECTION/CONTAINER or COLLECTION/CONTAINER",
        ));
    }
    parse_ref(s)
}

fn not_found(what: String) -> ApiError {
    Error::not_found(what).into()
}

/// The collection a reference names, if the caller may see it.
pub async fn visible_collection(
    state: &AppState,
    caller: &Caller,
    entity: Option<&str>,
    name: &str,
) -> ApiResult<Collection> {
    let db = &state.db.pool;
    match entity {
        Some(e) => {
            let found = catalog::collection(db, e, name).await?;
            match found {
                Some(c) if collection_access(db, caller, &c).await? >= Access::Read => Ok(c),
                _ => Err(not_found(format!("collection {e}/{name}"))),
            }
        }
        None => {
            let mut visible = Vec::new();
            for c in catalog::collections_named(db, name).await? {
                if collection_access(db, caller, &c).await? >= Access::Read {
                    visible.push(c);
                }
            }
            match visible.len() {
                0 => Err(not_found(format!("collection {name}"))),
                1 => Ok(visible.remove(0)),
                _ => Err(ambiguous(name, &visible)),
            }
        }
    }
}

fn ambiguous(name: &str, candidates: &[Collection]) -> ApiError {
    let names: Vec<String> = candidates
        .iter()
        .map(|c| format!("{}/{}", c.entity_name, c.name))
        .collect();
    ApiError::status(
        StatusCode::CONFLICT,
        format!(
            "the collection name {name:?} is ambiguous: it could be {}; use ENTITY/COLLECTION/CONTAINER",
            names.join(", ")
        ),
    )
}

/// The container a reference names (its tag is ignored), if visible.
pub async fn visible_container(
    state: &AppState,
    caller: &Caller,
    r: &Reference,
) -> ApiResult<(Collection, Container)> {
    let c = visible_collection(state, caller, r.entity.as_deref(), &r.collection).await?;
    let k = catalog::container(&state.db.pool, c.id, &r.container)
        .await?
        .ok_or_else(|| {
            not_found(format!(
                "container {}/{}/{}",
                c.entity_name, c.name, r.container
            ))
        })?;
    Ok((c, k))
}

/// The published image a reference names: by tag (for `arch`, or any
/// architecture preferring amd64) or by `sha256.<hex>`.
pub async fn visible_image(
    state: &AppState,
    caller: &Caller,
    r: &Reference,
    arch: Option<&str>,
) -> ApiResult<(Collection, Container, Image)> {
    let db = &state.db.pool;
    let (c, k) = visible_container(state, caller, r).await?;
    let image = if r.tag.starts_with("sha256.") {
        catalog::image_by_hash(db, k.id, &r.tag).await?
    } else {
        match tags::resolve(db, k.id, &r.tag, arch).await? {
            Some(id) => catalog::image_by_id(db, id).await?,
            None => None,
        }
    };
    let shown = format!("{}/{}/{}:{}", c.entity_name, c.name, k.name, r.tag);
    match image {
        Some(i) if i.is_uploaded() => {
            if let Some(a) = arch.filter(|a| !a.is_empty())
                && r.tag.starts_with("sha256.")
                && !i.arch.is_empty()
                && i.arch != a
            {
                return Err(not_found(format!("image {shown} for {a}")));
            }
            Ok((c, k, i))
        }
        _ => Err(not_found(match arch.filter(|a| !a.is_empty()) {
            Some(a) => format!("image {shown} for {a}"),
            None => format!("image {shown}"),
        })),
    }
}

/// Where a push goes: the entity, and the collection and container when
/// they exist already. Nothing is created here.
#[derive(Debug, Clone)]
pub struct PushTarget {
    pub entity: Entity,
    pub collection: Option<Collection>,
    pub container: Option<Container>,
    pub container_name: String,
    pub collection_name: String,
}

impl PushTarget {
    pub fn path(&self) -> String {
        format!(
            "{}/{}/{}",
            self.entity.name, self.collection_name, self.container_name
        )
    }
}

/// Checks that `user` may push to `r`, and finds what exists of it.
pub async fn push_target(state: &AppState, user: &User, r: &Reference) -> ApiResult<PushTarget> {
    let db = &state.db.pool;
    let caller = Caller::user(user.clone());
    let (entity, collection) = match r.entity.as_deref() {
        Some(e) => {
            let entity = accounts::entity_by_name(db, e)
                .await?
                .ok_or_else(|| not_found(format!("user or team {e}")))?;
            let collection = catalog::collection(db, e, &r.collection).await?;
            (entity, collection)
        }
        None => {
            let mut visible = Vec::new();
            for c in catalog::collections_named(db, &r.collection).await? {
                if collection_access(db, &caller, &c).await? >= Access::Read {
                    visible.push(c);
                }
            }
            match visible.len() {
                // None visible: created under the caller's own entity.
                0 => (accounts::entity_by_id(db, user.id).await?, None),
                1 => {
                    let c = visible.remove(0);
                    (accounts::entity_by_id(db, c.entity_id).await?, Some(c))
                }
                _ => return Err(ambiguous(&r.collection, &visible)),
            }
        }
    };
    match &collection {
        Some(c) => match collection_access(db, &caller, c).await? {
            Access::Write => {}
            Access::Read => {
                return Err(Error::Forbidden(format!(
                    "you may pull from {}/{} but not push to it: ask one of its owners to make you an owner",
                    c.entity_name, c.name
                ))
                .into());
            }
            Access::None => return Err(no_namespace(&entity)),
        },
        None => {
            if entity_access(db, &caller, entity.id).await? != Access::Write {
                return Err(no_namespace(&entity));
            }
            check_collection_limit(state, user).await?;
        }
    }
    let container = match &collection {
        Some(c) => catalog::container(db, c.id, &r.container).await?,
        None => None,
    };
    Ok(PushTarget {
        entity,
        collection,
        container,
        container_name: r.container.clone(),
        collection_name: r.collection.clone(),
    })
}

fn no_namespace(entity: &Entity) -> ApiError {
    Error::Forbidden(format!(
        "you may not push to collections of {} {:?}: push to your own user or to a team you belong to",
        entity.kind, entity.name
    ))
    .into()
}

/// Refuses a new collection past the registry's per-user limit.
pub async fn check_collection_limit(state: &AppState, user: &User) -> ApiResult<()> {
    let limit = state.config.registry.user_collection_limit;
    if limit == 0 || user.is_admin() {
        return Ok(());
    }
    let count = catalog::count_collections_created_by(&state.db.pool, user.id).await?;
    if count >= i64::from(limit) {
        return Err(Error::Forbidden(format!(
            "you have created {count} collections, this registry's limit: push to an existing collection, or ask an admin"
        ))
        .into());
    }
    Ok(())
}

/// Creates what a push target lacks: the collection (private as asked, or
/// as the entity and registry default) and the container.
pub async fn create_missing(
    state: &AppState,
    user: &User,
    target: &PushTarget,
    private: Option<bool>,
) -> ApiResult<(Collection, Container)> {
    let db = &state.db.pool;
    let collection = match &target.collection {
        Some(c) => c.clone(),
        None => {
            let asked = private.or((target.entity.default_private != 0).then_some(true));
            let private = state.config.registry.new_collection_private(asked);
            match catalog::create_collection(
                db,
                target.entity.id,
                &target.collection_name,
                private,
                user.id,
            )
            .await
            {
                Ok(c) => c,
                // Created by a concurrent push in the meantime.
                Err(Error::Conflict(_)) => {
                    catalog::collection(db, &target.entity.name, &target.collection_name)
                        .await?
                        .ok_or_else(|| Error::Internal("collection vanished".into()))?
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    let container = match catalog::container(db, collection.id, &target.container_name).await? {
        Some(k) => k,
        None => {
            match catalog::create_container(db, collection.id, &target.container_name, "").await {
                Ok(k) => k,
                Err(Error::Conflict(_)) => {
                    catalog::container(db, collection.id, &target.container_name)
                        .await?
                        .ok_or_else(|| Error::Internal("container vanished".into()))?
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    Ok((collection, container))
}
