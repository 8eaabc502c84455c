//! Automatic builds: build projects ([`projects`]), the persistent build
//! queue with its leases ([`jobs`]), build logs ([`log`]) and the task that
//! takes back expired leases ([`reaper`]). Everything lives in the
//! database, so a registry restart loses nothing.

pub mod jobs;
pub mod log;
pub mod projects;
pub mod reaper;

use sreg_api::builds::BuildJob;

use crate::error::Result;
use crate::serve::AppState;

/// Unix milliseconds as RFC 3339 (UTC), the API's time format.
pub(crate) fn time(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// A JSON list of strings stored as text (an unreadable one reads as empty).
pub(crate) fn string_list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

pub(crate) fn list_text(list: &[String]) -> String {
    serde_json::Value::from(list.to_vec()).to_string()
}

/// Tells the subscribers of `build_events` (commit status reporting) about
/// job changes. Nobody listening is fine.
pub fn notify(state: &AppState, jobs: &[BuildJob]) {
    for job in jobs {
        let _ = state.build_events.send(job.clone());
    }
}

/// Queues builds of `recipes` at `commit` for a project, with the
/// registry's retry limit, and tells the subscribers of `build_events`
/// about every job queued or superseded. Webhooks, polling and
/// `sreg-server admin build queue` go through here.
pub async fn queue(
    state: &AppState,
    project: &projects::Project,
    commit: &str,
    branch: &str,
    recipes: &[jobs::RecipeBuild],
) -> Result<jobs::Enqueued> {
    let max_attempts = i64::from(state.config.builds.max_attempts);
    let done = jobs::enqueue(
        &state.db.pool,
        project,
        commit,
        branch,
        recipes,
        max_attempts,
    )
    .await?;
    notify(state, &done.superseded);
    notify(state, &done.queued);
    Ok(done)
}

#[cfg(test)]
mod tests;
