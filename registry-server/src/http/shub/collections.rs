//! `GET /api/collections/` (every collection the caller can see, each with
//! its tagged containers; a plain list, never paginated) and
//! `GET /api/collection/<name>` (one object; `{}` when the caller can see
//! none by that name, as sregistry answers; 409 when several).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::views::{self, Filter, Tagged, iso};
use super::{Reply, resolve};
use crate::error::Result;
use crate::http::auth;
use crate::model::access::{Access, collection_access};
use crate::model::catalog::Collection;
use crate::serve::AppState;

fn collection_json(state: &AppState, c: &Collection, rows: &[&Tagged]) -> Value {
    let containers: Vec<Value> = rows
        .iter()
        .map(|r| {
            let uri = r.uri();
            json!({
                "name": r.container,
                "tag": r.tag,
                "uri": uri,
                "detail": detail_url(state, &uri),
            })
        })
        .collect();
    json!({
        "id": c.id,
        "name": c.name,
        "owner": c.entity_name,
        "private": c.private != 0,
        "add_date": iso(c.created_at),
        "modify_date": iso(c.updated_at),
        "metadata": {},
        "containers": containers,
    })
}

/// The API address of a container, which the client shows as its detail.
fn detail_url(state: &AppState, uri: &str) -> String {
    state
        .config
        .public_url
        .join(&format!("api/container/{uri}"))
        .map(String::from)
        .unwrap_or_default()
}

const COLLECTIONS: &str = "SELECT c.id, c.entity_id, e.name AS entity_name, c.name, c.description,
        c.private, c.created_at, c.updated_at, c.downloads
     FROM collections c JOIN entities e ON e.id = c.entity_id
     ORDER BY c.name, e.name";

pub async fn all(State(state): State<AppState>, headers: HeaderMap) -> Reply<Json<Value>> {
    let caller = auth::caller(&state, &headers).await?;
    let pool = &state.db.pool;
    let every: Vec<Collection> = sqlx::query_as(COLLECTIONS).fetch_all(pool).await?;
    let mut visible = Vec::new();
    for c in every {
        if collection_access(pool, &caller, &c).await? >= Access::Read {
            visible.push(c);
        }
    }
    let rows = views::tagged(pool, &Filter::default()).await?;
    let mut by_collection: BTreeMap<i64, Vec<&Tagged>> = BTreeMap::new();
    for r in &rows {
        by_collection.entry(r.collection_id).or_default().push(r);
    }
    let list: Vec<Value> = visible
        .iter()
        .map(|c| {
            let rows = by_collection.get(&c.id).map(Vec::as_slice).unwrap_or(&[]);
            collection_json(&state, c, rows)
        })
        .collect();
    Ok(Json(Value::Array(list)))
}

pub async fn one(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Reply<Json<Value>> {
    let caller = auth::caller(&state, &headers).await?;
    let name = name.to_lowercase();
    let Some((c, _)) = resolve::collection(&state, &caller, &name).await? else {
        return Ok(Json(json!({})));
    };
    let rows = rows_of(&state, c.id).await?;
    let rows: Vec<&Tagged> = rows.iter().collect();
    Ok(Json(collection_json(&state, &c, &rows)))
}

async fn rows_of(state: &AppState, collection_id: i64) -> Result<Vec<Tagged>> {
    let filter = Filter {
        collection_id: Some(collection_id),
        ..Default::default()
    };
    views::tagged(&state.db.pool, &filter).await
}
