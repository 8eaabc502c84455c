//! `GET /api/v1/search?q=WORD`.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use sreg_api::v1::{CollectionHit, ContainerHit, ErrorBody, SearchResults};
use utoipa::IntoParams;

use super::error::{ApiError, ApiResult};
use crate::http::auth;
use crate::model::access::{self, Access};
use crate::model::catalog::{self, Collection};
use crate::model::{activity, tags};
use crate::serve::AppState;

#[derive(Debug, Deserialize, IntoParams)]
pub struct SearchQuery {
    /// A word, matched case-insensitively anywhere in the names and
    /// descriptions of entities, collections and containers, and in tags.
    pub q: String,
}

/// At most this many hits of each kind.
const MAX_HITS: usize = 100;

/// Search the collections and containers the caller can see.
#[utoipa::path(
    get,
    path = "/api/v1/search",
    tag = "catalog",
    params(SearchQuery),
    responses(
        (status = 200, description = "Matching collections and containers", body = SearchResults),
        (status = 400, description = "No word given", body = ErrorBody)
    )
)]
pub async fn search(
    State(state): State<AppState>,
    Query(q): Query<SearchQuery>,
    headers: HeaderMap,
) -> ApiResult<Json<SearchResults>> {
    let caller = auth::caller(&state, &headers).await?;
    let word = q.q.trim().to_lowercase();
    if word.is_empty() || word.len() > 200 {
        return Err(ApiError::bad_request(
            "give a word to search for, of at most 200 characters: ?q=WORD",
        ));
    }
    let db = &state.db.pool;
    let pattern = format!(
        "%{}%",
        word.replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    );
    let matching: Vec<Collection> = sqlx::query_as(
        "SELECT c.id, c.entity_id, e.name AS entity_name, c.name, c.description, c.private,
                c.created_at, c.updated_at, c.downloads
         FROM collections c JOIN entities e ON e.id = c.entity_id
         WHERE LOWER(c.name) LIKE $1 ESCAPE '\\' OR LOWER(c.description) LIKE $1 ESCAPE '\\'
            OR LOWER(e.name) LIKE $1 ESCAPE '\\'
            OR EXISTS (SELECT 1 FROM containers k WHERE k.collection_id = c.id AND (
                   LOWER(k.name) LIKE $1 ESCAPE '\\' OR LOWER(k.description) LIKE $1 ESCAPE '\\'
                   OR EXISTS (SELECT 1 FROM tags t WHERE t.container_id = k.id
                              AND LOWER(t.name) LIKE $1 ESCAPE '\\')))
         ORDER BY e.name, c.name",
    )
    .bind(&pattern)
    .fetch_all(db)
    .await?;
    let hit = |s: &str| s.to_lowercase().contains(&word);
    let mut collections = Vec::new();
    let mut containers = Vec::new();
    for c in matching {
        if c.private != 0 && access::collection_access(db, &caller, &c).await? < Access::Read {
            continue;
        }
        let kids = catalog::containers_of(db, c.id).await?;
        let collection_hit = hit(&c.name) || hit(&c.description) || hit(&c.entity_name);
        if collection_hit && collections.len() < MAX_HITS {
            collections.push(CollectionHit {
                entity: c.entity_name.clone(),
                name: c.name.clone(),
                description: c.description.clone(),
                private: c.private != 0,
                containers: kids.len() as i64,
            });
        }
        for k in kids {
            if containers.len() >= MAX_HITS {
                break;
            }
            let mut tag_names: Vec<String> = tags::of_container(db, k.id)
                .await?
                .into_iter()
                .map(|t| t.name)
                .collect();
            tag_names.sort();
            tag_names.dedup();
            let matched = collection_hit
                || hit(&k.name)
                || hit(&k.description)
                || tag_names.iter().any(|t| hit(t));
            if matched {
                containers.push(ContainerHit {
                    entity: c.entity_name.clone(),
                    collection: c.name.clone(),
                    name: k.name.clone(),
                    description: k.description.clone(),
                    private: c.private != 0,
                    tags: tag_names,
                    downloads: k.downloads,
                    stars: activity::star_count(db, k.id).await?,
                });
            }
        }
    }
    Ok(Json(SearchResults {
        query: q.q,
        collections,
        containers,
    }))
}
