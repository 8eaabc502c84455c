//! What starts automatic builds and what the forge is told about them:
//! webhook checks ([`webhook`]), the git mirror of each project
//! ([`mirror`]), the scan worker that turns a push into queued jobs
//! ([`scan`]), polling for repositories without webhooks ([`poll`]) and
//! commit statuses sent back to the forge ([`status`]).

pub mod mirror;
pub mod webhook;
