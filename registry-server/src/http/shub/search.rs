//! Container search (no signature; sregistry-cli sends none):
//! `/api/container/search/name/<n>[/tag/<t>]` and
//! `/api/container/search/collection/<c>/name/<n>[/tag/<t>]`.
//!
//! Plain lists, never paginated (sregistry-cli's pagination loops forever
//! on a non-null `next`). The name matches as a substring, the collection
//! and tag exactly; only what the caller may see is listed, from every
//! collection of that name (a listing, unlike a pull, need not pick one).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde_json::Value;

use super::Reply;
use super::views::{self, Filter};
use crate::http::auth;
use crate::serve::AppState;

async fn search(state: &AppState, headers: &HeaderMap, filter: Filter<'_>) -> Reply<Json<Value>> {
    let caller = auth::caller(state, headers).await?;
    let rows = views::tagged(&state.db.pool, &filter).await?;
    let rows = views::only_visible(&state.db.pool, &caller, rows).await?;
    Ok(Json(Value::Array(
        rows.iter().map(views::container).collect(),
    )))
}

pub async fn by_name(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Reply<Json<Value>> {
    let name = name.to_lowercase();
    let filter = Filter {
        name_contains: Some(&name),
        ..Default::default()
    };
    search(&state, &headers, filter).await
}

pub async fn by_name_and_tag(
    State(state): State<AppState>,
    Path((name, tag)): Path<(String, String)>,
    headers: HeaderMap,
) -> Reply<Json<Value>> {
    let name = name.to_lowercase();
    let filter = Filter {
        name_contains: Some(&name),
        tag: Some(&tag),
        ..Default::default()
    };
    search(&state, &headers, filter).await
}

pub async fn in_collection(
    State(state): State<AppState>,
    Path((collection, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Reply<Json<Value>> {
    let name = name.to_lowercase();
    let filter = Filter {
        name_contains: Some(&name),
        collection: Some(&collection),
        ..Default::default()
    };
    search(&state, &headers, filter).await
}

pub async fn in_collection_with_tag(
    State(state): State<AppState>,
    Path((collection, name, tag)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Reply<Json<Value>> {
    let name = name.to_lowercase();
    let filter = Filter {
        name_contains: Some(&name),
        collection: Some(&collection),
        tag: Some(&tag),
        ..Default::default()
    };
    search(&state, &headers, filter).await
}
