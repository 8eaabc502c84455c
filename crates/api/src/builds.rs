//! Wire types of automatic builds under `/api/v1`: build projects, build
//! jobs, the build-agent protocol (`/api/v1/agent/...`) and webhooks.
//!
//! The flow: a push to a project's repository reaches the registry (a
//! webhook at `/api/v1/hooks/{github,gitlab,gitea}`, or polling); the
//! registry finds the recipes that changed and queues one job per recipe;
//! an agent leases a job, builds it, streams its log, pushes the image and
//! finishes the job; the registry reports the commit status to the forge.
//!
//! Agent protocol (every call with `Authorization: Bearer TOKEN` of an
//! admin, and the lease id the lease gave):
//!
//! | call | body | answer |
//! |---|---|---|
//! | `POST /api/v1/agent/lease` | [`LeaseRequest`] | 200 [`Lease`], or 204 when no job fits |
//! | `POST /api/v1/agent/jobs/{id}/heartbeat` | [`LeaseRef`] | 200 [`HeartbeatAnswer`]; 409 when the lease is lost (expired and re-leased, or finished) |
//! | `POST /api/v1/agent/jobs/{id}/log` | raw log bytes, header `X-Sreg-Lease: LEASE` and `X-Sreg-Log-Offset: N` (where these bytes start) | 200 [`LogAppended`]; a chunk sent twice (same offset) is stored once |
//! | `POST /api/v1/agent/jobs/{id}/finish` | [`FinishRequest`] | 200 [`BuildJob`] |
//!
//! Reading builds: `GET /api/v1/builds[?project=ID&state=S&limit=N]`,
//! `GET /api/v1/builds/{id}`, `POST /api/v1/builds/{id}/cancel`, and
//! `GET /api/v1/builds/{id}/log?offset=N`: the log from byte N, with headers
//! `X-Sreg-Build-State` and `X-Sreg-Log-Complete: true|false` (poll with the
//! new offset until complete, to follow a running build).

use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// A forge the registry reports commit statuses to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ForgeKind {
    Github,
    Gitlab,
    Gitea,
}

/// A build project: a repository whose recipes are built into a collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct BuildProject {
    pub id: i64,
    /// Unique, `[a-z0-9._-]`.
    pub name: String,
    /// The clone URL (`https://`, `git://`, `ssh://`, `file://`).
    pub repository: String,
    pub branch: String,
    /// Which files are recipes (empty: the defaults of `sreg recipes`).
    #[serde(default)]
    pub recipe_globs: Vec<String>,
    /// Where images go: `ENTITY/COLLECTION`; a recipe `x/Singularity.v1`
    /// becomes `ENTITY/COLLECTION/x:v1`.
    pub collection: String,
    /// The backend agents build with (`native`, `apptainer`, `docker`,
    /// `slurm`); none: the agent's own choice.
    pub backend: Option<String>,
    /// An agent takes a job only if it has every one of these labels.
    #[serde(default)]
    pub agent_labels: Vec<String>,
    pub forge: Option<ForgeKind>,
    /// The forge's API base (`https://api.github.com`,
    /// `https://gitlab.example.org/api/v4`, `https://gitea.example.org/api/v1`).
    pub forge_api_url: Option<String>,
    /// The repository on the forge: `owner/name` (GitHub, Gitea) or the
    /// project path or id (GitLab).
    pub forge_repository: Option<String>,
    pub has_forge_token: bool,
    pub has_webhook_secret: bool,
    /// Poll with `git ls-remote` this often (seconds); none: webhooks only.
    pub poll_interval_seconds: Option<i64>,
    /// The last commit whose changes were queued.
    pub last_commit: Option<String>,
    pub owner: String,
    pub created_at: String,
}

/// `POST /api/v1/projects`; also the body of `PATCH /api/v1/projects/{id}`
/// where every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewBuildProject {
    pub name: Option<String>,
    pub repository: Option<String>,
    /// Default `main`.
    pub branch: Option<String>,
    pub recipe_globs: Option<Vec<String>>,
    pub collection: Option<String>,
    pub backend: Option<String>,
    pub agent_labels: Option<Vec<String>>,
    pub forge: Option<ForgeKind>,
    pub forge_api_url: Option<String>,
    pub forge_repository: Option<String>,
    /// Stored sealed; never shown again.
    pub forge_token: Option<String>,
    /// Stored sealed; generated when absent on create and shown once.
    pub webhook_secret: Option<String>,
    pub poll_interval_seconds: Option<i64>,
}

/// The answer to a create: the project and its webhook secret, shown once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CreatedBuildProject {
    pub project: BuildProject,
    pub webhook_secret: String,
    /// Where to point the forge's webhooks.
    pub webhook_urls: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    /// A newer commit queued the same recipe before this one started.
    Superseded,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
            JobState::Superseded => "superseded",
        }
    }

    pub fn is_final(self) -> bool {
        !matches!(self, JobState::Queued | JobState::Running)
    }
}

/// One build of one recipe at one commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct BuildJob {
    pub id: i64,
    pub project_id: i64,
    pub project: String,
    pub repository: String,
    pub branch: String,
    pub commit: String,
    /// Path of the recipe in the repository.
    pub recipe_path: String,
    /// Where the image goes: `ENTITY/COLLECTION/NAME:TAG`.
    pub reference: String,
    pub state: JobState,
    /// Leases so far (a lease that expires counts).
    pub attempts: i64,
    pub max_attempts: i64,
    pub backend: Option<String>,
    pub agent_labels: Vec<String>,
    /// The agent holding or last holding the job.
    pub agent: Option<String>,
    pub queued_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// Why it failed, was cancelled or superseded.
    pub error: Option<String>,
    /// sha256 (hex) of the pushed image, once succeeded.
    pub image_sha256: Option<String>,
    pub cancel_requested: bool,
    pub log_size: i64,
}

/// `POST /api/v1/agent/lease`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LeaseRequest {
    /// The agent's name (host name by default), for the job's record.
    pub agent: String,
    /// What the agent offers; a job's labels must all be here.
    #[serde(default)]
    pub labels: Vec<String>,
}

/// A leased job: everything an agent needs to build and push it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Lease {
    /// Proof of holding the lease, sent with every agent call for the job.
    pub lease_id: String,
    /// The lease ends this long after the last heartbeat.
    pub lease_seconds: i64,
    /// Send heartbeats at least this often.
    pub heartbeat_seconds: i64,
    pub job: BuildJob,
}

/// The lease an agent call is made under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LeaseRef {
    pub lease_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct HeartbeatAnswer {
    /// Someone asked to cancel the job: stop building and finish it as failed.
    pub cancel: bool,
    pub lease_seconds: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LogAppended {
    /// The log's size after this chunk.
    pub log_size: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Succeeded,
    Failed,
}

/// `POST /api/v1/agent/jobs/{id}/finish`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct FinishRequest {
    pub lease_id: String,
    pub outcome: Outcome,
    /// Why it failed (the last lines of the build log, say).
    pub error: Option<String>,
    /// The pushed image's sha256 (hex), on success.
    pub image_sha256: Option<String>,
}

/// The metadata key an agent's push carries (`--meta build_job=ID`), so the
/// registry can tell that a job's image exists even if the agent died
/// before finishing the job.
pub const BUILD_JOB_META: &str = "build_job";
