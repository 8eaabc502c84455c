//! The scan queue (`build_scans`) and its worker: a push to look at, kept
//! in the database until done, so that a restart loses none. The worker
//! fetches the project's mirror, finds the recipes that changed with
//! `sreg_recipe::changed_recipes` (every recipe on the first import),
//! queues a job for each and moves the project's `last_commit` on.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use sqlx::{AnyPool, FromRow};
use sreg_recipe::{DiscoverOptions, changed_recipes};
use tokio::sync::Notify;

use super::{mirror, webhook};
use crate::db::now_ms;
use crate::error::{Error, Result};
use crate::model::builds::{self, jobs::RecipeBuild, projects};
use crate::serve::AppState;

/// Wakes the worker when a scan is requested (a permit is kept when it is
/// busy, so no request waits for the next sweep).
static WAKE: LazyLock<Notify> = LazyLock::new(Notify::new);

/// How often the worker looks for pending scans without being woken (scans
/// requested by another process sharing the database).
const SWEEP: Duration = Duration::from_secs(5);

/// Projects scanned at once.
const PARALLEL: usize = 4;

/// The all-zero commit: "no old head", so every recipe is queued.
const ZERO: &str = "0000000000000000000000000000000000000000";

/// A push to scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanRequest {
    pub project_id: i64,
    /// The old head the forge reported (`None` for a new branch).
    pub before: Option<String>,
    pub after: String,
    pub branch: String,
    /// `github`, `gitlab`, `gitea` or `poll`.
    pub source: String,
}

/// Tells the worker there is work.
pub fn wake() {
    WAKE.notify_one();
}

async fn insert(
    conn: &mut sqlx::AnyConnection,
    scan: &ScanRequest,
    now: i64,
) -> std::result::Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO build_scans (project_id, before_commit, after_commit, branch, source, requested_at)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(scan.project_id)
    .bind(&scan.before)
    .bind(&scan.after)
    .bind(&scan.branch)
    .bind(&scan.source)
    .bind(now)
    .fetch_one(conn)
    .await
}

/// Records a webhook delivery and its scans in one transaction. Returns
/// `false`, recording nothing, when the forge sent this delivery before.
pub async fn record_delivery(
    db: &AnyPool,
    forge: &str,
    delivery_id: &str,
    scans: &[ScanRequest],
) -> Result<bool> {
    let now = now_ms();
    let mut tx = db.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO build_webhook_deliveries (forge, delivery_id, project_id, received_at)
         VALUES ($1, $2, $3, $4) ON CONFLICT (forge, delivery_id) DO NOTHING",
    )
    .bind(forge)
    .bind(delivery_id)
    .bind(scans.first().map(|s| s.project_id))
    .bind(now)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Ok(false);
    }
    for scan in scans {
        insert(&mut tx, scan, now).await?;
    }
    tx.commit().await?;
    wake();
    Ok(true)
}

/// Requests a scan (polling).
pub async fn request(db: &AnyPool, scan: &ScanRequest) -> Result<i64> {
    let mut conn = db.acquire().await?;
    let id = insert(&mut conn, scan, now_ms()).await?;
    wake();
    Ok(id)
}

/// Whether a scan of the project is waiting or under way.
pub async fn pending_for(db: &AnyPool, project_id: i64) -> Result<bool> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM build_scans WHERE project_id = $1 AND done_at IS NULL",
    )
    .bind(project_id)
    .fetch_one(db)
    .await?;
    Ok(n > 0)
}

/// A scan as stored.
#[derive(Debug, Clone, FromRow)]
pub struct Scan {
    pub id: i64,
    pub project_id: i64,
    pub before_commit: Option<String>,
    pub after_commit: String,
    pub branch: String,
    pub source: String,
    pub requested_at: i64,
    pub done_at: Option<i64>,
    pub jobs_queued: Option<i64>,
    pub error: Option<String>,
}

const SELECT: &str = "SELECT id, project_id, before_commit, after_commit, branch, source,
    requested_at, done_at, jobs_queued, error FROM build_scans";

/// The oldest scans not done.
async fn pending(db: &AnyPool, limit: i64) -> Result<Vec<Scan>> {
    Ok(sqlx::query_as(&format!(
        "{SELECT} WHERE done_at IS NULL ORDER BY id LIMIT $1"
    ))
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// The scans of a project, newest first (for tests and diagnostics).
pub async fn of_project(db: &AnyPool, project_id: i64) -> Result<Vec<Scan>> {
    Ok(
        sqlx::query_as(&format!("{SELECT} WHERE project_id = $1 ORDER BY id DESC"))
            .bind(project_id)
            .fetch_all(db)
            .await?,
    )
}

async fn mark_done(db: &AnyPool, id: i64, jobs: i64, error: Option<&str>) -> Result<()> {
    sqlx::query("UPDATE build_scans SET done_at = $1, jobs_queued = $2, error = $3 WHERE id = $4")
        .bind(now_ms())
        .bind(jobs)
        .bind(error)
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

/// Scans pending pushes until the server stops: oldest first, one at a
/// time per project (so a project's pushes are taken in order) and up to
/// [`PARALLEL`] projects at once (so a repository that hangs holds up only
/// its own). Started at start-up, so scans left pending by a restart are
/// taken up again.
pub async fn run(state: AppState) {
    let busy: Arc<Mutex<HashSet<i64>>> = Arc::default();
    loop {
        match pending(&state.db.pool, 200).await {
            Ok(scans) => {
                for scan in scans {
                    {
                        let mut busy = busy.lock().unwrap_or_else(|e| e.into_inner());
                        if busy.len() >= PARALLEL || !busy.insert(scan.project_id) {
                            continue;
                        }
                    }
                    let (state, busy) = (state.clone(), busy.clone());
                    tokio::spawn(async move {
                        take(&state, &scan).await;
                        busy.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&scan.project_id);
                        wake();
                    });
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the scan queue"),
        }
        let _ = tokio::time::timeout(SWEEP, WAKE.notified()).await;
    }
}

/// Runs one scan and records its outcome.
async fn take(state: &AppState, scan: &Scan) {
    let (jobs, error) = match process(state, scan).await {
        Ok(n) => (n, None),
        Err(e) => {
            tracing::warn!(scan = scan.id, project = scan.project_id, error = %e, "scan failed");
            (0, Some(e.to_string()))
        }
    };
    // A scan is done whether or not it succeeded: a broken one is recorded,
    // not retried forever (polling or the next push asks again, since
    // last_commit did not move).
    if let Err(e) = mark_done(&state.db.pool, scan.id, jobs, error.as_deref()).await {
        tracing::warn!(scan = scan.id, error = %e, "cannot mark the scan done");
        // Not at once again: the database is in trouble.
        tokio::time::sleep(SWEEP).await;
    }
}

/// One scan; the number of jobs queued.
async fn process(state: &AppState, scan: &Scan) -> Result<i64> {
    let db = &state.db.pool;
    let project = projects::get(db, scan.project_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("build project {}", scan.project_id)))?;
    if project.branch != scan.branch {
        return Err(Error::BadRequest(format!(
            "the push was to {} but the project now builds {}",
            scan.branch, project.branch
        )));
    }
    let dir = mirror::mirror_dir(&state.config.data_dir, project.id);
    let fetching = std::time::Instant::now();
    mirror::fetch(
        &dir,
        &project.repository,
        &project.branch,
        &scan.after_commit,
    )
    .await
    .map_err(|e| Error::Internal(e.to_string()))?;

    let fetch_ms = fetching.elapsed().as_millis() as u64;
    // From the last commit queued; a project that never queued anything
    // starts at the forge's `before` (none: the first import, everything).
    let mut from = project
        .last_commit
        .clone()
        .or_else(|| scan.before_commit.clone())
        .unwrap_or_else(|| ZERO.to_owned());
    if from != ZERO && !mirror::has_commit(&dir, &from).await {
        tracing::warn!(project = %project.name, commit = %from, "old commit not in the mirror; queueing every recipe");
        from = ZERO.to_owned();
    }
    if from == scan.after_commit {
        return Ok(0);
    }
    let options = DiscoverOptions {
        include: match project.recipe_globs() {
            g if g.is_empty() => DiscoverOptions::default().include,
            g => g,
        },
        root_name: webhook::repository_name(&project.repository),
        ..DiscoverOptions::default()
    };
    let to = scan.after_commit.clone();
    let started = std::time::Instant::now();
    let changes = tokio::task::spawn_blocking(move || changed_recipes(&dir, &from, &to, &options))
        .await
        .map_err(|e| Error::Internal(format!("change detection stopped: {e}")))?
        .map_err(|e| Error::Internal(format!("change detection: {e}")))?;
    // A frozen recipe (a `.frozen` file) asks not to be rebuilt.
    let recipes: Vec<RecipeBuild> = changes
        .rebuild
        .iter()
        .filter(|c| !c.recipe.frozen)
        .map(|c| RecipeBuild {
            path: c.recipe.path.clone(),
            name: c.recipe.name.clone(),
            tag: c.recipe.tag.clone(),
        })
        .collect();
    let queued = if recipes.is_empty() {
        0
    } else {
        builds::queue(state, &project, &scan.after_commit, &scan.branch, &recipes)
            .await?
            .queued
            .len() as i64
    };
    projects::set_last_commit(db, project.id, &scan.after_commit).await?;
    tracing::info!(
        project = %project.name,
        commit = %scan.after_commit,
        source = %scan.source,
        changed = recipes.len(),
        queued,
        fetch_ms,
        detect_ms = started.elapsed().as_millis() as u64,
        "scan done"
    );
    Ok(queued)
}
