//! Collections, containers and images.

use serde::Serialize;
use sqlx::{AnyPool, FromRow};

use crate::db::now_ms;
use crate::error::{Error, Result};
use crate::model::accounts::validate_name;
use crate::model::{conflict_if_taken, flag};

#[derive(Debug, Clone, FromRow, Serialize)]
pub struct Collection {
    pub id: i64,
    pub entity_id: i64,
    pub entity_name: String,
    pub name: String,
    pub description: String,
    pub private: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub downloads: i64,
}

#[derive(Debug, Clone, FromRow, Serialize)]
pub struct Container {
    pub id: i64,
    pub collection_id: i64,
    pub name: String,
    pub description: String,
    pub full_description: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub downloads: i64,
}

#[derive(Debug, Clone, FromRow, Serialize)]
pub struct Image {
    pub id: i64,
    pub container_id: i64,
    /// `sha256.<hex>`
    pub hash: String,
    pub size: i64,
    pub arch: String,
    pub uploaded: i64,
    pub blob_digest: Option<String>,
    pub description: String,
    pub signed: i64,
    pub encrypted: i64,
    pub deffile: Option<String>,
    pub labels: Option<String>,
    pub partitions: Option<String>,
    pub build: Option<String>,
    /// JSON array of the signing entities' fingerprints.
    pub fingerprints: Option<String>,
    pub created_by: Option<i64>,
    pub created_at: i64,
    pub uploaded_at: Option<i64>,
    pub downloads: i64,
}

impl Image {
    pub fn is_uploaded(&self) -> bool {
        self.uploaded != 0
    }
}

const COLLECTION_SELECT: &str =
    "SELECT c.id, c.entity_id, e.name AS entity_name, c.name, c.description, c.private,
            c.created_at, c.updated_at, c.downloads
     FROM collections c JOIN entities e ON e.id = c.entity_id";

pub async fn collection(db: &AnyPool, entity: &str, name: &str) -> Result<Option<Collection>> {
    Ok(sqlx::query_as(&format!(
        "{COLLECTION_SELECT} WHERE e.name = $1 AND c.name = $2"
    ))
    .bind(entity)
    .bind(name)
    .fetch_optional(db)
    .await?)
}

pub async fn collection_by_id(db: &AnyPool, id: i64) -> Result<Option<Collection>> {
    Ok(
        sqlx::query_as(&format!("{COLLECTION_SELECT} WHERE c.id = $1"))
            .bind(id)
            .fetch_optional(db)
            .await?,
    )
}

/// Every collection with this name, whatever its entity: for the two-part
/// references of shub and sregistry-cli (callers filter by visibility).
pub async fn collections_named(db: &AnyPool, name: &str) -> Result<Vec<Collection>> {
    Ok(sqlx::query_as(&format!(
        "{COLLECTION_SELECT} WHERE c.name = $1 ORDER BY c.id"
    ))
    .bind(name)
    .fetch_all(db)
    .await?)
}

/// Creates a collection; its creator becomes an owner.
pub async fn create_collection(
    db: &AnyPool,
    entity_id: i64,
    name: &str,
    private: bool,
    created_by: i64,
) -> Result<Collection> {
    validate_name("collection", name)?;
    let mut tx = db.begin().await?;
    let now = now_ms();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO collections (entity_id, name, private, created_by, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
    )
    .bind(entity_id)
    .bind(name)
    .bind(flag(private))
    .bind(created_by)
    .bind(now)
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| conflict_if_taken(e, || format!("collection {name:?} already exists")))?;
    sqlx::query(
        "INSERT INTO collection_members (collection_id, user_id, role) VALUES ($1, $2, 'owner')",
    )
    .bind(id)
    .bind(created_by)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    collection_by_id(db, id)
        .await?
        .ok_or_else(|| Error::Internal("collection vanished after insert".into()))
}

/// Collections created by (or owned by) a user, for the per-user limit.
pub async fn count_collections_created_by(db: &AnyPool, user_id: i64) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM collections WHERE created_by = $1")
            .bind(user_id)
            .fetch_one(db)
            .await?,
    )
}

pub async fn set_collection_private(db: &AnyPool, id: i64, private: bool) -> Result<()> {
    sqlx::query("UPDATE collections SET private = $1, updated_at = $2 WHERE id = $3")
        .bind(flag(private))
        .bind(now_ms())
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

pub async fn add_collection_member(
    db: &AnyPool,
    collection: i64,
    user: i64,
    role: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO collection_members (collection_id, user_id, role) VALUES ($1, $2, $3)
         ON CONFLICT (collection_id, user_id) DO UPDATE SET role = excluded.role",
    )
    .bind(collection)
    .bind(user)
    .bind(role)
    .execute(db)
    .await?;
    Ok(())
}

const CONTAINER_COLUMNS: &str =
    "id, collection_id, name, description, full_description, created_at, updated_at, downloads";

pub async fn container(db: &AnyPool, collection_id: i64, name: &str) -> Result<Option<Container>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {CONTAINER_COLUMNS} FROM containers WHERE collection_id = $1 AND name = $2"
    ))
    .bind(collection_id)
    .bind(name)
    .fetch_optional(db)
    .await?)
}

pub async fn container_by_id(db: &AnyPool, id: i64) -> Result<Option<Container>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {CONTAINER_COLUMNS} FROM containers WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(db)
    .await?)
}

pub async fn containers_of(db: &AnyPool, collection_id: i64) -> Result<Vec<Container>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {CONTAINER_COLUMNS} FROM containers WHERE collection_id = $1 ORDER BY name"
    ))
    .bind(collection_id)
    .fetch_all(db)
    .await?)
}

pub async fn create_container(
    db: &AnyPool,
    collection_id: i64,
    name: &str,
    description: &str,
) -> Result<Container> {
    validate_name("container", name)?;
    let now = now_ms();
    sqlx::query_as(&format!(
        "INSERT INTO containers (collection_id, name, description, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $4) RETURNING {CONTAINER_COLUMNS}"
    ))
    .bind(collection_id)
    .bind(name)
    .bind(description)
    .bind(now)
    .fetch_one(db)
    .await
    .map_err(|e| conflict_if_taken(e, || format!("container {name:?} already exists")))
}

const IMAGE_COLUMNS: &str =
    "id, container_id, hash, size, arch, uploaded, blob_digest, description, signed,
     encrypted, deffile, labels, partitions, build, fingerprints, created_by, created_at,
     uploaded_at, downloads";

/// `sha256.<64 lower-case hex>`, the library API's image hash.
pub fn validate_hash(hash: &str) -> Result<()> {
    let ok = hash.strip_prefix("sha256.").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    });
    if ok {
        Ok(())
    } else {
        Err(Error::BadRequest(format!(
            "image hash {hash:?} is not of the form sha256.<64 lower-case hex digits>"
        )))
    }
}

pub async fn image_by_id(db: &AnyPool, id: i64) -> Result<Option<Image>> {
    Ok(
        sqlx::query_as(&format!("SELECT {IMAGE_COLUMNS} FROM images WHERE id = $1"))
            .bind(id)
            .fetch_optional(db)
            .await?,
    )
}

pub async fn image_by_hash(db: &AnyPool, container_id: i64, hash: &str) -> Result<Option<Image>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {IMAGE_COLUMNS} FROM images WHERE container_id = $1 AND hash = $2"
    ))
    .bind(container_id)
    .bind(hash)
    .fetch_optional(db)
    .await?)
}

pub async fn images_of(db: &AnyPool, container_id: i64) -> Result<Vec<Image>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {IMAGE_COLUMNS} FROM images WHERE container_id = $1 ORDER BY id"
    ))
    .bind(container_id)
    .fetch_all(db)
    .await?)
}

/// The image with this hash in the container, created (not yet uploaded)
/// if missing. Idempotent: the same content pushed twice is one image.
pub async fn get_or_create_image(
    db: &AnyPool,
    container_id: i64,
    hash: &str,
    description: &str,
    created_by: i64,
) -> Result<Image> {
    validate_hash(hash)?;
    sqlx::query(
        "INSERT INTO images (container_id, hash, description, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (container_id, hash) DO NOTHING",
    )
    .bind(container_id)
    .bind(hash)
    .bind(description)
    .bind(created_by)
    .bind(now_ms())
    .execute(db)
    .await?;
    image_by_hash(db, container_id, hash)
        .await?
        .ok_or_else(|| Error::Internal("image vanished after insert".into()))
}

/// What a verified upload tells about an image.
#[derive(Debug, Clone, Default)]
pub struct Published {
    pub size: i64,
    pub arch: String,
    /// `sha256:<hex>`
    pub blob_digest: String,
    pub signed: bool,
    pub encrypted: bool,
    pub deffile: Option<String>,
    pub labels: Option<String>,
    pub partitions: Option<String>,
    pub build: Option<String>,
    pub fingerprints: Option<String>,
}

/// Makes an image visible: records its blob and metadata and sets
/// `uploaded`, in one transaction. The blob must already be in place.
pub async fn publish_image(db: &AnyPool, image_id: i64, p: &Published) -> Result<Image> {
    let mut tx = db.begin().await?;
    let now = now_ms();
    sqlx::query(
        "INSERT INTO blobs (digest, size, created_at) VALUES ($1, $2, $3)
         ON CONFLICT (digest) DO NOTHING",
    )
    .bind(&p.blob_digest)
    .bind(p.size)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE images SET uploaded = 1, size = $1, arch = $2, blob_digest = $3, signed = $4,
                encrypted = $5, deffile = $6, labels = $7, partitions = $8,
                build = COALESCE($9, build), uploaded_at = $10, fingerprints = $11
         WHERE id = $12",
    )
    .bind(p.size)
    .bind(&p.arch)
    .bind(&p.blob_digest)
    .bind(flag(p.signed))
    .bind(flag(p.encrypted))
    .bind(&p.deffile)
    .bind(&p.labels)
    .bind(&p.partitions)
    .bind(&p.build)
    .bind(now)
    .bind(&p.fingerprints)
    .bind(image_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE containers SET updated_at = $1 WHERE id = (SELECT container_id FROM images WHERE id = $2)",
    )
    .bind(now)
    .bind(image_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    image_by_id(db, image_id)
        .await?
        .ok_or_else(|| Error::Internal("image vanished after publish".into()))
}

/// Stores build metadata (JSON) with an image.
pub async fn set_image_build(db: &AnyPool, image_id: i64, build_json: &str) -> Result<()> {
    sqlx::query("UPDATE images SET build = $1 WHERE id = $2")
        .bind(build_json)
        .bind(image_id)
        .execute(db)
        .await?;
    Ok(())
}

/// Deletes an image with its tags. Its blob stays until `gc` finds it
/// unreferenced.
pub async fn delete_image(db: &AnyPool, image_id: i64) -> Result<()> {
    sqlx::query("DELETE FROM images WHERE id = $1")
        .bind(image_id)
        .execute(db)
        .await?;
    Ok(())
}
