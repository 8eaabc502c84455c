//! Sign-in, sign-out and registration pages.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::session::{self, Visitor};
use super::{PageError, csrf, password, ratelimit, render, render_status};
use crate::config::Registration;
use crate::error::Error;
use crate::model::accounts;
use crate::serve::AppState;

/// Messages say nothing about whether an account exists.
const WRONG: &str = "Wrong user name or password.";

/// Where to go after signing in: only a path on this site, never another
/// site (`//host` or `/\host` would leave it).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.starts_with("/\\")
                && !n.chars().any(|c| c.is_control()) =>
        {
            n.to_string()
        }
        _ => "/".to_string(),
    }
}

fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(LOCATION, to.to_string())]).into_response()
}

#[derive(Debug, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

#[derive(Debug, Serialize)]
struct LoginPage {
    error: Option<String>,
    username: String,
    next: String,
}

/// `GET /login`
pub async fn login_form(
    State(state): State<AppState>,
    v: Visitor,
    Query(q): Query<NextQuery>,
) -> Result<Response, PageError> {
    let next = safe_next(q.next.as_deref());
    if v.user().is_some() {
        return Ok(see_other(&next));
    }
    let page = LoginPage {
        error: None,
        username: String::new(),
        next,
    };
    render(&state, &v, "login", "Sign in", page)
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    // Missing fields are empty, so that a form without a token gets the
    // token's 403 rather than a parse error.
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

/// `POST /login`
pub async fn login(
    State(state): State<AppState>,
    v: Visitor,
    Form(form): Form<LoginForm>,
) -> Result<Response, PageError> {
    if !csrf::verify(&state.keys, &v, &form.csrf) {
        return Err(PageError::bad_form_token());
    }
    let db = &state.db.pool;
    let client = v.client_key();
    let name = form.username.trim().to_lowercase();
    if let Some(secs) = ratelimit::blocked_for(db, &name, &client).await? {
        let minutes = secs.div_ceil(60);
        let mut e = PageError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "Too many failed sign-ins for this account or from your address. \
                 Try again in {minutes} minute{}.",
                if minutes == 1 { "" } else { "s" }
            ),
        );
        e.retry_after_secs = Some(secs);
        return Err(e);
    }
    let user = if name.is_empty() || form.password.len() > password::MAX_LEN {
        None
    } else {
        accounts::user_by_name(db, &name)
            .await?
            .filter(|u| u.active != 0)
    };
    let stored = match &user {
        Some(u) => password::stored(db, u.id).await?,
        None => None,
    };
    let ok = password::verify_blocking(form.password.clone(), stored).await;
    let Some(user) = user.filter(|_| ok) else {
        ratelimit::record_failure(db, &name, &client).await?;
        tracing::info!(account = %name, client = %client, "failed sign-in");
        let page = LoginPage {
            error: Some(WRONG.into()),
            username: form.username,
            next: safe_next(Some(&form.next)),
        };
        return render_status(
            &state,
            &v,
            StatusCode::UNAUTHORIZED,
            "login",
            "Sign in",
            page,
        );
    };
    ratelimit::clear_account(db, &name).await?;
    // A new session id at sign-in, so that an id planted before cannot be
    // used after.
    if let Some(old) = &v.session {
        session::end(db, old).await?;
    }
    let id = session::create(db, user.id).await?;
    tracing::info!(user = %user.name, client = %client, "signed in");
    let mut response = see_other(&safe_next(Some(&form.next)));
    session::set_session_cookie(response.headers_mut(), &state, id);
    Ok(response)
}

#[derive(Debug, Deserialize)]
pub struct TokenOnly {
    #[serde(default)]
    csrf: String,
}

/// `POST /logout`: ends the session on the server, not only in the browser.
pub async fn logout(
    State(state): State<AppState>,
    v: Visitor,
    Form(form): Form<TokenOnly>,
) -> Result<Response, PageError> {
    if !csrf::verify(&state.keys, &v, &form.csrf) {
        return Err(PageError::bad_form_token());
    }
    if let Some(id) = &v.session {
        session::end(&state.db.pool, id).await?;
    }
    let mut response = see_other("/");
    session::clear_session_cookie(response.headers_mut(), &state);
    Ok(response)
}

#[derive(Debug, Serialize)]
struct RegisterPage {
    open: bool,
    contact: String,
    error: Option<String>,
    username: String,
    email: String,
    min_len: usize,
}

fn register_page(state: &AppState) -> RegisterPage {
    let settings = &state.config.registry;
    RegisterPage {
        open: settings.registration == Registration::Open,
        contact: if settings.help_contact.is_empty() {
            "an administrator".into()
        } else {
            settings.help_contact.clone()
        },
        error: None,
        username: String::new(),
        email: String::new(),
        min_len: password::MIN_LEN,
    }
}

/// `GET /register`
pub async fn register_form(
    State(state): State<AppState>,
    v: Visitor,
) -> Result<Response, PageError> {
    let page = register_page(&state);
    let status = if page.open {
        StatusCode::OK
    } else {
        StatusCode::FORBIDDEN
    };
    render_status(&state, &v, status, "register", "Register", page)
}

#[derive(Debug, Deserialize)]
pub struct RegisterForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password2: String,
}

/// `POST /register`: creates the account (open registration only) and
/// signs it in.
pub async fn register(
    State(state): State<AppState>,
    v: Visitor,
    Form(form): Form<RegisterForm>,
) -> Result<Response, PageError> {
    if !csrf::verify(&state.keys, &v, &form.csrf) {
        return Err(PageError::bad_form_token());
    }
    let mut page = register_page(&state);
    if !page.open {
        return render_status(
            &state,
            &v,
            StatusCode::FORBIDDEN,
            "register",
            "Register",
            page,
        );
    }
    let db = &state.db.pool;
    let name = form.username.trim().to_string();
    let problem = if form.password != form.password2 {
        Some("The two passwords differ.".to_string())
    } else if let Err(e) = password::check_strength(&form.password) {
        Some(format!("{}.", capitalised(&e.to_string())))
    } else if let Err(e) = accounts::validate_name("user", &name) {
        Some(format!("{}.", capitalised(&e.to_string())))
    } else {
        None
    };
    let created = match problem {
        Some(p) => Err(p),
        None => match accounts::create_user(db, &name, form.email.trim(), false).await {
            Ok(u) => Ok(u),
            Err(Error::Conflict(_)) => Err("That user name is taken; choose another.".into()),
            Err(e) => return Err(e.into()),
        },
    };
    let user = match created {
        Ok(u) => u,
        Err(message) => {
            page.error = Some(message);
            page.username = form.username;
            page.email = form.email;
            return render_status(
                &state,
                &v,
                StatusCode::BAD_REQUEST,
                "register",
                "Register",
                page,
            );
        }
    };
    password::set(db, user.id, &form.password).await?;
    let id = session::create(db, user.id).await?;
    tracing::info!(user = %user.name, "registered");
    let mut response = see_other("/");
    session::set_session_cookie(response.headers_mut(), &state, id);
    Ok(response)
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next(Some("/c/lab/tools")), "/c/lab/tools");
        assert_eq!(safe_next(Some("//evil.example")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        assert_eq!(safe_next(Some("/x\r\nSet-Cookie: a=b")), "/");
        assert_eq!(safe_next(None), "/");
    }
}
