//! The registry's errors, independent of any protocol. Each protocol's
//! handlers render them in that protocol's own envelope.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("authentication required: {0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("storage: {0}")]
    Storage(#[from] object_store::Error),
    #[error("{0}")]
    Internal(String),
}

impl Error {
    pub fn status(&self) -> axum::http::StatusCode {
        use axum::http::StatusCode as S;
        match self {
            Error::NotFound(_) => S::NOT_FOUND,
            Error::BadRequest(_) => S::BAD_REQUEST,
            Error::Unauthorized(_) => S::UNAUTHORIZED,
            Error::Forbidden(_) => S::FORBIDDEN,
            Error::Conflict(_) => S::CONFLICT,
            Error::TooLarge(_) => S::PAYLOAD_TOO_LARGE,
            Error::Db(_) | Error::Storage(_) | Error::Internal(_) => S::INTERNAL_SERVER_ERROR,
        }
    }

    /// What a client may be shown: internal details stay in the log.
    pub fn public_message(&self) -> String {
        match self {
            Error::Db(_) | Error::Storage(_) | Error::Internal(_) => {
                tracing::error!("internal error: {self}");
                "internal server error".into()
            }
            other => other.to_string(),
        }
    }

    pub fn not_found(what: impl std::fmt::Display) -> Self {
        Error::NotFound(format!("{what} not found"))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
