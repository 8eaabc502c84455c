//! Polling, for repositories that cannot send webhooks: every project with
//! `poll_interval_seconds` gets `git ls-remote` of its branch that often; a
//! head other than its `last_commit`, with no scan pending, becomes a scan.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::{mirror, scan};
use crate::error::Result;
use crate::model::builds::projects::{self, Project};
use crate::serve::AppState;

/// How often the list of polled projects is looked at.
const TICK: Duration = Duration::from_secs(1);

/// Polls until the server stops.
pub async fn run(state: AppState) {
    let mut due: HashMap<i64, Instant> = HashMap::new();
    loop {
        tokio::time::sleep(TICK).await;
        let polled = match projects::polled(&state.db.pool).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the polled build projects");
                continue;
            }
        };
        let now = Instant::now();
        due.retain(|id, _| polled.iter().any(|p| p.id == *id));
        for project in polled {
            let interval =
                Duration::from_secs(project.poll_interval_seconds.unwrap_or(60).max(1) as u64);
            let next = due.entry(project.id).or_insert(now);
            if *next > now {
                continue;
            }
            *next = now + interval;
            // Each poll on its own task: a remote that hangs holds up only
            // its own project.
            let state = state.clone();
            tokio::spawn(async move {
                if let Err(e) = poll_one(&state, &project).await {
                    tracing::warn!(project = %project.name, error = %e, "poll failed");
                }
            });
        }
    }
}

/// Looks at one project's remote head; requests a scan when it moved.
/// Returns whether it did.
pub async fn poll_one(state: &AppState, project: &Project) -> Result<bool> {
    let head = mirror::ls_remote(&project.repository, &project.branch)
        .await
        .map_err(|e| crate::error::Error::Internal(e.to_string()))?;
    let Some(head) = head else {
        tracing::debug!(project = %project.name, branch = %project.branch, "branch not on the remote");
        return Ok(false);
    };
    if project.last_commit.as_deref() == Some(head.as_str())
        || scan::pending_for(&state.db.pool, project.id).await?
    {
        return Ok(false);
    }
    scan::request(
        &state.db.pool,
        &scan::ScanRequest {
            project_id: project.id,
            before: project.last_commit.clone(),
            after: head,
            branch: project.branch.clone(),
            source: "poll".into(),
        },
    )
    .await?;
    Ok(true)
}
