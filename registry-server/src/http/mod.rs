//! HTTP routes. Each protocol gets its own module as it lands.

pub mod auth;
mod health;

use axum::Router;

use crate::serve::AppState;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", axum::routing::get(health::healthz))
        .with_state(state)
}
