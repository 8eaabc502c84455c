//! `POST /api/v1/hooks/{github,gitlab,gitea}`: push webhooks. No bearer
//! token: the signature (GitHub, Gitea) or token (GitLab) made with a
//! project's webhook secret is the authentication. A verified push to a
//! project's branch is recorded with its delivery id and a scan request in
//! one transaction and answered 202 at once; the scan worker does the rest.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use sreg_api::builds::ForgeKind;
use sreg_api::v1::ErrorBody;
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult};
use crate::builds_triggers::scan::{self, ScanRequest};
use crate::builds_triggers::webhook::{self, Event};
use crate::model::builds::projects::{self, Project};
use crate::serve::AppState;

/// GitHub does not deliver larger payloads; nothing larger is read.
pub const HOOK_LIMIT: usize = 25 << 20;

/// The answer to a webhook.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HookAnswer {
    /// What was done, for the forge's delivery log.
    pub message: String,
    /// Projects a scan was queued for.
    #[serde(default)]
    pub projects: Vec<String>,
}

type Answer = ApiResult<(StatusCode, Json<HookAnswer>)>;

fn answer(status: StatusCode, message: impl Into<String>, projects: Vec<String>) -> Answer {
    Ok((
        status,
        Json(HookAnswer {
            message: message.into(),
            projects,
        }),
    ))
}

/// A GitHub push or ping webhook.
#[utoipa::path(
    post,
    path = "/api/v1/hooks/github",
    tag = "builds",
    params(
        ("X-GitHub-Event" = String, Header, description = "`push` or `ping`"),
        ("X-GitHub-Delivery" = String, Header, description = "Delivery id (the same on redelivery)"),
        ("X-Hub-Signature-256" = String, Header, description = "`sha256=` and the hex HMAC-SHA256 of the body under the project's webhook secret")
    ),
    request_body(content = String, content_type = "application/json", description = "The event payload (JSON, or `payload=` form-encoded)"),
    responses(
        (status = 200, description = "A ping, or a delivery received before", body = HookAnswer),
        (status = 202, description = "Accepted: a scan is queued, or the event is ignored (the message says which)", body = HookAnswer),
        (status = 400, description = "Not a webhook this route reads", body = ErrorBody),
        (status = 401, description = "No signature, or none matching a project of the repository", body = ErrorBody),
        (status = 413, description = "Payload over 25 MB", body = ErrorBody)
    )
)]
pub async fn github(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Answer {
    handle(&state, ForgeKind::Github, &headers, body).await
}

/// A GitLab push webhook.
#[utoipa::path(
    post,
    path = "/api/v1/hooks/gitlab",
    tag = "builds",
    params(
        ("X-Gitlab-Event" = String, Header, description = "`Push Hook`"),
        ("X-Gitlab-Token" = String, Header, description = "The project's webhook secret"),
        ("Idempotency-Key" = Option<String>, Header, description = "Delivery id (else `X-Gitlab-Event-UUID`)")
    ),
    request_body(content = String, content_type = "application/json", description = "The event payload"),
    responses(
        (status = 200, description = "A delivery received before", body = HookAnswer),
        (status = 202, description = "Accepted: a scan is queued, or the event is ignored (the message says which)", body = HookAnswer),
        (status = 400, description = "Not a webhook this route reads", body = ErrorBody),
        (status = 401, description = "No token, or none matching a project of the repository", body = ErrorBody),
        (status = 413, description = "Payload over 25 MB", body = ErrorBody)
    )
)]
pub async fn gitlab(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Answer {
    handle(&state, ForgeKind::Gitlab, &headers, body).await
}

/// A Gitea or Forgejo push webhook.
#[utoipa::path(
    post,
    path = "/api/v1/hooks/gitea",
    tag = "builds",
    params(
        ("X-Gitea-Event" = String, Header, description = "`push`"),
        ("X-Gitea-Delivery" = String, Header, description = "Delivery id"),
        ("X-Gitea-Signature" = String, Header, description = "Hex HMAC-SHA256 of the body under the project's webhook secret")
    ),
    request_body(content = String, content_type = "application/json", description = "The event payload"),
    responses(
        (status = 200, description = "A delivery received before", body = HookAnswer),
        (status = 202, description = "Accepted: a scan is queued, or the event is ignored (the message says which)", body = HookAnswer),
        (status = 400, description = "Not a webhook this route reads", body = ErrorBody),
        (status = 401, description = "No signature, or none matching a project of the repository", body = ErrorBody),
        (status = 413, description = "Payload over 25 MB", body = ErrorBody)
    )
)]
pub async fn gitea(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Answer {
    handle(&state, ForgeKind::Gitea, &headers, body).await
}

fn forge_name(forge: ForgeKind) -> &'static str {
    match forge {
        ForgeKind::Github => "github",
        ForgeKind::Gitlab => "gitlab",
        ForgeKind::Gitea => "gitea",
    }
}

fn is_commit_id(s: &str) -> bool {
    matches!(s.len(), 40 | 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn names(projects: &[Project]) -> Vec<String> {
    projects.iter().map(|p| p.name.clone()).collect()
}

async fn handle(state: &AppState, forge: ForgeKind, headers: &HeaderMap, body: Body) -> Answer {
    let forge_name = forge_name(forge);
    let body = axum::body::to_bytes(body, HOOK_LIMIT).await.map_err(|_| {
        ApiError::status(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("webhook payloads are limited to {} MB", HOOK_LIMIT >> 20),
        )
    })?;
    let event = webhook::event(forge, headers).ok_or_else(|| {
        ApiError::bad_request(format!(
            "no event header: this route takes {forge_name} webhooks"
        ))
    })?;
    if !webhook::has_signature(forge, headers) {
        return Err(ApiError::status(
            StatusCode::UNAUTHORIZED,
            "the webhook is not signed: set the build project's webhook secret in the forge's webhook settings",
        ));
    }
    let json =
        webhook::payload_json(headers, &body).map_err(|e| ApiError::bad_request(e.to_string()))?;

    // The signature is checked against the secret of every project of the
    // repository; only those it matches go on.
    let urls = webhook::repository_urls(forge, &json);
    let mut verified = Vec::new();
    for project in projects::list(&state.db.pool).await? {
        if !webhook::repository_matches(&project.repository, &urls) {
            continue;
        }
        let secret = projects::webhook_secret(&state.db.pool, &state.keys, project.id).await?;
        if secret.is_some_and(|s| webhook::verify(forge, headers, &body, &s)) {
            verified.push(project);
        }
    }
    if verified.is_empty() {
        // The same answer whether or not the repository has a project, so
        // that unsigned callers learn nothing of the configuration.
        return Err(ApiError::status(
            StatusCode::UNAUTHORIZED,
            "the signature matches no build project of this repository",
        ));
    }

    match event {
        Event::Ping => {
            return answer(
                StatusCode::OK,
                "pong: the signature is right",
                names(&verified),
            );
        }
        Event::Other(name) => {
            return answer(
                StatusCode::ACCEPTED,
                format!("ignored: {name} events start no builds"),
                vec![],
            );
        }
        Event::Push => {}
    }
    let push =
        webhook::parse_push(forge, &json).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let Some(branch) = push.branch() else {
        return answer(
            StatusCode::ACCEPTED,
            format!("ignored: {} is not a branch", push.git_ref),
            vec![],
        );
    };
    let Some(after) = push.after.clone() else {
        return answer(
            StatusCode::ACCEPTED,
            format!("ignored: branch {branch} was deleted"),
            vec![],
        );
    };
    if !is_commit_id(&after) {
        return Err(ApiError::bad_request(format!(
            "the pushed commit {after:?} is not a commit id"
        )));
    }
    let targets: Vec<Project> = verified
        .into_iter()
        .filter(|p| p.branch == branch)
        .collect();
    if targets.is_empty() {
        return answer(
            StatusCode::ACCEPTED,
            format!("ignored: no build project of this repository builds branch {branch}"),
            vec![],
        );
    }
    let scans: Vec<ScanRequest> = targets
        .iter()
        .map(|p| ScanRequest {
            project_id: p.id,
            before: push.before.clone().filter(|b| is_commit_id(b)),
            after: after.clone(),
            branch: branch.to_owned(),
            source: forge_name.to_owned(),
        })
        .collect();
    let delivery = webhook::delivery_id(forge, headers, &body);
    if !scan::record_delivery(&state.db.pool, forge_name, &delivery, &scans).await? {
        return answer(
            StatusCode::OK,
            format!("already received delivery {delivery}"),
            vec![],
        );
    }
    answer(
        StatusCode::ACCEPTED,
        format!("scanning commit {after} for changed recipes"),
        names(&targets),
    )
}
