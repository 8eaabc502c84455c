//! Tags: per container and architecture, each points at one image. A
//! frozen tag never moves and cannot be deleted.

use serde::Serialize;
use sqlx::{AnyPool, FromRow};

use crate::db::now_ms;
use crate::error::{Error, Result};

#[derive(Debug, Clone, FromRow, Serialize)]
pub struct Tag {
    pub container_id: i64,
    pub arch: String,
    pub name: String,
    pub image_id: i64,
    pub frozen: i64,
    pub updated_at: i64,
}

/// Tags follow the OCI tag grammar, so every client can use them.
pub fn validate_tag(tag: &str) -> Result<()> {
    if sreg_api::reference::is_valid_tag(tag) {
        Ok(())
    } else {
        Err(Error::BadRequest(format!(
            "tag {tag:?} is not valid: use letters, digits, '.', '_' and '-', not starting with '.' or '-', at most 128 characters"
        )))
    }
}

/// Points `name` (for `arch`) at `image_id`. Refused when the tag is frozen
/// and points elsewhere.
pub async fn set(
    db: &AnyPool,
    container_id: i64,
    arch: &str,
    name: &str,
    image_id: i64,
) -> Result<()> {
    validate_tag(name)?;
    let current: Option<(i64, i64)> = sqlx::query_as(
        "SELECT image_id, frozen FROM tags WHERE container_id = $1 AND arch = $2 AND name = $3",
    )
    .bind(container_id)
    .bind(arch)
    .bind(name)
    .fetch_optional(db)
    .await?;
    if let Some((current, frozen)) = current {
        if current == image_id {
            return Ok(());
        }
        if frozen != 0 {
            return Err(Error::Conflict(format!(
                "tag {name:?} is frozen: it cannot be moved to another image"
            )));
        }
    }
    // The WHERE keeps a tag frozen by a concurrent request frozen.
    sqlx::query(
        "INSERT INTO tags (container_id, arch, name, image_id, updated_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (container_id, arch, name)
         DO UPDATE SET image_id = excluded.image_id, updated_at = excluded.updated_at
         WHERE tags.frozen = 0",
    )
    .bind(container_id)
    .bind(arch)
    .bind(name)
    .bind(image_id)
    .bind(now_ms())
    .execute(db)
    .await?;
    Ok(())
}

pub async fn set_frozen(
    db: &AnyPool,
    container_id: i64,
    arch: &str,
    name: &str,
    frozen: bool,
) -> Result<()> {
    let done = sqlx::query(
        "UPDATE tags SET frozen = $1 WHERE container_id = $2 AND arch = $3 AND name = $4",
    )
    .bind(i64::from(frozen))
    .bind(container_id)
    .bind(arch)
    .bind(name)
    .execute(db)
    .await?;
    if done.rows_affected() == 0 {
        return Err(Error::not_found(format!("tag {name:?}")));
    }
    Ok(())
}

pub async fn of_container(db: &AnyPool, container_id: i64) -> Result<Vec<Tag>> {
    Ok(
        sqlx::query_as("SELECT * FROM tags WHERE container_id = $1 ORDER BY arch, name")
            .bind(container_id)
            .fetch_all(db)
            .await?,
    )
}

pub async fn of_image(db: &AnyPool, image_id: i64) -> Result<Vec<Tag>> {
    Ok(
        sqlx::query_as("SELECT * FROM tags WHERE image_id = $1 ORDER BY name")
            .bind(image_id)
            .fetch_all(db)
            .await?,
    )
}

/// The image a tag names. With an architecture, that architecture's tag;
/// without (old clients), the tag of any architecture, preferring amd64 when
/// several carry it.
pub async fn resolve(
    db: &AnyPool,
    container_id: i64,
    name: &str,
    arch: Option<&str>,
) -> Result<Option<i64>> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT arch, image_id FROM tags WHERE container_id = $1 AND name = $2 ORDER BY arch",
    )
    .bind(container_id)
    .bind(name)
    .fetch_all(db)
    .await?;
    Ok(match arch.filter(|a| !a.is_empty()) {
        Some(a) => rows.iter().find(|(arch, _)| arch == a).map(|(_, id)| *id),
        None => rows
            .iter()
            .find(|(arch, _)| arch == "amd64")
            .or(rows.first())
            .map(|(_, id)| *id),
    })
}

/// Removes a tag; refused when frozen.
pub async fn delete(db: &AnyPool, container_id: i64, arch: &str, name: &str) -> Result<()> {
    let frozen: Option<i64> = sqlx::query_scalar(
        "SELECT frozen FROM tags WHERE container_id = $1 AND arch = $2 AND name = $3",
    )
    .bind(container_id)
    .bind(arch)
    .bind(name)
    .fetch_optional(db)
    .await?;
    match frozen {
        None => Err(Error::not_found(format!("tag {name:?}"))),
        Some(f) if f != 0 => Err(Error::Conflict(format!("tag {name:?} is frozen"))),
        Some(_) => {
            sqlx::query("DELETE FROM tags WHERE container_id = $1 AND arch = $2 AND name = $3")
                .bind(container_id)
                .bind(arch)
                .bind(name)
                .execute(db)
                .await?;
            Ok(())
        }
    }
}
