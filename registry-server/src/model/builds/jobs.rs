//! The build queue: one job per recipe and commit, leased by agents.
//!
//! A lease is taken with one conditional `UPDATE ... WHERE state = 'queued'`
//! whose row count says whether this agent won, so concurrent agents never
//! get the same job, on SQLite as on PostgreSQL. The lease id is returned
//! once; only its SHA-256 is stored, compared in constant time. A lease
//! lives `lease_seconds` past the last heartbeat; the reaper takes back
//! expired ones. An agent's own "failed" is final (a broken recipe stays
//! broken); only lost leases are retried, up to `max_attempts` leases.

use sha2::{Digest, Sha256};
use sqlx::{AnyPool, FromRow};
use sreg_api::builds::{BuildJob, JobState, Outcome};
use subtle::ConstantTimeEq;

use super::projects::Project;
use super::{list_text, string_list, time};
use crate::db::now_ms;
use crate::error::{Error, Result};

/// Longest error text kept on a job.
const ERROR_LIMIT: usize = 4096;
/// Queued jobs looked at per lease call (oldest first) for one whose labels fit.
const LEASE_SCAN: i64 = 500;

/// A job as stored.
#[derive(Debug, Clone, FromRow)]
pub struct Job {
    pub id: i64,
    pub project_id: i64,
    pub project: String,
    pub repository: String,
    pub branch: String,
    pub commit_sha: String,
    pub recipe_path: String,
    pub reference: String,
    pub state: String,
    pub attempts: i64,
    pub max_attempts: i64,
    pub backend: Option<String>,
    pub agent_labels: String,
    pub agent: Option<String>,
    pub lease_id_hash: Option<String>,
    pub lease_expires_at: Option<i64>,
    pub cancel_requested: i64,
    pub queued_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub error: Option<String>,
    pub image_sha256: Option<String>,
    pub log_size: i64,
}

pub fn parse_state(s: &str) -> Option<JobState> {
    Some(match s {
        "queued" => JobState::Queued,
        "running" => JobState::Running,
        "succeeded" => JobState::Succeeded,
        "failed" => JobState::Failed,
        "cancelled" => JobState::Cancelled,
        "superseded" => JobState::Superseded,
        _ => return None,
    })
}

impl Job {
    pub fn state(&self) -> JobState {
        // The CHECK constraint admits only the six states.
        parse_state(&self.state).unwrap_or(JobState::Failed)
    }

    pub fn to_api(&self) -> BuildJob {
        BuildJob {
            id: self.id,
            project_id: self.project_id,
            project: self.project.clone(),
            repository: self.repository.clone(),
            branch: self.branch.clone(),
            commit: self.commit_sha.clone(),
            recipe_path: self.recipe_path.clone(),
            reference: self.reference.clone(),
            state: self.state(),
            attempts: self.attempts,
            max_attempts: self.max_attempts,
            backend: self.backend.clone(),
            agent_labels: string_list(&self.agent_labels),
            agent: self.agent.clone(),
            queued_at: time(self.queued_at),
            started_at: self.started_at.map(time),
            finished_at: self.finished_at.map(time),
            error: self.error.clone(),
            image_sha256: self.image_sha256.clone(),
            cancel_requested: self.cancel_requested != 0,
            log_size: self.log_size,
        }
    }

    /// Whether `lease_id` is this running job's lease (constant time).
    fn holds(&self, lease_id: &str) -> bool {
        let Some(stored) = &self.lease_id_hash else {
            return false;
        };
        self.state == "running"
            && bool::from(lease_hash(lease_id).as_bytes().ct_eq(stored.as_bytes()))
    }
}

const SELECT: &str = "SELECT j.id, j.project_id, p.name AS project, j.repository, j.branch,
        j.commit_sha, j.recipe_path, j.reference, j.state, j.attempts, j.max_attempts,
        j.backend, j.agent_labels, j.agent, j.lease_id_hash, j.lease_expires_at,
        j.cancel_requested, j.queued_at, j.started_at, j.finished_at, j.error,
        j.image_sha256, j.log_size
     FROM build_jobs j JOIN build_projects p ON p.id = j.project_id";

fn lease_hash(lease_id: &str) -> String {
    hex::encode(Sha256::digest(lease_id.as_bytes()))
}

fn new_lease_id() -> String {
    use rand::Rng;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("lease_{}", hex::encode(bytes))
}

fn clip(s: &str) -> String {
    if s.len() <= ERROR_LIMIT {
        return s.to_string();
    }
    // Keep the end: the last lines of a log say why.
    let mut start = s.len() - ERROR_LIMIT;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &s[start..])
}

pub async fn get(db: &AnyPool, id: i64) -> Result<Option<Job>> {
    Ok(sqlx::query_as(&format!("{SELECT} WHERE j.id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await?)
}

async fn must_get(db: &AnyPool, id: i64) -> Result<Job> {
    get(db, id)
        .await?
        .ok_or_else(|| Error::not_found(format!("build job {id}")))
}

/// Jobs of the given projects, newest first.
pub async fn list(
    db: &AnyPool,
    project_ids: &[i64],
    state: Option<JobState>,
    limit: i64,
) -> Result<Vec<Job>> {
    if project_ids.is_empty() {
        return Ok(Vec::new());
    }
    // Ids are integers from the database: safe to inline.
    let ids: Vec<String> = project_ids.iter().map(i64::to_string).collect();
    let mut sql = format!("{SELECT} WHERE j.project_id IN ({})", ids.join(","));
    if state.is_some() {
        sql.push_str(" AND j.state = $2");
    }
    sql.push_str(" ORDER BY j.id DESC LIMIT $1");
    let mut q = sqlx::query_as(&sql).bind(limit);
    if let Some(s) = state {
        q = q.bind(s.as_str());
    }
    Ok(q.fetch_all(db).await?)
}

/// One recipe to build: its path, and the container and tag it becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipeBuild {
    pub path: String,
    pub name: String,
    pub tag: String,
}

/// What [`enqueue`] did.
#[derive(Debug, Clone, Default)]
pub struct Enqueued {
    /// New jobs.
    pub queued: Vec<BuildJob>,
    /// Queued jobs of older commits that the new ones replace.
    pub superseded: Vec<BuildJob>,
    /// Recipes not queued because an identical job is queued, running or
    /// succeeded.
    pub duplicates: Vec<String>,
}

/// Queues one job per recipe at `commit`, in one transaction: still-queued
/// jobs of the same project and recipe at another commit are superseded,
/// and a recipe whose job at this commit is queued, running or succeeded is
/// not queued again (a webhook delivered twice makes one job).
pub async fn enqueue(
    db: &AnyPool,
    project: &Project,
    commit: &str,
    branch: &str,
    recipes: &[RecipeBuild],
    max_attempts: i64,
) -> Result<Enqueued> {
    if commit.is_empty() || commit.len() > 64 || !commit.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Error::BadRequest(format!(
            "commit {commit:?} is not a hexadecimal commit id"
        )));
    }
    let mut planned = Vec::new();
    for r in recipes {
        let reference = format!("{}/{}:{}", project.collection, r.name, r.tag);
        sreg_api::Reference::parse(&reference).map_err(|e| {
            Error::BadRequest(format!("recipe {} cannot become {reference}: {e}", r.path))
        })?;
        if r.path.is_empty() || r.path.len() > 1024 {
            return Err(Error::BadRequest(
                "a recipe path is empty or too long".into(),
            ));
        }
        planned.push((r, reference));
    }
    let now = now_ms();
    let mut tx = db.begin().await?;
    let mut superseded_ids = Vec::new();
    let mut queued_ids = Vec::new();
    let mut duplicates = Vec::new();
    for (r, reference) in planned {
        // A write first: on SQLite it takes the write lock (waiting for it)
        // at the start, rather than failing to upgrade a read later.
        let older: Vec<i64> = sqlx::query_scalar(
            "UPDATE build_jobs SET state = 'superseded', finished_at = $1, error = $2
             WHERE project_id = $3 AND recipe_path = $4 AND state = 'queued' AND commit_sha <> $5
             RETURNING id",
        )
        .bind(now)
        .bind(format!("superseded by commit {commit}"))
        .bind(project.id)
        .bind(&r.path)
        .bind(commit)
        .fetch_all(&mut *tx)
        .await?;
        superseded_ids.extend(older);
        let same: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM build_jobs WHERE project_id = $1 AND recipe_path = $2
                 AND commit_sha = $3 AND state IN ('queued', 'running', 'succeeded') LIMIT 1",
        )
        .bind(project.id)
        .bind(&r.path)
        .bind(commit)
        .fetch_optional(&mut *tx)
        .await?;
        if same.is_some() {
            duplicates.push(r.path.clone());
            continue;
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO build_jobs (project_id, repository, branch, commit_sha, recipe_path,
                 reference, state, max_attempts, backend, agent_labels, queued_at)
             VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, $8, $9, $10) RETURNING id",
        )
        .bind(project.id)
        .bind(&project.repository)
        .bind(branch)
        .bind(commit)
        .bind(&r.path)
        .bind(&reference)
        .bind(max_attempts.max(1))
        .bind(&project.backend)
        .bind(list_text(&project.agent_labels()))
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        queued_ids.push(id);
    }
    tx.commit().await?;
    let mut done = Enqueued {
        duplicates,
        ..Default::default()
    };
    for id in superseded_ids {
        done.superseded.push(must_get(db, id).await?.to_api());
    }
    for id in queued_ids {
        done.queued.push(must_get(db, id).await?.to_api());
    }
    Ok(done)
}

/// Leases the oldest queued job whose labels are all among `labels`.
/// Returns the lease id (shown this once) and the job.
pub async fn lease(
    db: &AnyPool,
    agent: &str,
    labels: &[String],
    lease_ms: i64,
) -> Result<Option<(String, Job)>> {
    let candidates: Vec<(i64, String)> = sqlx::query_as(
        "SELECT id, agent_labels FROM build_jobs WHERE state = 'queued'
         ORDER BY queued_at, id LIMIT $1",
    )
    .bind(LEASE_SCAN)
    .fetch_all(db)
    .await?;
    for (id, wanted) in candidates {
        if !string_list(&wanted).iter().all(|l| labels.contains(l)) {
            continue;
        }
        let lease_id = new_lease_id();
        let now = now_ms();
        // Only one agent's UPDATE finds the job still queued.
        let won = sqlx::query(
            "UPDATE build_jobs SET state = 'running', agent = $1, lease_id_hash = $2,
                 lease_expires_at = $3, attempts = attempts + 1, started_at = $4
             WHERE id = $5 AND state = 'queued'",
        )
        .bind(agent)
        .bind(lease_hash(&lease_id))
        .bind(now + lease_ms)
        .bind(now)
        .bind(id)
        .execute(db)
        .await?
        .rows_affected()
            == 1;
        if won {
            return Ok(Some((lease_id, must_get(db, id).await?)));
        }
    }
    Ok(None)
}

fn lost(job: &Job) -> Error {
    Error::Conflict(format!(
        "the lease of build job {} is lost (the job is {}{}): stop building it",
        job.id,
        job.state,
        if job.state == "running" {
            ", leased again by another agent"
        } else {
            ""
        }
    ))
}

/// The job, if `lease_id` holds its lease; 409 otherwise.
pub async fn held(db: &AnyPool, id: i64, lease_id: &str) -> Result<Job> {
    let job = must_get(db, id).await?;
    if job.holds(lease_id) {
        Ok(job)
    } else {
        Err(lost(&job))
    }
}

/// Extends a lease; answers whether a cancel was asked for. A lease past
/// its expiry that nobody took back yet is still the agent's.
pub async fn heartbeat(db: &AnyPool, id: i64, lease_id: &str, lease_ms: i64) -> Result<bool> {
    let job = held(db, id, lease_id).await?;
    let n = sqlx::query(
        "UPDATE build_jobs SET lease_expires_at = $1
         WHERE id = $2 AND state = 'running' AND lease_id_hash = $3",
    )
    .bind(now_ms() + lease_ms)
    .bind(id)
    .bind(lease_hash(lease_id))
    .execute(db)
    .await?
    .rows_affected();
    if n == 0 {
        // Taken back by the reaper between the two statements.
        return Err(lost(&must_get(db, id).await?));
    }
    Ok(job.cancel_requested != 0)
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// Ends a job as the lease holder says. A failure of a job whose cancel
/// was asked for ends it as cancelled.
pub async fn finish(
    db: &AnyPool,
    id: i64,
    lease_id: &str,
    outcome: Outcome,
    error: Option<&str>,
    image_sha256: Option<&str>,
) -> Result<Job> {
    let job = held(db, id, lease_id).await?;
    let (state, error, sha) = match outcome {
        Outcome::Succeeded => {
            let sha = image_sha256
                .map(|s| s.strip_prefix("sha256.").unwrap_or(s).to_ascii_lowercase())
                .filter(|s| is_sha256_hex(s))
                .ok_or_else(|| {
                    Error::BadRequest(
                        "a succeeded job needs image_sha256: the pushed image's sha256 in hex"
                            .into(),
                    )
                })?;
            ("succeeded", None, Some(sha))
        }
        Outcome::Failed if job.cancel_requested != 0 => (
            "cancelled",
            Some(clip(error.unwrap_or("cancelled while running"))),
            None,
        ),
        Outcome::Failed => (
            "failed",
            Some(clip(
                error.unwrap_or("the build failed (the agent gave no reason)"),
            )),
            None,
        ),
    };
    let n = sqlx::query(
        "UPDATE build_jobs SET state = $1, error = $2, image_sha256 = $3, finished_at = $4,
             lease_id_hash = NULL, lease_expires_at = NULL
         WHERE id = $5 AND state = 'running' AND lease_id_hash = $6",
    )
    .bind(state)
    .bind(error)
    .bind(sha)
    .bind(now_ms())
    .bind(id)
    .bind(lease_hash(lease_id))
    .execute(db)
    .await?
    .rows_affected();
    if n == 0 {
        return Err(lost(&must_get(db, id).await?));
    }
    must_get(db, id).await
}

/// Cancels a job: a queued one at once, a running one by telling its agent
/// on the next heartbeat. A finished job cannot be cancelled (409).
pub async fn cancel(db: &AnyPool, id: i64, by: &str) -> Result<Job> {
    let n = sqlx::query(
        "UPDATE build_jobs SET state = 'cancelled', finished_at = $1, error = $2
         WHERE id = $3 AND state = 'queued'",
    )
    .bind(now_ms())
    .bind(format!("cancelled by {by}"))
    .bind(id)
    .execute(db)
    .await?
    .rows_affected();
    if n == 0 {
        let n = sqlx::query(
            "UPDATE build_jobs SET cancel_requested = 1, error = $1
             WHERE id = $2 AND state = 'running'",
        )
        .bind(format!("cancel asked by {by}"))
        .bind(id)
        .execute(db)
        .await?
        .rows_affected();
        if n == 0 {
            let job = must_get(db, id).await?;
            return Err(Error::Conflict(format!(
                "build job {id} is already {}",
                job.state
            )));
        }
    }
    must_get(db, id).await
}

/// The sha256 (hex) of an image pushed for this job (build metadata
/// `build_job` = its id) into the job's target container, if any: the agent
/// pushed, then died before finishing the job.
async fn pushed_image(db: &AnyPool, job: &Job) -> Result<Option<String>> {
    let Ok(r) = sreg_api::Reference::parse(&job.reference) else {
        return Ok(None);
    };
    let Some(entity) = r.entity else {
        return Ok(None);
    };
    // The metadata is stored as compact JSON: `"build_job":"ID"` exactly.
    let pattern = format!("%\"{}\":\"{}\"%", sreg_api::builds::BUILD_JOB_META, job.id);
    let hash: Option<String> = sqlx::query_scalar(
        "SELECT i.hash FROM images i
         JOIN containers k ON k.id = i.container_id
         JOIN collections c ON c.id = k.collection_id
         JOIN entities e ON e.id = c.entity_id
         WHERE e.name = $1 AND c.name = $2 AND k.name = $3 AND i.uploaded = 1
           AND i.build LIKE $4
         ORDER BY i.uploaded_at DESC LIMIT 1",
    )
    .bind(&entity)
    .bind(&r.collection)
    .bind(&r.container)
    .bind(pattern)
    .fetch_optional(db)
    .await?;
    Ok(hash.map(|h| h.strip_prefix("sha256.").unwrap_or(&h).to_string()))
}

/// Takes back running jobs whose lease expired before `now`: succeeded if
/// their image was pushed, cancelled if a cancel was asked for, queued
/// again while attempts remain, failed otherwise. Returns the changed jobs.
pub async fn reap(db: &AnyPool, now: i64) -> Result<Vec<Job>> {
    let expired: Vec<Job> = sqlx::query_as(&format!(
        "{SELECT} WHERE j.state = 'running' AND j.lease_expires_at < $1 ORDER BY j.id"
    ))
    .bind(now)
    .fetch_all(db)
    .await?;
    let mut changed = Vec::new();
    for job in expired {
        let agent = job.agent.as_deref().unwrap_or("the agent");
        let (state, error, sha): (&str, Option<String>, Option<String>) = if let Some(sha) =
            pushed_image(db, &job).await?
        {
            ("succeeded", None, Some(sha))
        } else if job.cancel_requested != 0 {
            (
                "cancelled",
                Some(format!("cancelled; {agent} stopped answering")),
                None,
            )
        } else if job.attempts < job.max_attempts {
            (
                "queued",
                Some(format!(
                    "lease lost: {agent} stopped sending heartbeats (attempt {} of {}); queued again",
                    job.attempts, job.max_attempts
                )),
                None,
            )
        } else {
            (
                "failed",
                Some(format!(
                    "lease lost: {agent} stopped sending heartbeats, after {} attempts",
                    job.attempts
                )),
                None,
            )
        };
        let finished = (state != "queued").then_some(now);
        // Guarded: a heartbeat that extended the lease meanwhile wins.
        let n = sqlx::query(
            "UPDATE build_jobs SET state = $1, error = $2, image_sha256 = $3, finished_at = $4,
                 lease_id_hash = NULL, lease_expires_at = NULL
             WHERE id = $5 AND state = 'running' AND lease_expires_at < $6",
        )
        .bind(state)
        .bind(error)
        .bind(sha)
        .bind(finished)
        .bind(job.id)
        .bind(now)
        .execute(db)
        .await?
        .rows_affected();
        if n == 1 {
            tracing::info!(job = job.id, state, "took back an expired build lease");
            changed.push(must_get(db, job.id).await?);
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_ids_are_random_and_checked_by_hash() {
        let a = new_lease_id();
        assert_ne!(a, new_lease_id());
        assert_eq!(a.len(), "lease_".len() + 64);
        let mut job = Job {
            id: 1,
            project_id: 1,
            project: "p".into(),
            repository: "r".into(),
            branch: "main".into(),
            commit_sha: "ab".into(),
            recipe_path: "Singularity".into(),
            reference: "e/c/n:t".into(),
            state: "running".into(),
            attempts: 1,
            max_attempts: 3,
            backend: None,
            agent_labels: "[]".into(),
            agent: None,
            lease_id_hash: Some(lease_hash(&a)),
            lease_expires_at: None,
            cancel_requested: 0,
            queued_at: 0,
            started_at: None,
            finished_at: None,
            error: None,
            image_sha256: None,
            log_size: 0,
        };
        assert!(job.holds(&a));
        assert!(!job.holds(&new_lease_id()));
        assert!(!job.holds(""));
        job.state = "succeeded".into();
        assert!(!job.holds(&a), "a finished job has no lease");
    }

    #[test]
    fn long_errors_keep_their_end() {
        let s = format!("{}END", "x".repeat(10_000));
        let c = clip(&s);
        assert!(c.ends_with("END") && c.len() <= ERROR_LIMIT + 4);
        assert_eq!(clip("short"), "short");
    }
}
