//! `GET /healthz`: is the database and the blob store reachable?

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::serve::AppState;

pub async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let db = state.db.ping().await;
    let storage = state.storage.ping().await;
    let status = if db.is_ok() && storage.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    // Errors are logged, not returned: they may name hosts or buckets.
    if let Err(e) = &db {
        tracing::warn!("health: database: {e}");
    }
    if let Err(e) = &storage {
        tracing::warn!("health: storage: {e}");
    }
    let word = |ok: bool| if ok { "ok" } else { "unavailable" };
    (
        status,
        Json(json!({
            "status": word(status == StatusCode::OK),
            "database": word(db.is_ok()),
            "storage": word(storage.is_ok()),
            "version": env!("CARGO_PKG_VERSION"),
        })),
    )
}
