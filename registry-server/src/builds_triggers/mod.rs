//! What starts automatic builds and what the forge is told about them:
//! webhook checks ([`webhook`]), the git mirror of each project
//! ([`mirror`]), the scan worker that turns a push into queued jobs
//! ([`scan`]), polling for repositories without webhooks ([`poll`]) and
//! commit statuses sent back to the forge ([`status`]).

pub mod mirror;
pub mod poll;
pub mod scan;
pub mod status;
pub mod webhook;

use crate::serve::AppState;

/// Starts the scan worker, the poller and the status reporter.
pub fn start(state: &AppState) {
    tokio::spawn(scan::run(state.clone()));
    tokio::spawn(poll::run(state.clone()));
    tokio::spawn(status::run(state.clone()));
}
