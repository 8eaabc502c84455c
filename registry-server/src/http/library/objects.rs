//! The library API's objects, with the exact keys of library-api.md §3 and
//! the Go client's `models.go`. Ids are the decimal row ids; times are
//! RFC 3339 with a zone (a zone-less time breaks Go's decoder).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use sqlx::AnyPool;

use crate::error::Result;
use crate::model::access::{self, Access, Caller};
use crate::model::accounts::Entity;
use crate::model::catalog::{self, Collection, Container, Image};
use crate::model::{activity, tags};

/// Unix milliseconds as RFC 3339 (UTC, `Z`).
pub fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The base model every object embeds.
fn base(created_by: Option<i64>, created_at: i64, updated_at: i64) -> Value {
    json!({
        "deleted": false,
        "createdBy": created_by.map(|id| id.to_string()).unwrap_or_default(),
        "createdAt": time(created_at),
        "updatedAt": time(updated_at),
    })
}

fn merge(mut base: Value, fields: Value) -> Value {
    if let (Value::Object(b), Value::Object(f)) = (&mut base, fields) {
        b.extend(f);
    }
    base
}

/// An entity, listing the collections `caller` can see.
pub async fn entity(db: &AnyPool, caller: &Caller, e: &Entity) -> Result<Value> {
    let rows: Vec<(i64,)> =
        sqlx::query_as("SELECT id FROM collections WHERE entity_id = $1 ORDER BY id")
            .bind(e.id)
            .fetch_all(db)
            .await?;
    let mut ids = Vec::new();
    for (id,) in rows {
        if let Some(c) = catalog::collection_by_id(db, id).await?
            && access::collection_access(db, caller, &c).await? >= Access::Read
        {
            ids.push(id.to_string());
        }
    }
    let size: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(i.size), 0) AS BIGINT) FROM images i
         JOIN containers k ON k.id = i.container_id
         JOIN collections c ON c.id = k.collection_id
         WHERE c.entity_id = $1 AND i.uploaded = 1",
    )
    .bind(e.id)
    .fetch_one(db)
    .await?;
    Ok(merge(
        base(None, e.created_at, e.created_at),
        json!({
            "id": e.id.to_string(),
            "name": e.name,
            "description": e.description,
            "collections": ids,
            "size": size,
            "quota": 0,
            "defaultPrivate": e.default_private != 0,
            "customData": "",
        }),
    ))
}

pub async fn collection(db: &AnyPool, c: &Collection) -> Result<Value> {
    let containers = catalog::containers_of(db, c.id).await?;
    let size: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(i.size), 0) AS BIGINT) FROM images i
         JOIN containers k ON k.id = i.container_id
         WHERE k.collection_id = $1 AND i.uploaded = 1",
    )
    .bind(c.id)
    .fetch_one(db)
    .await?;
    Ok(merge(
        base(None, c.created_at, c.updated_at),
        json!({
            "id": c.id.to_string(),
            "name": c.name,
            "description": c.description,
            "entity": c.entity_id.to_string(),
            "entityName": c.entity_name,
            "containers": containers.iter().map(|k| k.id.to_string()).collect::<Vec<_>>(),
            "size": size,
            "private": c.private != 0,
            "customData": "",
        }),
    ))
}

/// `archTags`: arch -> tag -> image id.
pub async fn arch_tags(
    db: &AnyPool,
    container_id: i64,
) -> Result<BTreeMap<String, BTreeMap<String, String>>> {
    let mut map: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for t in tags::of_container(db, container_id).await? {
        map.entry(t.arch)
            .or_default()
            .insert(t.name, t.image_id.to_string());
    }
    Ok(map)
}

/// `imageTags`, the arch-less view old clients read: each tag name once,
/// taken from amd64 when several architectures carry it (as `tags::resolve`
/// does without an arch).
pub async fn image_tags(db: &AnyPool, container_id: i64) -> Result<BTreeMap<String, String>> {
    let mut map: BTreeMap<String, (bool, String)> = BTreeMap::new();
    // of_container is ordered by arch, then name: the first arch wins unless amd64 comes later.
    for t in tags::of_container(db, container_id).await? {
        let amd64 = t.arch == "amd64";
        match map.get(&t.name) {
            Some((true, _)) => {}
            Some((false, _)) if !amd64 => {}
            _ => {
                map.insert(t.name, (amd64, t.image_id.to_string()));
            }
        }
    }
    Ok(map.into_iter().map(|(k, (_, v))| (k, v)).collect())
}

pub async fn container(
    db: &AnyPool,
    c: &Collection,
    k: &Container,
    access: Access,
) -> Result<Value> {
    let images: Vec<Image> = catalog::images_of(db, k.id)
        .await?
        .into_iter()
        .filter(Image::is_uploaded)
        .collect();
    let size: i64 = images.iter().map(|i| i.size).sum();
    let stars = activity::star_count(db, k.id).await?;
    Ok(merge(
        base(None, k.created_at, k.updated_at),
        json!({
            "id": k.id.to_string(),
            "name": k.name,
            "description": k.description,
            "fullDescription": k.full_description,
            "collection": c.id.to_string(),
            "images": images.iter().map(|i| i.id.to_string()).collect::<Vec<_>>(),
            "imageTags": image_tags(db, k.id).await?,
            "archTags": arch_tags(db, k.id).await?,
            "size": size,
            "downloadCount": k.downloads,
            "stars": stars,
            "private": c.private != 0,
            "readOnly": access < Access::Write,
            "customData": "",
            "entity": c.entity_id.to_string(),
            "entityName": c.entity_name,
            "collectionName": c.name,
        }),
    ))
}

pub async fn image(db: &AnyPool, c: &Collection, k: &Container, i: &Image) -> Result<Value> {
    // One name per tag, whatever the architectures it is set for.
    let tag_names: BTreeSet<String> = tags::of_image(db, i.id)
        .await?
        .into_iter()
        .map(|t| t.name)
        .collect();
    let stars = activity::star_count(db, k.id).await?;
    let mut v = merge(
        base(
            i.created_by,
            i.created_at,
            i.uploaded_at.unwrap_or(i.created_at),
        ),
        json!({
            "id": i.id.to_string(),
            "hash": i.hash,
            "description": i.description,
            "container": k.id.to_string(),
            "size": i.size,
            "uploaded": i.is_uploaded(),
            "signed": i.signed != 0,
            "encrypted": i.encrypted != 0,
            "fingerprints": i.fingerprints.as_deref()
                .and_then(|f| serde_json::from_str::<Vec<String>>(f).ok())
                .unwrap_or_default(),
            "customData": "",
            "entity": c.entity_id.to_string(),
            "entityName": c.entity_name,
            "collection": c.id.to_string(),
            "collectionName": c.name,
            "containerName": k.name,
            "tags": tag_names,
            "containerDescription": k.description,
            "containerStars": stars,
            "containerDownloads": k.downloads,
        }),
    );
    // Go decodes `arch` into a *string: absent rather than empty when unknown.
    if !i.arch.is_empty()
        && let Value::Object(m) = &mut v
    {
        m.insert("arch".into(), Value::String(i.arch.clone()));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_with_a_zone() {
        assert_eq!(time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(time(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }
}
