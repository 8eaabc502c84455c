//! Build logs: the chunks an agent sends, each stored at its byte offset.
//! A chunk sent again (a retry after a lost answer) is recognised by its
//! offset and stored once; reading from an offset is a range query on the
//! primary key.

use sqlx::AnyPool;

use super::jobs;
use crate::error::{Error, Result};

/// Largest log kept for one job.
pub const LOG_LIMIT: i64 = 64 << 20;
/// Largest answer to one read.
pub const READ_LIMIT: usize = 4 << 20;

/// Appends `bytes`, which start at byte `offset` of the log, for the holder
/// of the job's lease. Bytes already stored are skipped; a gap is refused.
/// Returns the log's size after the append.
pub async fn append(
    db: &AnyPool,
    job_id: i64,
    lease_id: &str,
    offset: i64,
    bytes: &[u8],
) -> Result<i64> {
    // Two tries: a concurrent append by the same agent may move the end.
    for _ in 0..3 {
        let job = jobs::held(db, job_id, lease_id).await?;
        let size = job.log_size;
        if offset < 0 || offset > size {
            return Err(Error::Conflict(format!(
                "log offset {offset} is not within the log of build job {job_id}, which has {size} bytes: send from {size}"
            )));
        }
        let end = offset + bytes.len() as i64;
        if end <= size {
            return Ok(size);
        }
        let tail = &bytes[(size - offset) as usize..];
        if end > LOG_LIMIT {
            return Err(Error::TooLarge(format!(
                "the log of build job {job_id} would pass {LOG_LIMIT} bytes: send less"
            )));
        }
        let mut tx = db.begin().await?;
        // Moving the end first takes SQLite's write lock and tells a
        // concurrent append that it lost.
        let moved = sqlx::query(
            "UPDATE build_jobs SET log_size = $1 WHERE id = $2 AND log_size = $3 AND state = 'running'",
        )
        .bind(end)
        .bind(job_id)
        .bind(size)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if moved == 0 {
            tx.rollback().await?;
            continue;
        }
        sqlx::query("INSERT INTO build_log_chunks (job_id, start_at, bytes) VALUES ($1, $2, $3)")
            .bind(job_id)
            .bind(size)
            .bind(tail.to_vec())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        return Ok(end);
    }
    Err(Error::Conflict(format!(
        "the log of build job {job_id} is being written by someone else at the same time"
    )))
}

/// Up to `max` bytes of a job's log from byte `offset`.
pub async fn read(db: &AnyPool, job_id: i64, offset: i64, max: usize) -> Result<Vec<u8>> {
    let first: Option<i64> = sqlx::query_scalar(
        "SELECT MAX(start_at) FROM build_log_chunks WHERE job_id = $1 AND start_at <= $2",
    )
    .bind(job_id)
    .bind(offset.max(0))
    .fetch_one(db)
    .await?;
    let Some(first) = first else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let mut from = first;
    while out.len() < max {
        let chunks: Vec<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT start_at, bytes FROM build_log_chunks WHERE job_id = $1 AND start_at >= $2
             ORDER BY start_at LIMIT 64",
        )
        .bind(job_id)
        .bind(from)
        .fetch_all(db)
        .await?;
        let Some((last, last_bytes)) = chunks.last() else {
            break;
        };
        from = last + last_bytes.len() as i64;
        for (start, bytes) in &chunks {
            let skip = (offset - start).clamp(0, bytes.len() as i64) as usize;
            let room = max - out.len();
            let piece = &bytes[skip..];
            out.extend_from_slice(&piece[..piece.len().min(room)]);
            if out.len() >= max {
                break;
            }
        }
        if chunks.len() < 64 {
            break;
        }
    }
    Ok(out)
}
