//! `POST /api/v1/register`: self-service accounts, only where the registry's
//! `registration` setting is `open`. With `closed` (the default) accounts
//! are created by admins (`sreg-server admin user add`, `POST /api/v1/users`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use sreg_api::v1::{CreatedToken, ErrorBody, SignUp, SignedUp};

use super::error::{ApiError, ApiResult};
use super::json::JsonBody;
use super::{tokens, views};
use crate::config::Registration;
use crate::model::accounts;
use crate::model::tokens as token_model;
use crate::serve::AppState;

/// Create an account and its first token (open registration only).
#[utoipa::path(
    post,
    path = "/api/v1/register",
    tag = "account",
    request_body = SignUp,
    responses(
        (status = 201, description = "Account created; the token is shown this once", body = SignedUp),
        (status = 400, description = "Bad name", body = ErrorBody),
        (status = 403, description = "Registration is closed", body = ErrorBody),
        (status = 409, description = "The name is taken", body = ErrorBody)
    )
)]
pub async fn register(
    State(state): State<AppState>,
    JsonBody(new): JsonBody<SignUp>,
) -> ApiResult<(StatusCode, Json<SignedUp>)> {
    let settings = &state.config.registry;
    if settings.registration != Registration::Open {
        let contact = if settings.help_contact.is_empty() {
            "an administrator".to_string()
        } else {
            settings.help_contact.clone()
        };
        return Err(ApiError::status(
            StatusCode::FORBIDDEN,
            format!("registration is closed on this registry: ask {contact} for an account"),
        ));
    }
    let user = accounts::create_user(&state.db.pool, &new.name, &new.email, false).await?;
    let (token, row) =
        token_model::create(&state.db.pool, &state.keys, user.id, "first", None).await?;
    Ok((
        StatusCode::CREATED,
        Json(SignedUp {
            user: views::user(&user),
            token: CreatedToken {
                token,
                info: tokens::info(&row),
            },
        }),
    ))
}
