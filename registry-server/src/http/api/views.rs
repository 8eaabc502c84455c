//! Model rows to `/api/v1` wire types.

use std::time::{Duration, UNIX_EPOCH};

use sqlx::AnyPool;
use sreg_api::v1;

use crate::error::Result;
use crate::model::access::Caller;
use crate::model::accounts::User;
use crate::model::catalog::{self, Collection, Container, Image};
use crate::model::{activity, tags};
use crate::serve::AppState;

/// Unix milliseconds as RFC 3339 (UTC).
pub fn time(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

pub fn user(u: &User) -> v1::User {
    v1::User {
        id: u.id,
        name: u.name.clone(),
        email: u.email.clone(),
        admin: u.is_admin(),
        active: u.active != 0,
        created_at: time(u.created_at),
    }
}

pub async fn collection(db: &AnyPool, c: &Collection) -> Result<v1::Collection> {
    let containers = catalog::containers_of(db, c.id)
        .await?
        .into_iter()
        .map(|k| k.name)
        .collect();
    Ok(v1::Collection {
        id: c.id,
        entity: c.entity_name.clone(),
        name: c.name.clone(),
        description: c.description.clone(),
        private: c.private != 0,
        created_at: time(c.created_at),
        updated_at: time(c.updated_at),
        downloads: c.downloads,
        containers,
    })
}

pub async fn container(
    db: &AnyPool,
    caller: &Caller,
    c: &Collection,
    k: &Container,
) -> Result<v1::Container> {
    let images: Vec<Image> = catalog::images_of(db, k.id)
        .await?
        .into_iter()
        .filter(Image::is_uploaded)
        .collect();
    let all_tags = tags::of_container(db, k.id).await?;
    let hash_of = |id: i64| {
        images
            .iter()
            .find(|i| i.id == id)
            .map(|i| i.hash.clone())
            .unwrap_or_default()
    };
    let tag_infos = all_tags
        .iter()
        .map(|t| v1::TagInfo {
            name: t.name.clone(),
            arch: t.arch.clone(),
            hash: hash_of(t.image_id),
            frozen: t.frozen != 0,
        })
        .collect();
    let summaries = images
        .iter()
        .map(|i| v1::ImageSummary {
            hash: i.hash.clone(),
            size: i.size,
            arch: i.arch.clone(),
            tags: all_tags
                .iter()
                .filter(|t| t.image_id == i.id)
                .map(|t| t.name.clone())
                .collect(),
            created_at: time(i.uploaded_at.unwrap_or(i.created_at)),
            downloads: i.downloads,
        })
        .collect();
    let starred = match caller.id() {
        Some(uid) => sqlx::query_scalar::<_, i64>(
            "SELECT 1 FROM stars WHERE user_id = $1 AND container_id = $2",
        )
        .bind(uid)
        .bind(k.id)
        .fetch_optional(db)
        .await?
        .is_some(),
        None => false,
    };
    Ok(v1::Container {
        id: k.id,
        entity: c.entity_name.clone(),
        collection: c.name.clone(),
        name: k.name.clone(),
        description: k.description.clone(),
        private: c.private != 0,
        created_at: time(k.created_at),
        updated_at: time(k.updated_at),
        downloads: k.downloads,
        stars: activity::star_count(db, k.id).await?,
        starred,
        tags: tag_infos,
        images: summaries,
    })
}

/// The full view of an image. `tag` is the tag it was asked by, if any.
pub async fn image(
    state: &AppState,
    c: &Collection,
    k: &Container,
    i: &Image,
    tag: Option<&str>,
) -> Result<v1::Image> {
    let db = &state.db.pool;
    let image_tags: Vec<String> = tags::of_image(db, i.id)
        .await?
        .into_iter()
        .map(|t| t.name)
        .collect();
    let shown_tag = tag
        .filter(|t| !t.starts_with("sha256."))
        .map(str::to_string)
        .or_else(|| image_tags.first().cloned())
        .unwrap_or_else(|| i.hash.clone());
    let path = format!("{}/{}/{}", c.entity_name, c.name, k.name);
    let pinned = format!("{path}:{}", i.hash);
    let build: Option<v1::BuildInfo> = i
        .build
        .as_deref()
        .and_then(|b| serde_json::from_str(b).ok());
    let base = state.config.public_url.as_str().trim_end_matches('/');
    let log_url = build
        .as_ref()
        .and_then(|b| b.log.as_ref())
        .map(|_| format!("{base}/api/v1/logs/{pinned}"));
    Ok(v1::Image {
        id: i.id,
        reference: format!("{path}:{shown_tag}"),
        entity: c.entity_name.clone(),
        collection: c.name.clone(),
        container: k.name.clone(),
        private: c.private != 0,
        hash: i.hash.clone(),
        sha256: i.hash.trim_start_matches("sha256.").to_string(),
        size: i.size,
        arch: i.arch.clone(),
        tags: image_tags,
        created_at: time(i.uploaded_at.unwrap_or(i.created_at)),
        downloads: i.downloads,
        stars: activity::star_count(db, k.id).await?,
        signed: i.signed != 0,
        fingerprints: i
            .fingerprints
            .as_deref()
            .and_then(|f| serde_json::from_str(f).ok())
            .unwrap_or_default(),
        encrypted: i.encrypted != 0,
        definition_file: i.deffile.clone(),
        labels: i
            .labels
            .as_deref()
            .and_then(|l| serde_json::from_str(l).ok()),
        partitions: partitions(i.partitions.as_deref()),
        build,
        download_url: format!("{base}/api/v1/files/{pinned}"),
        log_url,
    })
}

/// The partitions JSON that publish.rs stores, read leniently.
fn partitions(stored: Option<&str>) -> Vec<v1::Partition> {
    let Some(values) = stored.and_then(|s| serde_json::from_str::<Vec<serde_json::Value>>(s).ok())
    else {
        return Vec::new();
    };
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    };
    values
        .iter()
        .map(|p| v1::Partition {
            id: p["id"].as_u64().unwrap_or(0) as u32,
            fs_type: text(&p["fs_type"]),
            part_type: text(&p["part_type"]),
            primary: p["primary"].as_bool().unwrap_or(false),
            arch: text(&p["arch"]),
            size: p["size"].as_i64().unwrap_or(0),
        })
        .collect()
}
