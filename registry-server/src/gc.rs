//! `sreg-server gc`: removes blobs that no image references and uploads
//! that were abandoned. Objects younger than the grace period are kept, so
//! that an upload between "blob stored" and "image published" is never
//! collected under its feet.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::Result;
use futures_util::TryStreamExt;
use object_store::ObjectStoreExt;
use sqlx::AnyPool;

use crate::db::now_ms;
use crate::storage::Storage;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    pub blobs_removed: u64,
    pub bytes_freed: u64,
    pub uploads_removed: u64,
}

pub async fn run(
    db: &AnyPool,
    storage: &Storage,
    grace: Duration,
    dry_run: bool,
) -> Result<GcReport> {
    let cutoff = cutoff(grace);
    let mut report = GcReport::default();

    // Multipart uploads still under way keep their parts, however old.
    let live: HashSet<String> = sqlx::query_scalar("SELECT id FROM uploads WHERE expires_at >= $1")
        .bind(now_ms())
        .fetch_all(db)
        .await?
        .into_iter()
        .collect();

    // Abandoned upload sessions first: their images were never published.
    let expired: Vec<String> = sqlx::query_scalar("SELECT id FROM uploads WHERE expires_at < $1")
        .bind(now_ms())
        .fetch_all(db)
        .await?;
    if !dry_run {
        for id in &expired {
            sqlx::query("DELETE FROM uploads WHERE id = $1")
                .bind(id)
                .execute(db)
                .await?;
        }
    }

    let mut referenced: HashSet<String> =
        sqlx::query_scalar("SELECT DISTINCT blob_digest FROM images WHERE blob_digest IS NOT NULL")
            .fetch_all(db)
            .await?
            .into_iter()
            .collect();
    // Build logs pushed over /api/v1 are blobs too, named in the image's
    // build metadata (`{"log": {"sha256": HEX, ...}}`).
    let builds: Vec<String> =
        sqlx::query_scalar("SELECT build FROM images WHERE build IS NOT NULL")
            .fetch_all(db)
            .await?;
    referenced.extend(builds.iter().filter_map(|b| {
        let v: serde_json::Value = serde_json::from_str(b).ok()?;
        Some(format!("sha256:{}", v["log"]["sha256"].as_str()?))
    }));

    let blobs = storage.prefix.clone().join("blobs").join("sha256");
    let listed: Vec<_> = storage.store.list(Some(&blobs)).try_collect().await?;
    for meta in listed {
        let Some(hex) = meta.location.filename() else {
            continue;
        };
        let digest = format!("sha256:{hex}");
        if referenced.contains(&digest) || meta.last_modified > cutoff {
            continue;
        }
        report.blobs_removed += 1;
        report.bytes_freed += meta.size;
        if !dry_run {
            storage.store.delete(&meta.location).await?;
            sqlx::query("DELETE FROM blobs WHERE digest = $1")
                .bind(&digest)
                .execute(db)
                .await?;
        }
    }

    let uploads = storage.uploads_prefix();
    let listed: Vec<_> = storage.store.list(Some(&uploads)).try_collect().await?;
    for meta in listed {
        let in_live_upload = meta.location.parts().any(|p| live.contains(p.as_ref()));
        if meta.last_modified > cutoff || in_live_upload {
            continue;
        }
        report.uploads_removed += 1;
        report.bytes_freed += meta.size;
        if !dry_run {
            storage.store.delete(&meta.location).await?;
        }
    }
    Ok(report)
}

/// Objects last modified after this are too young to collect.
fn cutoff(grace: Duration) -> chrono::DateTime<chrono::Utc> {
    let grace = chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
    chrono::Utc::now()
        .checked_sub_signed(grace)
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC)
}
