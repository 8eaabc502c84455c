//! Two-part names (architecture.md, "Names"): `c/n:t` means the one
//! collection named `c` that the caller can see, whatever entity owns it.
//! When the caller can see several, the name is ambiguous and the answer is
//! a 409 naming them; shub and sregistry-cli cannot say which they mean.

use crate::error::{Error, Result};
use crate::model::access::{Access, Caller, collection_access};
use crate::model::catalog::{self, Collection};
use crate::serve::AppState;

/// The collections named `name` that `caller` can see, with the caller's
/// access to each.
pub async fn visible(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> Result<Vec<(Collection, Access)>> {
    let mut out = Vec::new();
    for c in catalog::collections_named(&state.db.pool, name).await? {
        let access = collection_access(&state.db.pool, caller, &c).await?;
        if access >= Access::Read {
            out.push((c, access));
        }
    }
    Ok(out)
}

/// The one collection named `name` that `caller` can see, if any.
pub async fn collection(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> Result<Option<(Collection, Access)>> {
    let mut found = visible(state, caller, name).await?;
    if found.len() > 1 {
        return Err(ambiguous(name, &found));
    }
    Ok(found.pop())
}

fn ambiguous(name: &str, found: &[(Collection, Access)]) -> Error {
    let full: Vec<String> = found
        .iter()
        .map(|(c, _)| format!("{}/{}", c.entity_name, c.name))
        .collect();
    Error::Conflict(format!(
        "the collection name {name:?} is ambiguous: it names {}; a two-part name cannot say which \
         one is meant: use the library:// name (ENTITY/{name}/...) or ask an owner to rename one",
        full.join(" and ")
    ))
}

/// `name[:tag][@version]`, the last segment of a shub name. The tag
/// defaults to `latest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub name: String,
    pub tag: String,
    pub version: Option<String>,
}

pub fn reference(segment: &str) -> Result<Reference> {
    let (rest, version) = match segment.split_once('@') {
        Some((rest, v)) => (rest, Some(v.to_string())),
        None => (segment, None),
    };
    let (name, tag) = match rest.split_once(':') {
        Some((n, t)) => (n, t),
        None => (rest, "latest"),
    };
    if name.is_empty() || tag.is_empty() || version.as_deref() == Some("") {
        return Err(Error::BadRequest(format!(
            "{segment:?} is not of the form NAME[:TAG][@VERSION]"
        )));
    }
    Ok(Reference {
        name: name.to_string(),
        tag: tag.to_string(),
        version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        let r = reference("hello:v1@sha256.abc").unwrap();
        assert_eq!(
            r,
            Reference {
                name: "hello".into(),
                tag: "v1".into(),
                version: Some("sha256.abc".into())
            }
        );
        let r = reference("hello").unwrap();
        assert_eq!(
            (r.name.as_str(), r.tag.as_str(), r.version),
            ("hello", "latest", None)
        );
        for bad in ["", ":t", "n:", "n@", ":"] {
            assert!(reference(bad).is_err(), "{bad:?}");
        }
    }
}
