//! The data model of architecture.md ("Names"), over the database. Every
//! protocol goes through these functions, so that rules (names, access,
//! frozen tags, counts) hold the same everywhere.

pub mod access;
pub mod accounts;
pub mod activity;
pub mod builds;
pub mod catalog;
pub mod tags;
pub mod tokens;

use crate::error::Error;

/// A unique-constraint violation as a conflict the caller can act on; any
/// other database error as it is.
pub(crate) fn conflict_if_taken(e: sqlx::Error, message: impl FnOnce() -> String) -> Error {
    match e {
        sqlx::Error::Database(d) if d.is_unique_violation() => Error::Conflict(message()),
        other => other.into(),
    }
}

/// 0/1 integer columns.
pub(crate) fn flag(b: bool) -> i64 {
    i64::from(b)
}
