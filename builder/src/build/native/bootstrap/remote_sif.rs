//! `Bootstrap: library`, `shub` and `oras`: a SIF image from a registry,
//! downloaded into the build's work folder, checked against the hash the
//! registry gives, and its root filesystem unpacked.
//!
//! | agent | `From:` | where by default |
//! |---|---|---|
//! | `library` | `[library://][HOST/]ENTITY/COLLECTION/CONTAINER[:TAG]` | `Library:` header, else the registry sreg is set up for (`SREG_REGISTRY` or `sreg login`), else library.sylabs.io |
//! | `shub` | `[shub://][HOST/]COLLECTION/CONTAINER[:TAG][@VERSION]` | the registry sreg is set up for |
//! | `oras` | `[oras://]HOST/REPO[:TAG\|@DIGEST]` | (always names its host) |
//!
//! A host without a scheme is reached over HTTPS, or HTTP with `--nohttps`.
//! The token of sreg's registry goes only to that registry.

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use oci_client::Reference;
use sreg_recipe::Stage;

use super::SourceConfig;
use crate::build::job::Job;
use crate::build::native::oci::image::host_platform;
use crate::build::native::oci::pull::{Registry, SIF_LAYER_MEDIA_TYPE};
use crate::build::native::registry_http::{RegistryHttp, check_hash};
use crate::build::native::unpack;
use crate::registry;

/// The Sylabs Container Library, Apptainer's default for `library://`.
const SYLABS_LIBRARY: &str = "https://library.sylabs.io";
/// The layer type Singularity before 3.7 pushed, still found in registries.
const LEGACY_SIF_LAYER: &str = "appliciation/vnd.sylabs.sif.layer.tar";

pub async fn bootstrap(job: &Job<'_>, stage: &Stage, rootfs: &Path) -> Result<SourceConfig> {
    let agent = stage.bootstrap();
    let from = stage.from().map(str::trim).unwrap_or_default();
    if from.is_empty() {
        // The caller names the stage and its line.
        bail!("`Bootstrap: {agent}` needs `From:` (the image to start from)");
    }
    let sif = job.work_dir.join(format!("{agent}-source.sif"));
    let resolved = match agent.as_str() {
        "library" => library(job, stage, from, &sif).await,
        "shub" => shub(job, from, &sif).await,
        "oras" => oras(job, from, &sif).await,
        other => bail!("`Bootstrap: {other}` is not a SIF source"),
    }
    .with_context(|| format!("cannot get `From: {from}`"))?;
    let unpacked = unpack::extract_sif(job, &sif, rootfs).await?;
    // The root filesystem is out: the image is no longer needed.
    let _ = tokio::fs::remove_file(&sif).await;
    Ok(SourceConfig {
        arch: unpacked.arch,
        resolved: Some(resolved),
        ..SourceConfig::default()
    })
}

/// `library://`: `GET /v1/images/PATH:TAG?arch=` for the hash, then
/// `GET /v1/imagefile/PATH:TAG?arch=` (redirects followed).
async fn library(job: &Job<'_>, stage: &Stage, from: &str, dest: &Path) -> Result<String> {
    let r = LibraryRef::parse(from)?;
    let header = stage
        .get("library")
        .map(str::trim)
        .filter(|l| !l.is_empty());
    let http = match (header, &r.host) {
        (Some(url), _) => client_for(&with_scheme(url, job.nohttps))?,
        (None, Some(host)) => client_for(&with_scheme(host, job.nohttps))?,
        (None, None) => match registry::target() {
            Ok(target) => client_for(&target.url)?,
            Err(e) => {
                job.log
                    .line(format!("{e:#}; pulling from {SYLABS_LIBRARY} instead"));
                client_for(SYLABS_LIBRARY)?
            }
        },
    };
    let (arch, _) = host_platform();
    let name = format!("{}:{}", r.path, r.tag);
    let what = format!("library image {name} for {arch}");
    job.log.line(format!("looking up {what} at {}", http.base));
    let image = http
        .json(
            job,
            &http.url(&format!("/v1/images/{name}?arch={arch}")),
            &what,
        )
        .await?;
    let data = image.get("data").unwrap_or(&image);
    let hash = data
        .get("hash")
        .and_then(|h| h.as_str())
        .ok_or_else(|| anyhow!("the library's record of {name} has no hash"))?
        .to_string();
    if data.get("uploaded").and_then(|u| u.as_bool()) == Some(false) {
        bail!("{name} has no uploaded image yet");
    }
    let (actual, _) = http
        .download(
            job,
            &http.url(&format!("/v1/imagefile/{name}?arch={arch}")),
            &what,
            dest,
        )
        .await?;
    check_hash(&actual, &hash, &what)?;
    let host = http
        .base
        .split_once("://")
        .map_or(http.base.as_str(), |(_, h)| h);
    Ok(format!("library://{host}/{name}@{hash}"))
}

/// `shub://`: `GET /api/container/COLLECTION/NAME:TAG[@VERSION]`, then the
/// `image` link it gives.
async fn shub(job: &Job<'_>, from: &str, dest: &Path) -> Result<String> {
    let r = ShubRef::parse(from)?;
    let http = match &r.host {
        Some(host) => client_for(&with_scheme(host, job.nohttps))?,
        None => {
            let target = registry::target().map_err(|e| {
                anyhow!(
                    "{e:#}; or name the registry in the image: `From: shub://HOST/{}`",
                    r.name()
                )
            })?;
            client_for(&target.url)?
        }
    };
    let name = r.name();
    let what = format!("shub container {name}");
    job.log.line(format!("looking up {what} at {}", http.base));
    let record = http
        .json(job, &http.url(&format!("/api/container/{name}")), &what)
        .await?;
    let Some(image) = record.get("image").and_then(|i| i.as_str()) else {
        // sregistry answers some errors as a 200 with a bare number.
        bail!("the registry's record of {name} has no image link: {record}");
    };
    let link = url::Url::parse(&format!("{}/", http.base))
        .and_then(|base| base.join(image))
        .with_context(|| format!("the registry gives {name} a bad image link `{image}`"))?;
    let (actual, _) = http.download(job, link.as_str(), &what, dest).await?;
    let version = record.get("version").and_then(|v| v.as_str()).unwrap_or("");
    if version.starts_with("sha256") {
        check_hash(&actual, version, &what)?;
    } else {
        job.log.line(format!(
            "the registry gives no sha256 for {name} (version `{version}`): not checked"
        ));
    }
    let host = http
        .base
        .split_once("://")
        .map_or(http.base.as_str(), |(_, h)| h);
    Ok(format!("shub://{host}/{name}@sha256.{actual}"))
}

/// `oras://`: the manifest (an index resolved to the host platform), its
/// one SIF layer, digest-checked.
async fn oras(job: &Job<'_>, from: &str, dest: &Path) -> Result<String> {
    let text = from.trim_start_matches("oras://");
    let reference: Reference = text
        .parse()
        .map_err(|e| anyhow!("`{text}` is not a valid ORAS reference: {e}"))?;
    let registry = Registry::new(job.nohttps);
    job.log.line(format!("pulling the SIF of {reference}"));
    let (manifest, digest) = registry.manifest(job, &reference).await?;
    let sifs: Vec<_> = manifest
        .layers
        .iter()
        .filter(|l| l.media_type == SIF_LAYER_MEDIA_TYPE || l.media_type == LEGACY_SIF_LAYER)
        .collect();
    let layer = match sifs.as_slice() {
        [one] => *one,
        [] => {
            let types: Vec<&str> = manifest
                .layers
                .iter()
                .map(|l| l.media_type.as_str())
                .collect();
            bail!(
                "{reference} holds no SIF (layers: {}): for a container image use `Bootstrap: docker`",
                if types.is_empty() {
                    "none".to_string()
                } else {
                    types.join(", ")
                }
            );
        }
        _ => bail!(
            "{reference} holds {} SIF layers; one was expected",
            sifs.len()
        ),
    };
    registry.blob(job, &reference, layer, dest).await?;
    let size = tokio::fs::metadata(dest)
        .await
        .map(|m| m.len())
        .unwrap_or(0);
    job.log.line(format!(
        "downloaded {} ({}), digest verified",
        layer.digest,
        crate::build::native::oci::image::human_bytes(size)
    ));
    Ok(format!(
        "oras://{}/{}@{digest}",
        reference.registry(),
        reference.repository()
    ))
}

/// A client for `base`, with the token of sreg's registry when `base` is
/// that registry.
fn client_for(base: &str) -> Result<RegistryHttp> {
    let target = registry::target().ok();
    let same = |a: &str, b: &str| {
        a.trim()
            .trim_end_matches('/')
            .eq_ignore_ascii_case(b.trim().trim_end_matches('/'))
    };
    match target.filter(|t| same(&t.url, base)) {
        Some(t) => RegistryHttp::new(base, t.token.clone(), registry::login_hint(&t)),
        None => RegistryHttp::new(
            base,
            None,
            format!(
                "sreg sends no token to {base} (only to its own registry, SREG_REGISTRY or \
                 `sreg login`): a private image must come from there"
            ),
        ),
    }
}

/// `host[/path]` as a URL: HTTPS, or HTTP with `--nohttps`; a URL as given.
fn with_scheme(host: &str, nohttps: bool) -> String {
    if host.starts_with("http://") || host.starts_with("https://") {
        host.to_string()
    } else if nohttps {
        format!("http://{host}")
    } else {
        format!("https://{host}")
    }
}

/// `[library://][HOST/]ENTITY/COLLECTION/CONTAINER[:TAG]`; one to three
/// path parts (the library fills in defaults), a host only before three.
#[derive(Debug, PartialEq)]
struct LibraryRef {
    host: Option<String>,
    path: String,
    tag: String,
}

impl LibraryRef {
    fn parse(from: &str) -> Result<LibraryRef> {
        let text = from
            .trim()
            .trim_start_matches("library://")
            .trim_start_matches("library:");
        let parts: Vec<&str> = text.split('/').collect();
        let (host, parts) = match parts.len() {
            4 => (Some(parts[0].to_string()), &parts[1..]),
            1..=3 => (None, &parts[..]),
            _ => bail!(
                "`{from}` is not a library reference: \
                 [library://][HOST/]ENTITY/COLLECTION/CONTAINER[:TAG]"
            ),
        };
        let (last, tag) = split_tag(parts[parts.len() - 1]);
        let mut path: Vec<&str> = parts[..parts.len() - 1].to_vec();
        path.push(last);
        if path.iter().any(|p| p.is_empty()) || host.as_deref() == Some("") {
            bail!("`{from}` has an empty part");
        }
        Ok(LibraryRef {
            host,
            path: path.join("/"),
            tag: tag.unwrap_or("latest").to_string(),
        })
    }
}

/// `[shub://][HOST/]COLLECTION/CONTAINER[:TAG][@VERSION]`.
#[derive(Debug, PartialEq)]
struct ShubRef {
    host: Option<String>,
    collection: String,
    container: String,
    tag: String,
    version: Option<String>,
}

impl ShubRef {
    fn parse(from: &str) -> Result<ShubRef> {
        let text = from.trim().trim_start_matches("shub://");
        let parts: Vec<&str> = text.split('/').collect();
        let (host, collection, rest) = match parts.as_slice() {
            [h, c, rest] => (Some(h.to_string()), *c, *rest),
            [c, rest] => (None, *c, *rest),
            _ => bail!(
                "`{from}` is not a shub reference: [shub://][HOST/]COLLECTION/CONTAINER[:TAG][@VERSION]"
            ),
        };
        let (rest, version) = match rest.split_once('@') {
            Some((r, v)) => (r, Some(v.to_string())),
            None => (rest, None),
        };
        let (container, tag) = split_tag(rest);
        if collection.is_empty() || container.is_empty() || host.as_deref() == Some("") {
            bail!("`{from}` has an empty part");
        }
        Ok(ShubRef {
            host,
            collection: collection.to_string(),
            container: container.to_string(),
            tag: tag.unwrap_or("latest").to_string(),
            version,
        })
    }

    /// `COLLECTION/CONTAINER:TAG[@VERSION]`, as `/api/container/` takes it.
    fn name(&self) -> String {
        let mut name = format!("{}/{}:{}", self.collection, self.container, self.tag);
        if let Some(v) = &self.version {
            name.push('@');
            name.push_str(v);
        }
        name
    }
}

fn split_tag(last: &str) -> (&str, Option<&str>) {
    match last.split_once(':') {
        Some((name, tag)) if !tag.is_empty() => (name, Some(tag)),
        Some((name, _)) => (name, None),
        None => (last, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_references_take_an_optional_host_and_tag() {
        let r = LibraryRef::parse("library://alice/tools/samtools:1.17").unwrap();
        assert_eq!(
            r,
            LibraryRef {
                host: None,
                path: "alice/tools/samtools".into(),
                tag: "1.17".into()
            }
        );
        let r = LibraryRef::parse("lib.example:8080/alice/tools/samtools").unwrap();
        assert_eq!(r.host.as_deref(), Some("lib.example:8080"));
        assert_eq!(r.tag, "latest");
        let r = LibraryRef::parse("alpine:3.20").unwrap();
        assert_eq!((r.path.as_str(), r.tag.as_str()), ("alpine", "3.20"));
        assert!(LibraryRef::parse("a/b/c/d/e").is_err());
        assert!(LibraryRef::parse("alice//x").is_err());
    }

    #[test]
    fn shub_references_take_host_tag_and_version() {
        let r = ShubRef::parse("shub://reg.example/coll/name:v1@sha256.abc").unwrap();
        assert_eq!(r.host.as_deref(), Some("reg.example"));
        assert_eq!(r.name(), "coll/name:v1@sha256.abc");
        let r = ShubRef::parse("coll/name").unwrap();
        assert_eq!(
            (r.host.clone(), r.name()),
            (None, "coll/name:latest".to_string())
        );
        assert!(ShubRef::parse("name").is_err());
        assert!(ShubRef::parse("a/b/c/d").is_err());
    }

    #[test]
    fn hosts_get_https_unless_nohttps() {
        assert_eq!(with_scheme("h:1", false), "https://h:1");
        assert_eq!(with_scheme("h:1", true), "http://h:1");
        assert_eq!(with_scheme("http://h", false), "http://h");
    }
}
