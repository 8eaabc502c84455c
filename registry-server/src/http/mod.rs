//! HTTP routes. Each protocol gets its own module as it lands.

pub mod api;
pub mod auth;
pub mod downloads;
mod health;
pub mod library;
pub mod range;
pub mod shub;

use axum::Router;

use crate::serve::AppState;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", axum::routing::get(health::healthz))
        .merge(api::routes())
        .merge(downloads::routes())
        .merge(shub::routes())
        .merge(library::routes())
        .with_state(state)
}
