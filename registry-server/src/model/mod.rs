//! The data model of architecture.md ("Names"), over the database. Every
//! protocol goes through these functions, so that rules (names, access,
//! frozen tags, counts) hold the same everywhere.

pub mod access;
pub mod accounts;
pub mod activity;
pub mod catalog;
pub mod tags;
pub mod tokens;

/// 0/1 integer columns.
pub(crate) fn flag(b: bool) -> i64 {
    i64::from(b)
}
