//! Tags (library-api.md §5). v2 tags are per architecture and set the
//! image's arch; v1 tags are arch-less for the client, stored here under the
//! image's own architecture (known from its SIF), so that every client sees
//! the same tags. Tag POSTs must answer exactly 200.

use axum::extract::State;
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::Value;

use super::envelope::{ApiResult, JsonBody, LibPath, data};
use super::{container_by_id, objects, parse_id, require_write};
use crate::error::{Error, Result};
use crate::model::access::Caller;
use crate::model::catalog::{self, Container, Image};
use crate::model::tags;
use crate::publish;
use crate::serve::AppState;

pub async fn get_v2(
    State(state): State<AppState>,
    headers: HeaderMap,
    LibPath(id): LibPath<String>,
) -> ApiResult {
    let caller = crate::http::auth::caller(&state, &headers).await?;
    let (_, k, _) = container_by_id(&state, &caller, parse_id("container", &id)?).await?;
    Ok(data(objects::arch_tags(&state.db.pool, k.id).await?))
}

pub async fn get_v1(
    State(state): State<AppState>,
    headers: HeaderMap,
    LibPath(id): LibPath<String>,
) -> ApiResult {
    let caller = crate::http::auth::caller(&state, &headers).await?;
    let (_, k, _) = container_by_id(&state, &caller, parse_id("container", &id)?).await?;
    Ok(data(objects::image_tags(&state.db.pool, k.id).await?))
}

/// The v2 body. The Go struct has no JSON tags, hence the capitals.
#[derive(Debug, Deserialize)]
pub struct ArchTag {
    #[serde(default, alias = "arch")]
    #[serde(rename = "Arch")]
    arch: String,
    #[serde(default, alias = "tag")]
    #[serde(rename = "Tag")]
    tag: String,
    #[serde(default, alias = "imageID", alias = "imageId")]
    #[serde(rename = "ImageID")]
    image_id: String,
}

pub async fn set_v2(
    State(state): State<AppState>,
    headers: HeaderMap,
    LibPath(id): LibPath<String>,
    JsonBody(body): JsonBody<ArchTag>,
) -> ApiResult {
    let (caller, _) = super::signed_in(&state, &headers).await?;
    let k = writable_container(&state, &caller, &id).await?;
    if sreg_sif::Arch::from_name(&body.arch).is_none() {
        return Err(Error::BadRequest(format!(
            "{:?} is not an architecture (amd64, arm64, ppc64le, ...)",
            body.arch
        ))
        .into());
    }
    let image = tag_target(&state, &k, &body.image_id).await?;
    publish::check_arch(&image, &body.arch)?;
    let db = &state.db.pool;
    if image.arch.is_empty() {
        // A SIF without a primary partition names no arch: the tag does.
        sqlx::query("UPDATE images SET arch = $1 WHERE id = $2 AND arch = ''")
            .bind(&body.arch)
            .bind(image.id)
            .execute(db)
            .await?;
    }
    tags::set(db, k.id, &body.arch, &body.tag, image.id).await?;
    Ok(data(objects::arch_tags(db, k.id).await?))
}

/// v1: `{"Tag":"t","ImageID":"id"}`, or the older map form
/// `{"t":"id", ...}` where an empty id removes the tag.
pub async fn set_v1(
    State(state): State<AppState>,
    headers: HeaderMap,
    LibPath(id): LibPath<String>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult {
    let (caller, _) = super::signed_in(&state, &headers).await?;
    let k = writable_container(&state, &caller, &id).await?;
    let pairs = v1_pairs(&body)?;
    let db = &state.db.pool;
    // Validate everything before changing anything.
    for (tag, _) in &pairs {
        tags::validate_tag(tag)?;
    }
    for (tag, image_id) in pairs {
        if image_id.is_empty() {
            for t in tags::of_container(db, k.id).await? {
                if t.name == tag {
                    tags::delete(db, k.id, &t.arch, &tag).await?;
                }
            }
            continue;
        }
        let image = tag_target(&state, &k, &image_id).await?;
        tags::set(db, k.id, &image.arch, &tag, image.id).await?;
    }
    Ok(data(objects::image_tags(db, k.id).await?))
}

fn v1_pairs(body: &Value) -> Result<Vec<(String, String)>> {
    let bad = || {
        Error::BadRequest(
            r#"expected {"Tag":"<tag>","ImageID":"<image id>"} or {"<tag>":"<image id>",...}"#
                .into(),
        )
    };
    let map = body.as_object().ok_or_else(bad)?;
    let field = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| map.get(*n))
            .and_then(Value::as_str)
    };
    if let (Some(tag), Some(image)) = (
        field(&["Tag", "tag"]),
        field(&["ImageID", "imageID", "imageId"]),
    ) {
        return Ok(vec![(tag.to_string(), image.to_string())]);
    }
    map.iter()
        .map(|(k, v)| {
            v.as_str()
                .map(|v| (k.clone(), v.to_string()))
                .ok_or_else(bad)
        })
        .collect()
}

async fn writable_container(state: &AppState, caller: &Caller, id: &str) -> Result<Container> {
    let (c, k, access) = container_by_id(state, caller, parse_id("container", id)?).await?;
    require_write(caller, access, &super::container_path(&c, &k))?;
    Ok(k)
}

/// The image a tag may point at: in this container, and uploaded.
async fn tag_target(state: &AppState, k: &Container, image_id: &str) -> Result<Image> {
    let id = parse_id("image", image_id)?;
    let image = catalog::image_by_id(&state.db.pool, id)
        .await?
        .filter(|i| i.container_id == k.id)
        .ok_or_else(|| Error::not_found(format!("image {id} in container {}", k.name)))?;
    if !image.is_uploaded() {
        return Err(Error::BadRequest(format!(
            "image {id} has not been uploaded yet: it cannot be tagged"
        )));
    }
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn v1_bodies_of_both_shapes() {
        assert_eq!(
            v1_pairs(&json!({"Tag": "latest", "ImageID": "7"})).unwrap(),
            vec![("latest".to_string(), "7".to_string())]
        );
        assert_eq!(
            v1_pairs(&json!({"a": "1", "b": ""})).unwrap(),
            vec![("a".into(), "1".into()), ("b".into(), "".into())]
        );
        assert!(v1_pairs(&json!(["x"])).is_err());
        assert!(v1_pairs(&json!({"a": 1})).is_err());
    }

    #[test]
    fn v2_body_keys_as_go_sends_them() {
        let t: ArchTag =
            serde_json::from_value(json!({"Arch":"amd64","Tag":"latest","ImageID":"3"})).unwrap();
        assert_eq!(
            (t.arch.as_str(), t.tag.as_str(), t.image_id.as_str()),
            ("amd64", "latest", "3")
        );
    }
}
