//! The registry's web pages: server-rendered HTML (handlebars templates,
//! escaping on), a little plain JavaScript, all assets built into the
//! binary. Pages see exactly what the caller may see: they go through
//! `model::access` like every protocol.
//!
//! Routes (none collides with the API, library, shub or ORAS routes):
//! `/`, `/login`, `/logout`, `/register`, `/collections`,
//! `/c/{entity}/{collection}`, `/static/{file}`; anything unknown gets an
//! HTML 404 when a browser asks for HTML.

mod account;
mod assets;
mod catalog;
pub mod csrf;
mod headers;
mod home;
pub mod password;
pub mod ratelimit;
pub mod session;
pub mod templates;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::header::{ACCEPT, RETRY_AFTER, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{Next, from_fn_with_state, map_response};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;

use crate::config::Registration;
use crate::serve::AppState;
use session::Visitor;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(home::home))
        .route("/login", get(account::login_form).post(account::login))
        .route("/logout", post(account::logout))
        .route(
            "/register",
            get(account::register_form).post(account::register),
        )
        .route("/collections", get(catalog::collections))
        .route("/c/{entity}/{collection}", get(catalog::collection))
        .route("/static/{file}", get(assets::serve))
        .fallback(fallback)
        .layer(from_fn_with_state(state.clone(), render_errors))
        .layer(map_response(headers::add))
        .with_state(state)
}

/// What every page's frame shows.
#[derive(Debug, Serialize)]
struct Layout {
    title: String,
    registry_name: String,
    help_contact: String,
    /// A link for the help contact, when it is a URL or an e-mail address.
    help_href: Option<String>,
    registration_open: bool,
    user: Option<LayoutUser>,
    csrf: String,
}

#[derive(Debug, Serialize)]
struct LayoutUser {
    name: String,
    admin: bool,
}

fn help_href(contact: &str) -> Option<String> {
    let c = contact.trim();
    if c.starts_with("https://") || c.starts_with("http://") {
        Some(c.to_string())
    } else if c.contains('@') && !c.contains(char::is_whitespace) && !c.contains(':') {
        Some(format!("mailto:{c}"))
    } else {
        None
    }
}

fn layout(state: &AppState, v: &Visitor, title: &str) -> Layout {
    let settings = &state.config.registry;
    Layout {
        title: title.to_string(),
        registry_name: settings.name.clone(),
        help_contact: settings.help_contact.clone(),
        help_href: help_href(&settings.help_contact),
        registration_open: settings.registration == Registration::Open,
        user: v.user().map(|u| LayoutUser {
            name: u.name.clone(),
            admin: u.is_admin(),
        }),
        csrf: csrf::token(&state.keys, v),
    }
}

/// Renders a page in the layout, with the given status.
fn render_status(
    state: &AppState,
    v: &Visitor,
    status: StatusCode,
    template: &str,
    title: &str,
    page: impl Serialize,
) -> Result<Response, PageError> {
    let data = serde_json::json!({ "layout": layout(state, v, title), "page": page });
    let html = templates::render(template, &data).map_err(|e| {
        tracing::error!("rendering page {template}: {e}");
        PageError::internal()
    })?;
    let mut response = (status, Html(html)).into_response();
    session::set_csrf_cookie_if_new(response.headers_mut(), state, v);
    Ok(response)
}

fn render(
    state: &AppState,
    v: &Visitor,
    template: &str,
    title: &str,
    page: impl Serialize,
) -> Result<Response, PageError> {
    render_status(state, v, StatusCode::OK, template, title, page)
}

/// A page that could not be shown. It leaves the handler as a bare status
/// with this in its extensions; `render_errors` then draws the HTML page,
/// with the registry's settings and the visitor's sign-in state.
#[derive(Debug, Clone)]
pub struct PageError {
    pub status: StatusCode,
    pub message: String,
    pub retry_after_secs: Option<u64>,
}

impl PageError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "There is no such page, or it is not visible to you.",
        )
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong on the server; the administrators can find the details in its log.",
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    /// The form was not sent from one of this registry's own pages (or it
    /// was, but before the visitor signed in or out).
    pub fn bad_form_token() -> Self {
        Self::forbidden(
            "This form has expired or did not come from this site. Reload the page and try again.",
        )
    }
}

impl From<crate::error::Error> for PageError {
    fn from(e: crate::error::Error) -> Self {
        use crate::error::Error as E;
        match e {
            E::NotFound(_) => Self::not_found(),
            other => {
                let status = other.status();
                Self::new(status, other.public_message())
            }
        }
    }
}

impl From<sqlx::Error> for PageError {
    fn from(e: sqlx::Error) -> Self {
        crate::error::Error::from(e).into()
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let mut response = self.status.into_response();
        if let Some(secs) = self.retry_after_secs
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(RETRY_AFTER, v);
        }
        response.extensions_mut().insert(self);
        response
    }
}

fn title_of(status: StatusCode) -> String {
    match status {
        StatusCode::NOT_FOUND => "Not found".into(),
        StatusCode::FORBIDDEN => "Not allowed".into(),
        StatusCode::TOO_MANY_REQUESTS => "Too many attempts".into(),
        s => s
            .canonical_reason()
            .map(str::to_string)
            .unwrap_or_else(|| s.to_string()),
    }
}

/// Draws the HTML page of a `PageError`.
async fn render_errors(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let headers = request.headers().clone();
    let connect = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .cloned();
    let mut response = next.run(request).await;
    let Some(error) = response.extensions_mut().remove::<PageError>() else {
        return response;
    };
    let (mut parts, ()) = Request::new(()).into_parts();
    parts.headers = headers;
    if let Some(c) = connect {
        parts.extensions.insert(c);
    }
    let visitor = match Visitor::from_request_parts(&mut parts, &state).await {
        Ok(v) => v,
        Err(_) => Visitor::nobody(),
    };
    let title = title_of(error.status);
    let page = serde_json::json!({ "title": title, "message": error.message });
    match render_status(&state, &visitor, error.status, "error", &title, page) {
        Ok(mut page) => {
            // Only what the handler meant to say besides the status.
            for name in [RETRY_AFTER, SET_COOKIE] {
                for value in response.headers().get_all(&name) {
                    page.headers_mut().append(name.clone(), value.clone());
                }
            }
            page
        }
        Err(_) => (error.status, error.message).into_response(),
    }
}

/// Unknown paths: an HTML page for browsers, a short text for programs
/// (library and shub clients probe paths and read plain answers).
async fn fallback(headers: HeaderMap) -> Response {
    let wants_html = headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    if wants_html {
        PageError::not_found().into_response()
    } else {
        (StatusCode::NOT_FOUND, "not found\n").into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_links_only_for_urls_and_addresses() {
        assert_eq!(
            help_href("hpc@example.org").as_deref(),
            Some("mailto:hpc@example.org")
        );
        assert_eq!(
            help_href("https://help.example.org/").as_deref(),
            Some("https://help.example.org/")
        );
        assert_eq!(help_href("javascript:alert(1)//@x"), None);
        assert_eq!(help_href("Room 101"), None);
    }
}
