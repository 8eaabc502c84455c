//! The JSON shapes of the shub protocol, and the one query behind the
//! listings (search, collections, labels): tagged, uploaded images with
//! their container and collection.

use std::collections::HashMap;

use serde_json::{Value, json};
use sqlx::{AnyPool, FromRow};

use crate::error::Result;
use crate::model::access::{Access, Caller, collection_access};
use crate::model::catalog::Collection;

/// Unix milliseconds as ISO 8601 (UTC), as DRF shows dates.
pub fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// One tag of one uploaded image.
#[derive(Debug, Clone, FromRow)]
pub struct Tagged {
    pub collection_id: i64,
    pub entity_id: i64,
    pub entity_name: String,
    pub collection: String,
    pub private: i64,
    pub collection_created: i64,
    pub collection_updated: i64,
    pub container_id: i64,
    pub container: String,
    pub tag: String,
    pub arch: String,
    pub frozen: i64,
    pub tag_updated: i64,
    pub image_id: i64,
    pub hash: String,
    pub size: i64,
    pub image_arch: String,
    pub labels: Option<String>,
}

impl Tagged {
    pub fn uri(&self) -> String {
        format!("{}/{}:{}", self.collection, self.container, self.tag)
    }

    /// Enough of the collection for the access rules.
    pub fn collection_row(&self) -> Collection {
        Collection {
            id: self.collection_id,
            entity_id: self.entity_id,
            entity_name: self.entity_name.clone(),
            name: self.collection.clone(),
            description: String::new(),
            private: self.private,
            created_at: self.collection_created,
            updated_at: self.collection_updated,
            downloads: 0,
        }
    }
}

/// What to select.
#[derive(Debug, Default)]
pub struct Filter<'a> {
    /// Container names containing this (lower-case) text.
    pub name_contains: Option<&'a str>,
    pub tag: Option<&'a str>,
    pub collection: Option<&'a str>,
    pub collection_id: Option<i64>,
    pub labelled: bool,
}

/// `LIKE` pattern matching `text` anywhere, with its wildcards escaped.
fn contains_pattern(text: &str) -> String {
    let mut p = String::from("%");
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// Tagged, uploaded images matching `filter`, one row per tag name: when
/// a tag exists for several architectures, the amd64 one (else the first),
/// as a pull without architecture would get.
pub async fn tagged(db: &AnyPool, filter: &Filter<'_>) -> Result<Vec<Tagged>> {
    let mut sql = String::from(
        "SELECT c.id AS collection_id, c.entity_id, e.name AS entity_name, c.name AS collection,
                c.private, c.created_at AS collection_created, c.updated_at AS collection_updated,
                k.id AS container_id, k.name AS container, t.name AS tag, t.arch, t.frozen,
                t.updated_at AS tag_updated, i.id AS image_id, i.hash, i.size,
                i.arch AS image_arch, i.labels
         FROM tags t
         JOIN images i ON i.id = t.image_id
         JOIN containers k ON k.id = t.container_id
         JOIN collections c ON c.id = k.collection_id
         JOIN entities e ON e.id = c.entity_id
         WHERE i.uploaded = 1",
    );
    let mut texts: Vec<String> = Vec::new();
    if let Some(n) = filter.name_contains {
        texts.push(contains_pattern(n));
        sql += &format!(" AND k.name LIKE ${} ESCAPE '\\'", texts.len());
    }
    if let Some(t) = filter.tag {
        texts.push(t.to_string());
        sql += &format!(" AND t.name = ${}", texts.len());
    }
    if let Some(c) = filter.collection {
        texts.push(c.to_string());
        sql += &format!(" AND c.name = ${}", texts.len());
    }
    if let Some(id) = filter.collection_id {
        // An integer, so it goes in as such rather than as a parameter of
        // another type.
        sql += &format!(" AND c.id = {id}");
    }
    if filter.labelled {
        sql += " AND i.labels IS NOT NULL";
    }
    sql += " ORDER BY c.name, e.name, k.name, t.name, t.arch";
    let mut query = sqlx::query_as::<_, Tagged>(&sql);
    for t in &texts {
        query = query.bind(t);
    }
    let rows = query.fetch_all(db).await?;
    // One row per (container, tag): amd64 first, else the first arch.
    let mut out: Vec<Tagged> = Vec::with_capacity(rows.len());
    for row in rows {
        match out.last_mut() {
            Some(last) if last.container_id == row.container_id && last.tag == row.tag => {
                if row.arch == "amd64" {
                    *last = row;
                }
            }
            _ => out.push(row),
        }
    }
    Ok(out)
}

/// Keeps the rows whose collection `caller` can see.
pub async fn only_visible(db: &AnyPool, caller: &Caller, rows: Vec<Tagged>) -> Result<Vec<Tagged>> {
    let mut seen: HashMap<i64, bool> = HashMap::new();
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let visible = match seen.get(&row.collection_id) {
            Some(v) => *v,
            None => {
                let v = collection_access(db, caller, &row.collection_row()).await? >= Access::Read;
                seen.insert(row.collection_id, v);
                v
            }
        };
        if visible {
            out.push(row);
        }
    }
    Ok(out)
}

/// An image's `metadata`: what the SIF said about it.
pub fn metadata(size: i64, arch: &str, labels: Option<&str>, entity: &str) -> Value {
    let labels = labels
        .and_then(|l| serde_json::from_str::<Value>(l).ok())
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    json!({
        "size": size,
        "size_mb": (size as f64 / 1_048_576.0 * 100.0).round() / 100.0,
        "arch": arch,
        "labels": labels,
        "entity": entity,
    })
}

/// A container as sregistry's search answers it (no download link).
pub fn container(row: &Tagged) -> Value {
    json!({
        "id": row.image_id,
        "name": row.container,
        "tag": row.tag,
        "version": row.hash,
        "add_date": iso(row.tag_updated),
        "metrics": {},
        "frozen": row.frozen != 0,
        "metadata": metadata(row.size, &row.image_arch, row.labels.as_deref(), &row.entity_name),
        "collection": row.collection,
        "uri": row.uri(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(contains_pattern("a_b%c\\"), "%a\\_b\\%c\\\\%");
    }

    #[test]
    fn dates_are_utc_iso() {
        assert_eq!(iso(1_704_110_400_000), "2024-01-01T12:00:00Z");
    }

    #[test]
    fn metadata_keeps_only_object_labels() {
        let m = metadata(3 << 20, "amd64", Some(r#"{"a":"b"}"#), "alice");
        assert_eq!(m["labels"]["a"], "b");
        assert_eq!(m["size_mb"], 3.0);
        let m = metadata(1, "", Some("[1]"), "alice");
        assert_eq!(m["labels"], json!({}));
    }
}
