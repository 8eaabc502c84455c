//! What pages show of the catalog, limited to what the caller may see: the
//! visible collections come from the same rule as the API's
//! (`model::access`), and every count, size and list is built from them
//! only, so a private collection leaves no trace for others.

use std::collections::{HashMap, HashSet};

use axum::extract::{Path, State};
use axum::response::Response;
use serde::Serialize;
use sqlx::AnyPool;

use super::session::Visitor;
use super::{PageError, render};
use crate::error::Result;
use crate::http::api::collections::visible_collections;
use crate::model::access::{self, Access, Caller};
use crate::model::catalog::{self, Collection};
use crate::model::tags;
use crate::serve::AppState;

/// Counts of one collection.
#[derive(Debug, Default, Clone)]
pub struct CollectionStats {
    pub containers: i64,
    pub images: i64,
    /// Distinct SIF blobs, each counted once.
    pub digests: HashMap<String, i64>,
}

impl CollectionStats {
    pub fn bytes(&self) -> i64 {
        self.digests.values().sum()
    }
}

/// The counts of every collection, or of one (the caller filters by
/// visibility).
pub async fn stats(db: &AnyPool, only: Option<i64>) -> Result<HashMap<i64, CollectionStats>> {
    // The filter is fixed text; the collection id is always bound.
    let filter = if only.is_some() {
        "AND k.collection_id = $1"
    } else {
        ""
    };
    let mut out: HashMap<i64, CollectionStats> = HashMap::new();
    let containers: Vec<(i64, i64)> = bind_only(
        sqlx::query_as(&format!(
            "SELECT k.collection_id, COUNT(*) FROM containers k WHERE 1 = 1 {filter}
             GROUP BY k.collection_id"
        )),
        only,
    )
    .fetch_all(db)
    .await?;
    for (c, n) in containers {
        out.entry(c).or_default().containers = n;
    }
    let images: Vec<(i64, i64)> = bind_only(
        sqlx::query_as(&format!(
            "SELECT k.collection_id, COUNT(*) FROM images i JOIN containers k ON k.id = i.container_id
             WHERE i.uploaded = 1 {filter} GROUP BY k.collection_id"
        )),
        only,
    )
    .fetch_all(db)
    .await?;
    for (c, n) in images {
        out.entry(c).or_default().images = n;
    }
    let blobs: Vec<(i64, String, i64)> = bind_only(
        sqlx::query_as(&format!(
            "SELECT DISTINCT k.collection_id, b.digest, b.size
             FROM images i JOIN containers k ON k.id = i.container_id
             JOIN blobs b ON b.digest = i.blob_digest
             WHERE i.uploaded = 1 {filter}"
        )),
        only,
    )
    .fetch_all(db)
    .await?;
    for (c, digest, size) in blobs {
        out.entry(c).or_default().digests.insert(digest, size);
    }
    Ok(out)
}

fn bind_only<'q, O>(
    q: sqlx::query::QueryAs<'q, sqlx::Any, O, sqlx::any::AnyArguments<'q>>,
    only: Option<i64>,
) -> sqlx::query::QueryAs<'q, sqlx::Any, O, sqlx::any::AnyArguments<'q>> {
    match only {
        Some(id) => q.bind(id),
        None => q,
    }
}

/// Registry-wide totals over the given (visible) collections.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct Totals {
    pub collections: i64,
    pub containers: i64,
    pub images: i64,
    /// Distinct blobs: an image in two collections is stored once.
    pub bytes: i64,
    pub pulls: i64,
}

pub fn totals(visible: &[Collection], stats: &HashMap<i64, CollectionStats>) -> Totals {
    let mut t = Totals::default();
    let mut digests: HashMap<&str, i64> = HashMap::new();
    for c in visible {
        t.collections += 1;
        t.pulls += c.downloads;
        if let Some(s) = stats.get(&c.id) {
            t.containers += s.containers;
            t.images += s.images;
            for (d, size) in &s.digests {
                digests.insert(d, *size);
            }
        }
    }
    t.bytes = digests.values().sum();
    t
}

/// A container in a list, with where it lives.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct ContainerRow {
    #[serde(skip)]
    pub collection_id: i64,
    pub entity: String,
    pub collection: String,
    pub name: String,
    pub updated_at: i64,
    pub downloads: i64,
    #[sqlx(skip)]
    pub private: bool,
}

/// Containers with at least one image, in the given order, of visible
/// collections only, at most `limit`.
pub async fn containers_by(
    db: &AnyPool,
    visible: &[Collection],
    order: &str,
    only_pulled: bool,
    limit: usize,
) -> Result<Vec<ContainerRow>> {
    let private: HashMap<i64, bool> = visible.iter().map(|c| (c.id, c.private != 0)).collect();
    let rows: Vec<ContainerRow> = sqlx::query_as(&format!(
        "SELECT k.collection_id, e.name AS entity, c.name AS collection, k.name, k.updated_at,
                k.downloads
         FROM containers k JOIN collections c ON c.id = k.collection_id
         JOIN entities e ON e.id = c.entity_id
         WHERE EXISTS (SELECT 1 FROM images i WHERE i.container_id = k.id AND i.uploaded = 1)
           {}
         ORDER BY {order}, e.name, c.name, k.name",
        if only_pulled {
            "AND k.downloads > 0"
        } else {
            ""
        }
    ))
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|mut r| {
            r.private = *private.get(&r.collection_id)?;
            Some(r)
        })
        .take(limit)
        .collect())
}

#[derive(Debug, Serialize)]
struct CollectionRow {
    entity: String,
    name: String,
    description: String,
    private: bool,
    containers: i64,
    bytes_exact: i64,
    downloads: i64,
    updated_at: i64,
}

/// `GET /collections`
pub async fn collections(
    State(state): State<AppState>,
    v: Visitor,
) -> std::result::Result<Response, PageError> {
    let visible = visible_collections(&state, &v.caller).await?;
    let stats = stats(&state.db.pool, None).await?;
    let rows: Vec<CollectionRow> = visible
        .into_iter()
        .map(|c| {
            let s = stats.get(&c.id).cloned().unwrap_or_default();
            CollectionRow {
                private: c.private != 0,
                containers: s.containers,
                bytes_exact: s.bytes(),
                downloads: c.downloads,
                updated_at: c.updated_at,
                entity: c.entity_name,
                name: c.name,
                description: c.description,
            }
        })
        .collect();
    render(
        &state,
        &v,
        "collections",
        "Collections",
        serde_json::json!({ "collections": rows }),
    )
}

/// A collection the caller may see; others are "not found", exactly like
/// one that does not exist.
pub async fn visible_collection(
    db: &AnyPool,
    caller: &Caller,
    entity: &str,
    name: &str,
) -> std::result::Result<Collection, PageError> {
    match catalog::collection(db, entity, name).await? {
        Some(c) if access::collection_access(db, caller, &c).await? >= Access::Read => Ok(c),
        _ => Err(PageError::not_found()),
    }
}

#[derive(Debug, Serialize)]
struct ContainerItem {
    name: String,
    description: String,
    tags: Vec<String>,
    downloads: i64,
    stars: i64,
    updated_at: i64,
}

/// `GET /c/{entity}/{collection}`
pub async fn collection(
    State(state): State<AppState>,
    v: Visitor,
    Path((entity, name)): Path<(String, String)>,
) -> std::result::Result<Response, PageError> {
    let db = &state.db.pool;
    let c = visible_collection(db, &v.caller, &entity, &name).await?;
    let stats = stats(db, Some(c.id))
        .await?
        .remove(&c.id)
        .unwrap_or_default();
    let stars: HashMap<i64, i64> = sqlx::query_as::<_, (i64, i64)>(
        "SELECT s.container_id, COUNT(*) FROM stars s JOIN containers k ON k.id = s.container_id
         WHERE k.collection_id = $1 GROUP BY s.container_id",
    )
    .bind(c.id)
    .fetch_all(db)
    .await?
    .into_iter()
    .collect();
    let mut items = Vec::new();
    for k in catalog::containers_of(db, c.id).await? {
        let mut seen = HashSet::new();
        let tag_names = tags::of_container(db, k.id)
            .await?
            .into_iter()
            .map(|t| t.name)
            .filter(|t| seen.insert(t.clone()))
            .collect();
        items.push(ContainerItem {
            stars: stars.get(&k.id).copied().unwrap_or(0),
            tags: tag_names,
            name: k.name,
            description: k.description,
            downloads: k.downloads,
            updated_at: k.updated_at,
        });
    }
    let title = format!("{}/{}", c.entity_name, c.name);
    render(
        &state,
        &v,
        "collection",
        &title,
        serde_json::json!({
            "entity": c.entity_name,
            "name": c.name,
            "description": c.description,
            "private": c.private != 0,
            "created_at": c.created_at,
            "downloads": c.downloads,
            "bytes": stats.bytes(),
            "container_count": items.len(),
            "containers": items,
        }),
    )
}
