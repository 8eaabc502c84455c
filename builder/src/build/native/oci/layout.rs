//! Images on disk: an OCI image layout folder (`Bootstrap: oci`), a tar of
//! one (`oci-archive`), and a `docker save` / `podman save` tar
//! (`docker-archive`). The archives are unpacked into the build's work
//! folder first.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;

use super::image::{Candidate, FetchedImage, choose_platform, verify_digest};
use crate::build::log::BuildLog;

const INDEX_TYPES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];
const REF_NAME: &str = "org.opencontainers.image.ref.name";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    #[serde(default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    platform: Option<Platform>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct Platform {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
    #[serde(default)]
    variant: Option<String>,
}

/// An index (`index.json`, or an index blob) or a manifest: both have
/// `mediaType`; one has `manifests`, the other `config` and `layers`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
}

/// Splits `path[:ref]` (`ref` may hold colons, as `repo:tag` does): the
/// whole text when such a path exists, else the shortest prefix before a
/// `:` that exists.
pub fn split_ref(from: &str, base: &Path) -> (PathBuf, Option<String>) {
    let whole = base.join(from);
    if whole.exists() {
        return (whole, None);
    }
    for (i, _) in from.match_indices(':') {
        let path = base.join(&from[..i]);
        if path.exists() && i + 1 < from.len() {
            return (path, Some(from[i + 1..].to_string()));
        }
    }
    (whole, None)
}

/// Reads an OCI image layout folder: the manifest named `tag` (by its
/// `org.opencontainers.image.ref.name`), or the only one. Blobs stay where
/// they are; each is checked against its digest.
pub fn read_layout(dir: &Path, tag: Option<&str>, log: &BuildLog) -> Result<FetchedImage> {
    if !dir.join("oci-layout").is_file() {
        bail!(
            "{} is not an OCI image layout (it has no `oci-layout` file)",
            dir.display()
        );
    }
    let index: Document = read_json(&dir.join("index.json"))?;
    let entries = index.manifests.unwrap_or_default();
    let chosen = match tag {
        Some(tag) => entries
            .iter()
            .find(|d| {
                d.annotations.get(REF_NAME).map(String::as_str) == Some(tag)
                    || d.annotations
                        .get("io.containerd.image.name")
                        .is_some_and(|n| n.ends_with(&format!(":{tag}")))
            })
            .ok_or_else(|| {
                anyhow!(
                    "{} has no image tagged `{tag}` (it has {})",
                    dir.display(),
                    names(&entries)
                )
            })?,
        None => match entries.as_slice() {
            [one] => one,
            [] => bail!("{} holds no image", dir.display()),
            _ => bail!(
                "{} holds several images ({}): name one as `From: {}:NAME`",
                dir.display(),
                names(&entries),
                dir.display()
            ),
        },
    };
    let mut descriptor = chosen;
    let mut doc: Document = read_blob_json(dir, descriptor)?;
    let index_doc;
    if is_index(descriptor, &doc) {
        index_doc = doc;
        let manifests = index_doc.manifests.as_deref().unwrap_or_default();
        let candidates: Vec<Candidate> = manifests
            .iter()
            .map(|m| match &m.platform {
                Some(p) => Candidate {
                    os: p.os.clone(),
                    arch: p.architecture.clone(),
                    variant: p.variant.clone(),
                },
                None => Candidate::default(),
            })
            .collect();
        let i = choose_platform(&candidates).map_err(|e| anyhow!("{}: {e}", dir.display()))?;
        descriptor = &manifests[i];
        log.line(format!(
            "the layout's image is an index: taking {}",
            descriptor.digest
        ));
        doc = read_blob_json(dir, descriptor)?;
    }
    let (Some(config), Some(layers)) = (doc.config, doc.layers) else {
        bail!(
            "{} in {} is not an image manifest",
            descriptor.digest,
            dir.display()
        );
    };
    let config_path = blob_path(dir, &config.digest)?;
    verify_digest(&config_path, &config.digest)?;
    let config_bytes = std::fs::read(&config_path)
        .with_context(|| format!("cannot read {}", config_path.display()))?;
    let mut files = Vec::new();
    for layer in &layers {
        if layer.media_type.contains("encrypted") {
            bail!(
                "{} has encrypted layers, which the native backend cannot read",
                dir.display()
            );
        }
        let path = blob_path(dir, &layer.digest)?;
        verify_digest(&path, &layer.digest)?;
        files.push(path);
    }
    log.line(format!(
        "OCI layout {}: manifest {}, {} layers, digests verified",
        dir.display(),
        descriptor.digest,
        files.len()
    ));
    Ok(FetchedImage {
        config: config_bytes,
        layers: files,
        resolved: format!("{}@{}", dir.display(), descriptor.digest),
    })
}

/// A `docker save` tar, unpacked in `dir`: the image tagged `tag`, or the
/// only one.
pub fn read_docker_save(dir: &Path, tag: Option<&str>, shown: &str) -> Result<FetchedImage> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Entry {
        config: String,
        #[serde(default)]
        repo_tags: Option<Vec<String>>,
        layers: Vec<String>,
    }
    let entries: Vec<Entry> = read_json(&dir.join("manifest.json"))
        .with_context(|| format!("{shown} is not a `docker save` archive"))?;
    let tags = |e: &Entry| e.repo_tags.clone().unwrap_or_default();
    let chosen = match tag {
        Some(t) => entries
            .iter()
            .find(|e| {
                tags(e)
                    .iter()
                    .any(|r| r == t || r.ends_with(&format!("/{t}")))
            })
            .ok_or_else(|| {
                let all: Vec<String> = entries.iter().flat_map(tags).collect();
                anyhow!("{shown} has no image `{t}` (it has {})", all.join(", "))
            })?,
        None => match entries.as_slice() {
            [one] => one,
            [] => bail!("{shown} holds no image"),
            _ => {
                let all: Vec<String> = entries.iter().flat_map(tags).collect();
                bail!(
                    "{shown} holds several images ({}): name one as `From: {shown}:REPO:TAG`",
                    all.join(", ")
                )
            }
        },
    };
    let inside = |rel: &str| -> Result<PathBuf> {
        let path =
            safe_path::scoped_join(dir, rel).with_context(|| format!("{shown}: bad path {rel}"))?;
        if !path.is_file() {
            bail!("{shown} lacks {rel}, which its manifest.json names");
        }
        Ok(path)
    };
    let config_path = inside(&chosen.config)?;
    let config = std::fs::read(&config_path)
        .with_context(|| format!("cannot read {}", config_path.display()))?;
    let layers = chosen
        .layers
        .iter()
        .map(|l| inside(l))
        .collect::<Result<Vec<_>>>()?;
    Ok(FetchedImage {
        config,
        layers,
        resolved: match tags(chosen).first() {
            Some(t) => format!("{shown} ({t})"),
            None => shown.to_string(),
        },
    })
}

/// Unpacks an archive (a local tar, maybe compressed) into `dest`.
pub fn unpack_archive(archive: &Path, dest: &Path) -> Result<()> {
    let (reader, _) = super::layers::open(archive)?;
    std::fs::create_dir_all(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    let mut tar = tar::Archive::new(reader);
    // tar's own unpack refuses `..` and writes through no link outside.
    tar.unpack(dest)
        .with_context(|| format!("cannot unpack {}", archive.display()))
}

fn is_index(descriptor: &Descriptor, doc: &Document) -> bool {
    INDEX_TYPES.contains(&descriptor.media_type.as_str())
        || doc
            .media_type
            .as_deref()
            .is_some_and(|m| INDEX_TYPES.contains(&m))
        || (doc.manifests.is_some() && doc.layers.is_none())
}

fn names(entries: &[Descriptor]) -> String {
    let names: Vec<&str> = entries
        .iter()
        .filter_map(|d| d.annotations.get(REF_NAME).map(String::as_str))
        .collect();
    if names.is_empty() {
        format!("{} untagged", entries.len())
    } else {
        names.join(", ")
    }
}

fn blob_path(dir: &Path, digest: &str) -> Result<PathBuf> {
    let Some((alg, hex)) = digest.split_once(':') else {
        bail!("`{digest}` is not a digest");
    };
    let valid = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric());
    if !valid(alg) || !valid(hex) {
        bail!("`{digest}` is not a digest");
    }
    let path = dir.join("blobs").join(alg).join(hex);
    if !path.is_file() {
        bail!("{} lacks the blob {digest}", dir.display());
    }
    Ok(path)
}

fn read_blob_json<T: for<'de> Deserialize<'de>>(dir: &Path, d: &Descriptor) -> Result<T> {
    let path = blob_path(dir, &d.digest)?;
    verify_digest(&path, &d.digest)?;
    read_json(&path)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{} is not valid JSON", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_and_tag_are_split_only_where_no_such_path_exists() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("odd:name")).unwrap();
        let (p, t) = split_ref("odd:name", dir.path());
        assert_eq!((p, t), (dir.path().join("odd:name"), None));
        std::fs::create_dir(dir.path().join("layout")).unwrap();
        let (p, t) = split_ref("layout:v1", dir.path());
        assert_eq!((p, t.as_deref()), (dir.path().join("layout"), Some("v1")));
        std::fs::write(dir.path().join("img.tar"), "").unwrap();
        let (p, t) = split_ref("img.tar:repo/x:1", dir.path());
        assert_eq!(
            (p, t.as_deref()),
            (dir.path().join("img.tar"), Some("repo/x:1"))
        );
        let (p, t) = split_ref("missing:1", dir.path());
        assert_eq!((p, t), (dir.path().join("missing:1"), None));
    }
}
