//! `GET /v1/search?value=...` (library-api.md §7): entities, collections,
//! containers and images whose name (or description) contains the value,
//! limited to what the caller can see. `arch` (a comma list) or `signed`
//! limit the answer to images, as the OpenAPI description says.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use serde_json::Value;

use super::envelope::{ApiResult, data};
use super::{Query, objects};
use crate::error::{Error, Result};
use crate::http::auth;
use crate::model::access::{self, Access, Caller};
use crate::model::accounts::Entity;
use crate::model::catalog::{self, Collection, Container, Image};
use crate::serve::AppState;

/// Results of each kind, at most.
const LIMIT: usize = 100;
/// Candidate rows read per kind before the access filter.
const SCAN: i64 = 1000;

pub async fn search(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> ApiResult {
    let caller = auth::caller(&state, &headers).await?;
    let q = Query::parse(&uri);
    let value = q.get("value").unwrap_or("").trim().to_lowercase();
    if value.chars().count() < 3 {
        return Err(Error::BadRequest("search for at least 3 characters".into()).into());
    }
    let arches: Vec<String> = q
        .arch()
        .split(',')
        .map(|a| a.trim().to_string())
        .filter(|a| !a.is_empty())
        .collect();
    let signed_only = q
        .get("signed")
        .is_some_and(|s| s.eq_ignore_ascii_case("true"));
    let images_only = !arches.is_empty() || q.get("signed").is_some();
    let pattern = format!("%{}%", escape_like(&value));

    let mut s = Searcher {
        state: &state,
        caller: &caller,
        access: HashMap::new(),
    };
    let (mut entities, mut collections, mut containers) = (Vec::new(), Vec::new(), Vec::new());
    if !images_only {
        entities = s.entities(&pattern).await?;
        collections = s.collections(&pattern).await?;
        containers = s.containers(&pattern).await?;
    }
    let images = s.images(&pattern, &arches, signed_only).await?;
    Ok(data(serde_json::json!({
        "entity": entities,
        "collection": collections,
        "container": containers,
        "image": images,
    })))
}

/// `LIKE` patterns treat `%` and `_` specially; a search for them is literal.
fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

struct Searcher<'a> {
    state: &'a AppState,
    caller: &'a Caller,
    /// Collection id -> the caller's access, so each is checked once.
    access: HashMap<i64, (Collection, Access)>,
}

impl Searcher<'_> {
    async fn collection(&mut self, id: i64) -> Result<Option<(Collection, Access)>> {
        if let Some(found) = self.access.get(&id) {
            return Ok((found.1 >= Access::Read).then(|| found.clone()));
        }
        let db = &self.state.db.pool;
        let Some(c) = catalog::collection_by_id(db, id).await? else {
            return Ok(None);
        };
        let a = access::collection_access(db, self.caller, &c).await?;
        self.access.insert(id, (c.clone(), a));
        Ok((a >= Access::Read).then_some((c, a)))
    }

    /// Entities with a matching name that own something the caller can see
    /// (or are the caller), so that a search reveals no private namespace.
    async fn entities(&mut self, pattern: &str) -> Result<Vec<Value>> {
        let db = &self.state.db.pool;
        let found: Vec<Entity> = sqlx::query_as(
            "SELECT * FROM entities WHERE LOWER(name) LIKE $1 ESCAPE '\\' ORDER BY name LIMIT $2",
        )
        .bind(pattern)
        .bind(SCAN)
        .fetch_all(db)
        .await?;
        let mut out = Vec::new();
        for e in found {
            let ids: Vec<i64> =
                sqlx::query_scalar("SELECT id FROM collections WHERE entity_id = $1")
                    .bind(e.id)
                    .fetch_all(db)
                    .await?;
            let mut visible = self.caller.id() == Some(e.id);
            for id in ids {
                if visible {
                    break;
                }
                visible = self.collection(id).await?.is_some();
            }
            if visible {
                out.push(objects::entity(db, self.caller, &e).await?);
            }
            if out.len() >= LIMIT {
                break;
            }
        }
        Ok(out)
    }

    async fn collections(&mut self, pattern: &str) -> Result<Vec<Value>> {
        let db = &self.state.db.pool;
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM collections
             WHERE LOWER(name) LIKE $1 ESCAPE '\\' OR LOWER(description) LIKE $1 ESCAPE '\\'
             ORDER BY name, id LIMIT $2",
        )
        .bind(pattern)
        .bind(SCAN)
        .fetch_all(db)
        .await?;
        let mut out = Vec::new();
        for id in ids {
            if let Some((c, _)) = self.collection(id).await? {
                out.push(objects::collection(db, &c).await?);
                if out.len() >= LIMIT {
                    break;
                }
            }
        }
        Ok(out)
    }

    async fn containers(&mut self, pattern: &str) -> Result<Vec<Value>> {
        let db = &self.state.db.pool;
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM containers
             WHERE LOWER(name) LIKE $1 ESCAPE '\\' OR LOWER(description) LIKE $1 ESCAPE '\\'
             ORDER BY name, id LIMIT $2",
        )
        .bind(pattern)
        .bind(SCAN)
        .fetch_all(db)
        .await?;
        let mut out = Vec::new();
        for id in ids {
            let Some(k) = catalog::container_by_id(db, id).await? else {
                continue;
            };
            if let Some((c, a)) = self.collection(k.collection_id).await? {
                out.push(objects::container(db, &c, &k, a).await?);
                if out.len() >= LIMIT {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Uploaded images whose container's name or description, or own
    /// description, matches.
    async fn images(
        &mut self,
        pattern: &str,
        arches: &[String],
        signed_only: bool,
    ) -> Result<Vec<Value>> {
        let db = &self.state.db.pool;
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT i.id FROM images i JOIN containers k ON k.id = i.container_id
             WHERE i.uploaded = 1 AND (LOWER(k.name) LIKE $1 ESCAPE '\\'
                OR LOWER(k.description) LIKE $1 ESCAPE '\\' OR LOWER(i.description) LIKE $1 ESCAPE '\\')
             ORDER BY k.name, i.id LIMIT $2",
        )
        .bind(pattern)
        .bind(SCAN)
        .fetch_all(db)
        .await?;
        let mut out = Vec::new();
        let mut containers: HashMap<i64, Container> = HashMap::new();
        for id in ids {
            let Some(i): Option<Image> = catalog::image_by_id(db, id).await? else {
                continue;
            };
            if (!arches.is_empty() && !arches.contains(&i.arch)) || (signed_only && i.signed == 0) {
                continue;
            }
            let k = match containers.get(&i.container_id) {
                Some(k) => k.clone(),
                None => {
                    let Some(k) = catalog::container_by_id(db, i.container_id).await? else {
                        continue;
                    };
                    containers.insert(k.id, k.clone());
                    k
                }
            };
            if let Some((c, _)) = self.collection(k.collection_id).await? {
                out.push(objects::image(db, &c, &k, &i).await?);
                if out.len() >= LIMIT {
                    break;
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_wildcards_are_literal() {
        assert_eq!(escape_like("a_b%c\\"), "a\\_b\\%c\\\\");
        assert_eq!(escape_like("samtools"), "samtools");
    }
}
