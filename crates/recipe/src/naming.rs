//! Container names and tags derived from recipe paths (the rule is in the
//! crate docs).

use std::path::{Component, Path};

use serde::Serialize;

use crate::error::NameError;

/// The longest name or tag accepted (the OCI limit for tags).
pub const MAX_LEN: usize = 128;

/// Name, tag (and collection, when the tree is deep enough) of one recipe.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ImageName {
    /// The directory two levels up, when the recipe is that deep in the tree.
    pub collection: Option<String>,
    pub name: String,
    pub tag: String,
}

impl std::fmt::Display for ImageName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.name, self.tag)
    }
}

/// The raw tag a recipe file name gives, before sanitizing.
///
/// `Singularity`, `Apptainer`, `Singularity.def`, `Apptainer.def` → `latest`;
/// `Singularity.<tag>`, `Apptainer.<tag>` → everything after the first dot;
/// `<tag>.def` → `<tag>`; any other name (matched by a custom glob) → the
/// name before its last dot.
pub fn raw_tag(file_name: &str) -> &str {
    for prefix in ["Singularity", "Apptainer"] {
        if let Some(rest) = file_name.strip_prefix(prefix) {
            if rest.is_empty() || rest == ".def" {
                return "latest";
            }
            if let Some(tag) = rest.strip_prefix('.') {
                return tag;
            }
        }
    }
    if let Some(stem) = file_name.strip_suffix(".def") {
        return stem;
    }
    match file_name.rfind('.') {
        Some(i) if i > 0 => &file_name[..i],
        _ => file_name,
    }
}

/// Maps a name or tag onto `[a-z0-9._-]`: ASCII letters are lower-cased,
/// every other character becomes `-`, and `.`, `-`, `_` are trimmed from both
/// ends. Refused: nothing left, or more than [`MAX_LEN`] characters.
pub fn sanitize(what: &str, original: &str) -> Result<String, NameError> {
    let mapped: String = original
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let s = mapped.trim_matches(['.', '-', '_']);
    if s.is_empty() {
        return Err(NameError::Empty {
            what: what.to_owned(),
            original: original.to_owned(),
        });
    }
    if s.len() > MAX_LEN {
        return Err(NameError::TooLong {
            what: what.to_owned(),
            original: original.to_owned(),
            len: s.len(),
        });
    }
    Ok(s.to_owned())
}

/// Derives the image name of a recipe from its path relative to the tree
/// root; `root_name` names the container of recipes at the root itself.
pub fn derive(relative: &Path, root_name: &str) -> Result<ImageName, NameError> {
    let parts: Vec<String> = relative
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    let (file, dirs) = match parts.split_last() {
        Some((f, d)) => (f.as_str(), d),
        None => ("", &[][..]),
    };
    let tag = sanitize("tag", raw_tag(file))?;
    let (name, collection) = match dirs {
        [] => (root_name, None),
        [.., c, n] => (n.as_str(), Some(c.as_str())),
        [n] => (n.as_str(), None),
    };
    Ok(ImageName {
        collection: collection.map(|c| sanitize("collection", c)).transpose()?,
        name: sanitize("name", name)?,
        tag,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(p: &str) -> String {
        derive(Path::new(p), "repo").map_or_else(|e| format!("error: {e}"), |n| n.to_string())
    }

    #[test]
    fn documented_examples() {
        assert_eq!(d("Singularity"), "repo:latest");
        assert_eq!(d("Apptainer"), "repo:latest");
        assert_eq!(d("Singularity.v1.0"), "repo:v1.0");
        assert_eq!(d("envs/Singularity.gpu"), "envs:gpu");
        assert_eq!(d("tools/samtools.def"), "tools:samtools");
        assert_eq!(d("a/b/Singularity.def"), "b:latest");
        assert_eq!(d("My Tools/Apptainer.CUDA 12"), "my-tools:cuda-12");
        assert_eq!(
            d("x/Singularity."),
            "error: tag `` has no character of [a-z0-9] left after sanitizing: expected at least one letter or digit"
        );
        assert_eq!(
            d("__/Singularity"),
            "error: name `__` has no character of [a-z0-9] left after sanitizing: expected at least one letter or digit"
        );
    }

    #[test]
    fn collection_is_two_levels_up() {
        let n = derive(Path::new("bio/blast/Singularity.2.14"), "r").ok();
        assert_eq!(
            n,
            Some(ImageName {
                collection: Some("bio".into()),
                name: "blast".into(),
                tag: "2.14".into()
            })
        );
    }

    #[test]
    fn too_long_is_refused() {
        let long = format!("Singularity.{}", "a".repeat(129));
        assert!(matches!(
            derive(Path::new(&long), "r"),
            Err(NameError::TooLong { len: 129, .. })
        ));
    }

    #[test]
    fn non_ascii_maps_to_dash() {
        assert_eq!(sanitize("tag", "Café_Ünï").ok().as_deref(), Some("caf-_-n"));
    }
}
