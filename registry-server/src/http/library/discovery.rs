//! Discovery (`config.prod.json`), `/version`, token checks and the OCI
//! redirect probe (library-api.md §1, §8.1).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::envelope::{ApiResult, data, error_response};
use crate::http::auth;
use crate::model::tokens;
use crate::serve::AppState;

/// Every service lives on this server, at the public URL. Each top-level
/// value must be an object: the client decodes the document as a map of
/// objects and gives up otherwise.
pub async fn config_json(State(state): State<AppState>) -> Response {
    let uri = state.config.public_url.as_str().trim_end_matches('/');
    axum::Json(json!({
        "libraryAPI": {"uri": uri},
        "keystoreAPI": {"uri": uri},
        "tokenAPI": {"uri": uri},
    }))
    .into_response()
}

/// `apiVersion` 2.0.0: v2 uploads (≥ 2.0.0-alpha.1) and arch tags
/// (≥ 2.0.0-alpha.2). Strict semver, no `v`.
pub async fn version() -> Response {
    data(json!({"version": env!("CARGO_PKG_VERSION"), "apiVersion": "2.0.0"}))
}

/// `apptainer remote login` checks a token here: 200 means valid; anything
/// else is refused with 404, which the client words "Invalid Credentials".
pub async fn token_status(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(token) = auth::bearer_token(&headers) else {
        return error_response(
            StatusCode::NOT_FOUND,
            "no token: send Authorization: Bearer <token>",
        );
    };
    match tokens::authenticate(&state.db.pool, token).await {
        Ok(Some((user, _))) => data(json!({"status": "valid", "username": user.name})),
        Ok(None) => error_response(StatusCode::NOT_FOUND, "invalid token"),
        Err(e) => super::envelope::ApiError(e).into_response(),
    }
}

/// The signed-in user, as `remote status` shows it: a bare object, no
/// envelope (library-api.md §1).
pub async fn current_user(State(state): State<AppState>, headers: HeaderMap) -> ApiResult {
    let (_, user) = super::signed_in(&state, &headers).await?;
    Ok(axum::Json(json!({
        "username": user.name,
        "email": user.email,
        "realname": user.name,
    }))
    .into_response())
}

/// There is no OCI registry behind this library: a 404 makes Apptainer 1.4
/// use the library protocol itself (library-api.md §8.1).
pub async fn oci_redirect() -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "this library is not backed by an OCI registry",
    )
}
