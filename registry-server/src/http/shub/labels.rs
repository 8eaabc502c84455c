//! `GET /api/labels/search[/<key>/key][/<value>/value]`: the SIF labels of
//! tagged images, as `[{key, value, containers: [uri]}]`. Keys are
//! lower-cased, as sregistry stores them; key and value match without
//! regard to case (the client lower-cases its query). Only what the caller
//! may see is listed. No signature: sregistry-cli sends none.

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::Reply;
use super::views::{self, Filter};
use crate::http::auth;
use crate::serve::AppState;

async fn labels(
    state: &AppState,
    headers: &HeaderMap,
    key: Option<&str>,
    value: Option<&str>,
) -> Reply<Json<Value>> {
    let caller = auth::caller(state, headers).await?;
    let filter = Filter {
        labelled: true,
        ..Default::default()
    };
    let rows = views::tagged(&state.db.pool, &filter).await?;
    let rows = views::only_visible(&state.db.pool, &caller, rows).await?;
    let key = key.map(str::to_lowercase);
    let value = value.map(str::to_lowercase);
    let mut found: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for row in &rows {
        let Some(Value::Object(map)) = row
            .labels
            .as_deref()
            .and_then(|l| serde_json::from_str::<Value>(l).ok())
        else {
            continue;
        };
        for (k, v) in map {
            let k = k.to_lowercase();
            let v = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            if key.as_ref().is_some_and(|want| *want != k)
                || value.as_ref().is_some_and(|want| *want != v.to_lowercase())
            {
                continue;
            }
            found.entry((k, v)).or_default().insert(row.uri());
        }
    }
    let list: Vec<Value> = found
        .into_iter()
        .map(|((key, value), uris)| json!({"key": key, "value": value, "containers": uris}))
        .collect();
    Ok(Json(Value::Array(list)))
}

pub async fn all(State(state): State<AppState>, headers: HeaderMap) -> Reply<Json<Value>> {
    labels(&state, &headers, None, None).await
}

pub async fn by_key(
    State(state): State<AppState>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Reply<Json<Value>> {
    labels(&state, &headers, Some(&key), None).await
}

pub async fn by_value(
    State(state): State<AppState>,
    Path(value): Path<String>,
    headers: HeaderMap,
) -> Reply<Json<Value>> {
    labels(&state, &headers, None, Some(&value)).await
}

pub async fn by_key_and_value(
    State(state): State<AppState>,
    Path((key, value)): Path<(String, String)>,
    headers: HeaderMap,
) -> Reply<Json<Value>> {
    labels(&state, &headers, Some(&key), Some(&value)).await
}
