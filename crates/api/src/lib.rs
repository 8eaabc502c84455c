//! Wire types of the APIs sreg speaks, and what every side of them shares:
//! image references and the rules for names and tags.
//!
//! Features: `client` adds the async client of `/api/v1` ([`client`]);
//! `openapi` derives OpenAPI schemas for the [`v1`] types.

pub mod builds;
#[cfg(feature = "client")]
pub mod client;
pub mod reference;
pub mod v1;

pub use reference::{Reference, ReferenceError};
