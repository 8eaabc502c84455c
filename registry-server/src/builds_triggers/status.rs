//! Commit statuses sent back to the forge as jobs change state: GitHub
//! through octocrab, GitLab and Gitea through their status APIs. Best
//! effort: a few tries, then a warning in the log (never the token).

use std::time::Duration;

use serde_json::json;
use sreg_api::builds::{BuildJob, ForgeKind, JobState};
use tokio::sync::broadcast::error::RecvError;

use crate::model::builds::projects;
use crate::serve::AppState;

/// Tries per status, and the pause before the second (doubled after).
const TRIES: u32 = 3;
const FIRST_PAUSE: Duration = Duration::from_millis(500);
/// One call's limit, so a forge that hangs cannot hold up the others.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// One status as the forge is told it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// In the forge's own words.
    pub state: &'static str,
    /// `sreg/NAME:TAG`.
    pub context: String,
    pub description: String,
    pub target_url: String,
}

/// The forge's word for a job state.
pub fn forge_state(forge: ForgeKind, state: JobState) -> &'static str {
    use JobState::*;
    match (forge, state) {
        (ForgeKind::Gitlab, Queued) => "pending",
        (ForgeKind::Gitlab, Running) => "running",
        (ForgeKind::Gitlab, Succeeded) => "success",
        (ForgeKind::Gitlab, Failed) => "failed",
        (ForgeKind::Gitlab, Cancelled | Superseded) => "canceled",
        (_, Queued | Running) => "pending",
        (_, Succeeded) => "success",
        (_, Failed) => "failure",
        (_, Cancelled | Superseded) => "error",
    }
}

/// The status of a job, for a forge.
pub fn status_of(forge: ForgeKind, job: &BuildJob, public_url: &str) -> Status {
    let image = job.reference.rsplit('/').next().unwrap_or(&job.reference);
    let description = match job.state {
        JobState::Queued => "queued".to_owned(),
        JobState::Running => match &job.agent {
            Some(a) => format!("building on {a}"),
            None => "building".to_owned(),
        },
        JobState::Succeeded => format!("built and pushed {}", job.reference),
        JobState::Failed => match job.error.as_deref().and_then(|e| e.lines().next()) {
            Some(e) => format!("failed: {e}"),
            None => "failed".to_owned(),
        },
        JobState::Cancelled => "cancelled".to_owned(),
        JobState::Superseded => "superseded by a newer commit".to_owned(),
    };
    Status {
        state: forge_state(forge, job.state),
        context: format!("sreg/{image}"),
        // GitHub refuses descriptions over 140 characters.
        description: description.chars().take(140).collect(),
        target_url: format!(
            "{}/api/v1/builds/{}",
            public_url.trim_end_matches('/'),
            job.id
        ),
    }
}

/// Reports every job change until the server stops.
pub async fn run(state: AppState) {
    let mut events = state.build_events.subscribe();
    loop {
        match events.recv().await {
            Ok(job) => report(&state, &job).await,
            Err(RecvError::Lagged(n)) => {
                tracing::warn!(
                    missed = n,
                    "commit statuses fell behind; some were not sent"
                )
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// Sends one job's status to its project's forge, if the project has one.
pub async fn report(state: &AppState, job: &BuildJob) {
    let project = match projects::get(&state.db.pool, job.project_id).await {
        Ok(Some(p)) => p,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(job = job.id, error = %e, "cannot read the build project");
            return;
        }
    };
    let (Some(forge), Some(api), Some(repo)) = (
        project.forge(),
        project.forge_api_url.clone(),
        project.forge_repository.clone(),
    ) else {
        return;
    };
    let token = match projects::forge_token(&state.db.pool, &state.keys, project.id).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            tracing::debug!(project = %project.name, "no forge token: commit status not sent");
            return;
        }
        Err(e) => {
            tracing::warn!(project = %project.name, error = %e, "cannot read the forge token");
            return;
        }
    };
    let status = status_of(forge, job, state.config.public_url.as_str());
    let mut pause = FIRST_PAUSE;
    for attempt in 1..=TRIES {
        let sent = tokio::time::timeout(
            CALL_TIMEOUT,
            send(
                forge,
                &api,
                &repo,
                &token,
                &job.commit,
                &job.branch,
                &status,
            ),
        )
        .await
        .unwrap_or_else(|_| Err("no answer in time".to_owned()));
        match sent {
            Ok(()) => {
                tracing::debug!(project = %project.name, job = job.id, state = status.state, "commit status sent");
                return;
            }
            Err(e) if attempt == TRIES => {
                tracing::warn!(
                    project = %project.name, job = job.id, commit = %job.commit,
                    state = status.state, error = %e, "commit status not sent"
                );
            }
            Err(_) => {
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
        }
    }
}

/// One try. Errors are messages without the token.
async fn send(
    forge: ForgeKind,
    api: &str,
    repo: &str,
    token: &str,
    sha: &str,
    branch: &str,
    status: &Status,
) -> std::result::Result<(), String> {
    let api = api.trim_end_matches('/');
    match forge {
        ForgeKind::Github => {
            let (owner, name) = repo
                .split_once('/')
                .ok_or_else(|| format!("forge repository {repo:?} is not OWNER/NAME"))?;
            let client = octocrab::Octocrab::builder()
                .base_uri(api)
                .map_err(|e| format!("forge API URL {api}: {e}"))?
                .personal_token(token.to_owned())
                .build()
                .map_err(|e| format!("GitHub client: {e}"))?;
            let state = match status.state {
                "success" => octocrab::models::StatusState::Success,
                "failure" => octocrab::models::StatusState::Failure,
                "error" => octocrab::models::StatusState::Error,
                _ => octocrab::models::StatusState::Pending,
            };
            client
                .repos(owner, name)
                .create_status(sha.to_owned(), state)
                .context(status.context.clone())
                .description(status.description.clone())
                .target(status.target_url.clone())
                .send()
                .await
                .map(|_| ())
                .map_err(|e| format!("GitHub: {e}"))
        }
        ForgeKind::Gitlab => {
            // The project is named by its numeric id or its URL-encoded path.
            let id: String = url::form_urlencoded::byte_serialize(repo.as_bytes()).collect();
            let url = format!("{api}/projects/{id}/statuses/{sha}");
            let body = json!({
                "state": status.state,
                "ref": branch,
                "name": status.context,
                "target_url": status.target_url,
                "description": status.description,
            });
            post(&url, ("PRIVATE-TOKEN", token.to_owned()), &body).await
        }
        ForgeKind::Gitea => {
            let url = format!("{api}/repos/{repo}/statuses/{sha}");
            let body = json!({
                "state": status.state,
                "context": status.context,
                "target_url": status.target_url,
                "description": status.description,
            });
            post(&url, ("Authorization", format!("token {token}")), &body).await
        }
    }
}

async fn post(
    url: &str,
    auth: (&str, String),
    body: &serde_json::Value,
) -> std::result::Result<(), String> {
    let client = reqwest::Client::builder()
        .user_agent(concat!("sreg-server/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| e.to_string())?;
    let answer = client
        .post(url)
        .header(auth.0, auth.1)
        .json(body)
        .send()
        .await
        // reqwest's errors name the URL, which holds no secret here.
        .map_err(|e| e.without_url().to_string())?;
    let code = answer.status();
    if code.is_success() {
        Ok(())
    } else {
        let text = answer.text().await.unwrap_or_default();
        Err(format!(
            "{url} answered {code}: {}",
            text.chars().take(200).collect::<String>()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(state: JobState) -> BuildJob {
        BuildJob {
            id: 42,
            project_id: 1,
            project: "p".into(),
            repository: "https://github.com/o/r".into(),
            branch: "main".into(),
            commit: "abc".into(),
            recipe_path: "tools/Singularity.v1".into(),
            reference: "lab/tools/tools:v1".into(),
            state,
            attempts: 0,
            max_attempts: 3,
            backend: None,
            agent_labels: vec![],
            agent: Some("node1".into()),
            queued_at: String::new(),
            started_at: None,
            finished_at: None,
            error: Some("exit 1\nmore".into()),
            image_sha256: None,
            cancel_requested: false,
            log_size: 0,
        }
    }

    #[test]
    fn states_in_each_forges_words() {
        use JobState::*;
        let gh: Vec<_> = [Queued, Running, Succeeded, Failed, Cancelled, Superseded]
            .map(|s| forge_state(ForgeKind::Github, s))
            .into();
        assert_eq!(
            gh,
            ["pending", "pending", "success", "failure", "error", "error"]
        );
        let gl: Vec<_> = [Queued, Running, Succeeded, Failed, Cancelled, Superseded]
            .map(|s| forge_state(ForgeKind::Gitlab, s))
            .into();
        assert_eq!(
            gl,
            [
                "pending", "running", "success", "failed", "canceled", "canceled"
            ]
        );
        assert_eq!(forge_state(ForgeKind::Gitea, Failed), "failure");
    }

    #[test]
    fn status_names_the_image_and_links_the_build() {
        let s = status_of(
            ForgeKind::Github,
            &job(JobState::Failed),
            "http://reg.example/",
        );
        assert_eq!(s.context, "sreg/tools:v1");
        assert_eq!(s.target_url, "http://reg.example/api/v1/builds/42");
        assert_eq!(s.description, "failed: exit 1");
        let s = status_of(
            ForgeKind::Github,
            &job(JobState::Running),
            "http://reg.example",
        );
        assert_eq!(s.description, "building on node1");
        let mut long = job(JobState::Failed);
        long.error = Some("x".repeat(500));
        assert_eq!(
            status_of(ForgeKind::Github, &long, "http://r")
                .description
                .len(),
            140
        );
    }
}
