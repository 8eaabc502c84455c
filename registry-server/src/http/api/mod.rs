//! `/api/v1`: the registry's own JSON API, for `sreg`, pages and scripts,
//! described by the OpenAPI document at `/api/openapi.json`.
//!
//! Every route is registered through [`utoipa_axum`], so the router and the
//! document are made from the same list and cannot drift apart. Errors are
//! `{"error":{"code":N,"message":"..."}}`; a private collection and what is
//! in it answer 404 to whoever may not see them, as if they did not exist.

mod admin;
mod agent;
mod builds;
pub(crate) mod collections;
mod containers;
mod error;
mod hooks;
mod images;
mod json;
mod me;
mod projects;
mod register;
mod resolve;
mod search;
mod sessions;
mod sizes;
mod stars;
mod tokens;
mod uploads;
mod views;

use axum::Router;
use axum::response::IntoResponse;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::serve::AppState;

pub use error::ApiError;

/// Where the OpenAPI document is served.
pub const OPENAPI_PATH: &str = "/api/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "sreg /api/v1",
        description = "The JSON API of an sreg registry: collections, containers, images, stars, tokens, users and teams, search, sizes, and image push and pull. Send `Authorization: Bearer <token>`; without a token only public data can be read.",
        license(name = "Apache-2.0")
    ),
    components(schemas(sreg_api::v1::ErrorBody, sreg_api::v1::ErrorDetail)),
    modifiers(&BearerAuth),
    tags(
        (name = "account", description = "The caller, their tokens and stars"),
        (name = "catalog", description = "Collections, containers and images"),
        (name = "push and pull", description = "Upload sessions and downloads"),
        (name = "admin", description = "Users and teams (admins only)"),
        (name = "builds", description = "Build projects, build jobs and their logs, and the build-agent protocol (agents need an admin's token)")
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The `/api/v1` routes and their OpenAPI document.
pub fn router_and_doc() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(me::me))
        .routes(routes!(
            collections::list_collections,
            collections::create_collection
        ))
        .routes(routes!(collections::get_collection))
        .routes(routes!(containers::get_container))
        .routes(routes!(images::get_image))
        .routes(routes!(images::download_file))
        .routes(routes!(images::download_log))
        .routes(routes!(stars::list_stars))
        .routes(routes!(stars::star, stars::unstar))
        .routes(routes!(tokens::list_tokens, tokens::create_token))
        .routes(routes!(tokens::revoke_token))
        .routes(routes!(register::register))
        .routes(routes!(admin::list_users, admin::create_user))
        .routes(routes!(admin::list_teams, admin::create_team))
        .routes(routes!(admin::get_team))
        .routes(routes!(admin::add_team_member))
        .routes(routes!(sizes::sizes))
        .routes(routes!(search::search))
        .routes(routes!(uploads::start_upload))
        .routes(routes!(uploads::put_log))
        .routes(routes!(uploads::put_image))
        .routes(routes!(uploads::commit_image))
        .routes(routes!(projects::list_projects, projects::create_project))
        .routes(routes!(
            projects::get_project,
            projects::update_project,
            projects::delete_project
        ))
        .routes(routes!(builds::list_builds))
        .routes(routes!(builds::get_build))
        .routes(routes!(builds::cancel_build))
        .routes(routes!(builds::get_log))
        .routes(routes!(agent::lease))
        .routes(routes!(agent::heartbeat))
        .routes(routes!(agent::append_log))
        .routes(routes!(agent::finish))
        .routes(routes!(hooks::github))
        .routes(routes!(hooks::gitlab))
        .routes(routes!(hooks::gitea))
        .split_for_parts();
    // axum spells a parameter that spans several segments `{*name}`;
    // OpenAPI knows only `{name}`.
    doc.paths.paths = std::mem::take(&mut doc.paths.paths)
        .into_iter()
        .map(|(path, item)| (path.replace("{*", "{"), item))
        .collect();
    let router = router
        .route("/api/v1/{*rest}", axum::routing::any(no_such_route))
        .route("/api/v1", axum::routing::any(no_such_route))
        .method_not_allowed_fallback(method_not_allowed);
    (router, doc)
}

/// The routes to merge into the server's router, with the document.
pub fn routes() -> Router<AppState> {
    let (router, doc) = router_and_doc();
    let doc = std::sync::Arc::new(doc);
    router.route(
        OPENAPI_PATH,
        axum::routing::get(move || {
            let doc = doc.clone();
            async move { axum::Json(doc.as_ref().clone()) }
        }),
    )
}

/// The message of the 404 for a path that is no `/api/v1` route (tests tell
/// it apart from a handler's 404 by it).
pub const NO_SUCH_ROUTE: &str = "no such /api/v1 route";

async fn no_such_route(uri: axum::http::Uri) -> impl IntoResponse {
    ApiError::from(crate::error::Error::NotFound(format!(
        "{NO_SUCH_ROUTE}: {}; the routes are listed in {OPENAPI_PATH}",
        uri.path()
    )))
}

async fn method_not_allowed(method: axum::http::Method) -> impl IntoResponse {
    ApiError::status(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed here; the routes are listed in {OPENAPI_PATH}"),
    )
}
