//! `GET /api/v1/sizes`: storage per collection, for a treemap.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use sreg_api::v1::{CollectionSize, ErrorBody};

use super::collections::visible_collections;
use super::error::ApiResult;
use crate::http::auth;
use crate::serve::AppState;

/// Each visible collection's total bytes of distinct SIF blobs (a blob that
/// several images share counts once per collection) and its container
/// count, largest first. Build logs are not counted.
#[utoipa::path(
    get,
    path = "/api/v1/sizes",
    tag = "catalog",
    responses(
        (status = 200, description = "Sizes per collection", body = Vec<CollectionSize>),
        (status = 401, description = "An invalid, revoked or expired token", body = ErrorBody)
    )
)]
pub async fn sizes(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Json<Vec<CollectionSize>>> {
    let caller = auth::caller(&state, &headers).await?;
    let db = &state.db.pool;
    let bytes: HashMap<i64, i64> = sqlx::query_as::<_, (i64, i64)>(
        "SELECT d.collection_id, CAST(SUM(b.size) AS BIGINT)
         FROM (SELECT DISTINCT k.collection_id, i.blob_digest
               FROM images i JOIN containers k ON k.id = i.container_id
               WHERE i.uploaded = 1 AND i.blob_digest IS NOT NULL) d
         JOIN blobs b ON b.digest = d.blob_digest
         GROUP BY d.collection_id",
    )
    .fetch_all(db)
    .await?
    .into_iter()
    .collect();
    let containers: HashMap<i64, i64> = sqlx::query_as::<_, (i64, i64)>(
        "SELECT collection_id, COUNT(*) FROM containers GROUP BY collection_id",
    )
    .fetch_all(db)
    .await?
    .into_iter()
    .collect();
    let mut out: Vec<CollectionSize> = visible_collections(&state, &caller)
        .await?
        .into_iter()
        .map(|c| CollectionSize {
            bytes: bytes.get(&c.id).copied().unwrap_or(0),
            containers: containers.get(&c.id).copied().unwrap_or(0),
            entity: c.entity_name,
            collection: c.name,
            private: c.private != 0,
        })
        .collect();
    out.sort_by(|a, b| {
        b.bytes
            .cmp(&a.bytes)
            .then_with(|| (&a.entity, &a.collection).cmp(&(&b.entity, &b.collection)))
    });
    Ok(Json(out))
}
