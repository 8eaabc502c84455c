//! Pulls an image from an OCI registry (Docker Hub, a private registry,
//! Debian's `docker-registry`) with oci-client: manifest (an index resolved
//! to the build host's platform), config and layers into the build's work
//! folder, every blob checked against its digest.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::{OciDescriptor, OciImageManifest, OciManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use super::image::{Candidate, FetchedImage, choose_platform, human_bytes};
use crate::build::job::Job;
use crate::build::native::registry_http::chain;

/// The media type of a SIF pushed with ORAS (`apptainer push oras://`).
pub const SIF_LAYER_MEDIA_TYPE: &str = "application/vnd.sylabs.sif.layer.v1.sif";

/// Credentials for registries, in this order: sreg's own variables, then
/// Apptainer's and Singularity's, so recipes and CI set up for those work.
const CREDENTIAL_ENV: [(&str, &str); 3] = [
    ("SREG_DOCKER_USERNAME", "SREG_DOCKER_PASSWORD"),
    ("APPTAINER_DOCKER_USERNAME", "APPTAINER_DOCKER_PASSWORD"),
    ("SINGULARITY_DOCKER_USERNAME", "SINGULARITY_DOCKER_PASSWORD"),
];

/// A client and the credentials to use with it.
pub struct Registry {
    pub client: Client,
    pub auth: RegistryAuth,
    nohttps: bool,
    /// Which variables the credentials came from, for messages.
    auth_from: Option<&'static str>,
}

impl Registry {
    /// A client speaking HTTPS, or plain HTTP with `--nohttps`.
    pub fn new(nohttps: bool) -> Registry {
        let config = ClientConfig {
            protocol: if nohttps {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            // We resolve indexes ourselves, to say what was there on failure.
            platform_resolver: None,
            ..ClientConfig::default()
        };
        let (auth, auth_from) = credentials();
        Registry {
            client: Client::new(config),
            auth,
            nohttps,
            auth_from,
        }
    }

    /// The image manifest for the build host, and its digest.
    pub async fn manifest(
        &self,
        job: &Job<'_>,
        reference: &Reference,
    ) -> Result<(OciImageManifest, String)> {
        let (manifest, digest) = cancellable(job, self.client.pull_manifest(reference, &self.auth))
            .await?
            .map_err(|e| self.explain(e, reference))?;
        match manifest {
            OciManifest::Image(m) => Ok((m, digest)),
            OciManifest::ImageIndex(index) => {
                let candidates: Vec<Candidate> = index
                    .manifests
                    .iter()
                    .map(|m| match &m.platform {
                        Some(p) => Candidate {
                            os: p.os.to_string(),
                            arch: p.architecture.to_string(),
                            variant: p.variant.clone(),
                        },
                        None => Candidate::default(),
                    })
                    .collect();
                let chosen =
                    choose_platform(&candidates).map_err(|e| anyhow!("{reference}: {e}"))?;
                let entry = &index.manifests[chosen];
                job.log.line(format!(
                    "{reference} is an index of {} images: taking {} ({})",
                    index.manifests.len(),
                    entry.digest,
                    describe(&candidates[chosen])
                ));
                let by_digest = reference.clone_with_digest(entry.digest.clone());
                let (manifest, digest) =
                    cancellable(job, self.client.pull_manifest(&by_digest, &self.auth))
                        .await?
                        .map_err(|e| self.explain(e, &by_digest))?;
                match manifest {
                    OciManifest::Image(m) => Ok((m, digest)),
                    OciManifest::ImageIndex(_) => {
                        bail!("{by_digest} is an index inside an index, which images do not use")
                    }
                }
            }
        }
    }

    /// Downloads one blob to `dest`, its digest checked on the way.
    pub async fn blob(
        &self,
        job: &Job<'_>,
        reference: &Reference,
        descriptor: &OciDescriptor,
        dest: &Path,
    ) -> Result<()> {
        let file = tokio::fs::File::create(dest)
            .await
            .with_context(|| format!("cannot create {}", dest.display()))?;
        let result = cancellable(job, async {
            let mut out = tokio::io::BufWriter::with_capacity(1 << 20, file);
            self.client.pull_blob(reference, descriptor, &mut out).await
        })
        .await;
        let result = match result {
            Ok(r) => r.map_err(|e| self.explain(e, reference)),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            let _ = tokio::fs::remove_file(dest).await;
            return Err(e.context(format!("cannot download {}", descriptor.digest)));
        }
        Ok(())
    }

    /// A registry error in words a user can act on.
    pub fn explain(&self, e: OciDistributionError, reference: &Reference) -> anyhow::Error {
        let host = reference.registry();
        let login = match self.auth_from {
            Some(var) => format!("the registry refused the credentials in {var}"),
            None => "if the image is private, set SREG_DOCKER_USERNAME and SREG_DOCKER_PASSWORD"
                .to_string(),
        };
        match &e {
            OciDistributionError::UnauthorizedError { .. }
            | OciDistributionError::AuthenticationFailure(_)
            | OciDistributionError::ServerError {
                code: 401 | 403, ..
            } => {
                anyhow!("{host} refused access to {reference} ({e}): {login}")
            }
            OciDistributionError::RegistryError { envelope, .. }
                if envelope.errors.iter().any(|x| {
                    matches!(x.code, OciErrorCode::Unauthorized | OciErrorCode::Denied)
                }) =>
            {
                anyhow!("{host} refused access to {reference} ({envelope}): {login}")
            }
            OciDistributionError::RegistryError { envelope, .. }
                if envelope.errors.iter().any(|x| {
                    matches!(
                        x.code,
                        OciErrorCode::ManifestUnknown
                            | OciErrorCode::NameUnknown
                            | OciErrorCode::NotFound
                            | OciErrorCode::BlobUnknown
                    )
                }) =>
            {
                anyhow!("{reference} was not found on {host} ({envelope})")
            }
            OciDistributionError::ServerError { code: 404, .. } => {
                anyhow!("{reference} was not found on {host} ({e})")
            }
            OciDistributionError::DigestError(_) => {
                anyhow!("{host} sent content for {reference} that does not match its digest: {e}")
            }
            OciDistributionError::RequestError(inner) => {
                let hint = if self.nohttps {
                    ""
                } else {
                    " (a registry that speaks plain HTTP needs --nohttps or SREG_NOHTTPS=true)"
                };
                anyhow!(
                    "cannot reach {host} for {reference}: {}{hint}",
                    chain(inner)
                )
            }
            _ => anyhow!("cannot pull {reference} from {host}: {e}"),
        }
    }
}

/// Pulls `reference` (an image, not an artifact) into `job.work_dir`.
pub async fn fetch_image(job: &Job<'_>, reference: &Reference) -> Result<FetchedImage> {
    let registry = Registry::new(job.nohttps);
    job.log.line(format!(
        "pulling {reference} over {}{}",
        if job.nohttps { "HTTP" } else { "HTTPS" },
        match registry.auth_from {
            Some(var) => format!(" as the user in {var}"),
            None => String::new(),
        }
    ));
    let (manifest, digest) = registry.manifest(job, reference).await?;
    for layer in &manifest.layers {
        check_layer_type(&layer.media_type, reference)?;
    }
    let total: i64 = manifest.layers.iter().map(|l| l.size.max(0)).sum();
    job.log.line(format!(
        "manifest {digest}: {} layers, {} compressed",
        manifest.layers.len(),
        human_bytes(total as u64)
    ));

    let mut config = Vec::new();
    cancellable(
        job,
        registry
            .client
            .pull_blob(reference, &manifest.config, &mut config),
    )
    .await?
    .map_err(|e| registry.explain(e, reference))
    .context("cannot download the image config")?;

    let dir = job.work_dir.join("oci-layers");
    tokio::fs::create_dir_all(&dir)
        .await
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let mut layers: Vec<PathBuf> = Vec::new();
    for (i, layer) in manifest.layers.iter().enumerate() {
        let name = layer.digest.replace(':', "-");
        let dest = dir.join(format!("{i:03}-{name}"));
        let started = Instant::now();
        registry.blob(job, reference, layer, &dest).await?;
        let size = tokio::fs::metadata(&dest)
            .await
            .map(|m| m.len())
            .unwrap_or(0);
        let secs = started.elapsed().as_secs_f64();
        job.log.line(format!(
            "layer {}/{} {} {} in {secs:.1} s ({}/s), digest verified",
            i + 1,
            manifest.layers.len(),
            layer.digest,
            human_bytes(size),
            human_bytes((size as f64 / secs.max(0.001)) as u64)
        ));
        layers.push(dest);
    }
    Ok(FetchedImage {
        config,
        layers,
        resolved: format!(
            "{}/{}@{digest}",
            reference.registry(),
            reference.repository()
        ),
    })
}

/// Refuses layers that are not file-system tars, with what to do instead.
pub fn check_layer_type(media_type: &str, reference: &Reference) -> Result<()> {
    if media_type == SIF_LAYER_MEDIA_TYPE {
        bail!(
            "{reference} is a SIF image stored with ORAS, not a container image: use `Bootstrap: oras`"
        );
    }
    if media_type.contains("encrypted") {
        bail!(
            "{reference} has encrypted layers ({media_type}), which the native backend cannot read"
        );
    }
    let tar = media_type.contains(".tar") || media_type.contains("rootfs.diff");
    if !tar {
        bail!(
            "{reference} has a layer of type {media_type}, not a file-system layer: \
             it is not a container image"
        );
    }
    Ok(())
}

/// Parses a `From:` of `Bootstrap: docker` the way Apptainer does: an
/// optional `docker://`, with the `Registry:` and `Namespace:` headers put
/// in front; Docker Hub defaults (`alpine` is docker.io/library/alpine:latest).
pub fn docker_reference(
    from: &str,
    registry: Option<&str>,
    namespace: Option<&str>,
) -> Result<Reference> {
    let mut text = from
        .trim()
        .trim_start_matches("docker://")
        .trim_start_matches("//")
        .to_string();
    if text.is_empty() {
        bail!("`From:` names no image");
    }
    if let Some(ns) = namespace.map(str::trim).filter(|n| !n.is_empty()) {
        text = format!("{}/{text}", ns.trim_matches('/'));
    }
    if let Some(reg) = registry.map(str::trim).filter(|r| !r.is_empty()) {
        let reg = reg
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/');
        text = format!("{reg}/{text}");
    }
    text.parse::<Reference>()
        .map_err(|e| anyhow!("`{text}` is not a valid image reference: {e}"))
}

/// The credentials from the environment, and which variable gave them.
fn credentials() -> (RegistryAuth, Option<&'static str>) {
    for (user, password) in CREDENTIAL_ENV {
        let u = std::env::var(user).ok().filter(|v| !v.is_empty());
        let p = std::env::var(password).ok().filter(|v| !v.is_empty());
        if let (Some(u), Some(p)) = (u, p) {
            return (RegistryAuth::Basic(u, p), Some(user));
        }
    }
    (RegistryAuth::Anonymous, None)
}

/// Runs `f` unless the build is cancelled first.
pub async fn cancellable<T>(job: &Job<'_>, f: impl std::future::Future<Output = T>) -> Result<T> {
    tokio::select! {
        out = f => Ok(out),
        () = job.cancel.cancelled() => bail!("cancelled"),
    }
}

fn describe(c: &Candidate) -> String {
    match &c.variant {
        Some(v) => format!("{}/{}/{v}", c.os, c.arch),
        None => format!("{}/{}", c.os, c.arch),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_references_follow_apptainer() {
        let r = docker_reference("alpine", None, None).unwrap();
        assert_eq!(r.registry(), "docker.io");
        assert_eq!(r.repository(), "library/alpine");
        assert_eq!(r.tag(), Some("latest"));
        let r = docker_reference("docker://127.0.0.1:5000/a/b:1.2", None, None).unwrap();
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "a/b");
        assert_eq!(r.tag(), Some("1.2"));
        let r = docker_reference("tool:3", Some("quay.io"), Some("biocontainers")).unwrap();
        assert_eq!(r.registry(), "quay.io");
        assert_eq!(r.repository(), "biocontainers/tool");
        let digest = format!("sha256:{}", "a".repeat(64));
        let r = docker_reference(&format!("ubuntu@{digest}"), None, None).unwrap();
        assert_eq!(r.digest(), Some(digest.as_str()));
        assert!(docker_reference("", None, None).is_err());
        assert!(docker_reference("library/UPPER", None, None).is_err());
    }

    #[test]
    fn only_file_system_layers_are_taken() {
        let r: Reference = "x/y:z".parse().unwrap();
        for ok in [
            "application/vnd.oci.image.layer.v1.tar",
            "application/vnd.oci.image.layer.v1.tar+gzip",
            "application/vnd.oci.image.layer.v1.tar+zstd",
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
        ] {
            check_layer_type(ok, &r).unwrap();
        }
        let err = check_layer_type(SIF_LAYER_MEDIA_TYPE, &r).unwrap_err();
        assert!(err.to_string().contains("Bootstrap: oras"));
        assert!(
            check_layer_type("application/vnd.oci.image.layer.v1.tar+gzip+encrypted", &r).is_err()
        );
        assert!(check_layer_type("application/wasm", &r).is_err());
    }
}

#[cfg(test)]
mod registry_tests {
    use sreg_tests::oci_registry::{LayerBuilder, OciRegistry, TestImage, host_arch, sample_image};

    use super::*;
    use crate::build::native::oci::test_job::TestJob;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn an_image_and_an_index_are_pulled_from_docker_registry_and_unpacked() {
        let registry = OciRegistry::start();
        registry.push_image("test/sample", "1", &sample_image(host_arch()));
        let other = if host_arch() == "amd64" {
            "arm64"
        } else {
            "amd64"
        };
        let marker = |text: &str| {
            TestImage::new(
                host_arch(),
                vec![LayerBuilder::new().file("platform", text.as_bytes())],
                serde_json::json!({}),
            )
        };
        let (mine, theirs) = (marker("host"), marker("other"));
        registry.push_index(
            "test/multi",
            "1",
            &[("linux", other, &theirs), ("linux", host_arch(), &mine)],
        );

        let dir = tempfile::tempdir().unwrap();
        let t = TestJob::new(dir.path(), "Bootstrap: scratch\n", &["--nohttps"]);
        let job = t.job();
        let rootfs = dir.path().join("rootfs");
        std::fs::create_dir(&rootfs).unwrap();
        runtime().block_on(async {
            let r =
                docker_reference(&format!("{}/test/sample:1", registry.host), None, None).unwrap();
            let image = fetch_image(&job, &r).await.unwrap();
            assert!(
                image
                    .resolved
                    .starts_with(&format!("{}/test/sample@sha256:", registry.host))
            );
            let config = super::super::image::unpack(&job, image, &rootfs)
                .await
                .unwrap();
            assert_eq!(config.cmd, ["echo hello from the image"]);
            assert_eq!(config.working_dir.as_deref(), Some("/opt/app"));
            assert_eq!(config.arch.as_deref(), Some(host_arch()));

            let multi = rootfs.join("multi");
            std::fs::create_dir(&multi).unwrap();
            let r = docker_reference("test/multi:1", Some(&registry.host), None).unwrap();
            let image = fetch_image(&job, &r).await.unwrap();
            super::super::image::unpack(&job, image, &multi)
                .await
                .unwrap();
            assert_eq!(
                std::fs::read_to_string(multi.join("platform")).unwrap(),
                "host"
            );
        });
        let read = |p: &str| std::fs::read_to_string(rootfs.join(p)).unwrap();
        assert_eq!(read("etc/sreg-test"), "layer two");
        assert!(!rootfs.join("etc/doomed").exists());
        assert!(!rootfs.join("opt/app/old").exists());
        assert!(!rootfs.join("opt/app/sub").exists());
        assert_eq!(read("opt/app/new"), "new");
        assert_eq!(read("usr/lib/added"), "through the link");
        let log = t.log_text();
        assert!(log.contains("digest verified"), "{log}");
        assert!(log.contains("is an index of 2 images"), "{log}");
        // Downloaded layers are removed once applied.
        assert_eq!(
            std::fs::read_dir(dir.path().join("work/oci-layers"))
                .unwrap()
                .count(),
            0
        );
    }

    #[test]
    fn missing_images_corrupt_blobs_and_https_mistakes_get_clear_errors() {
        let registry = OciRegistry::start();
        let image = sample_image(host_arch());
        registry.push_image("test/sample", "1", &image);
        let dir = tempfile::tempdir().unwrap();
        let plain = TestJob::new(dir.path(), "Bootstrap: scratch\n", &["--nohttps"]);
        let tls = TestJob::new(dir.path(), "Bootstrap: scratch\n", &[]);
        let rt = runtime();
        let pull = |t: &TestJob, what: &str| {
            let job = t.job();
            let r = docker_reference(&format!("{}/{what}", registry.host), None, None).unwrap();
            rt.block_on(fetch_image(&job, &r)).map(|_| ()).unwrap_err()
        };

        let err = format!("{:#}", pull(&plain, "test/sample:2"));
        assert!(err.contains("was not found on"), "{err}");
        let err = format!("{:#}", pull(&plain, "test/nothing:1"));
        assert!(err.contains("was not found on"), "{err}");
        let err = format!("{:#}", pull(&tls, "test/sample:1"));
        assert!(err.contains("--nohttps"), "{err}");

        // The registry serves whatever its storage holds: change a layer.
        let layer = sreg_tests::oci_registry::digest(&image.layers[1]);
        std::fs::write(registry.blob_file(&layer), b"not the layer").unwrap();
        let err = format!("{:#}", pull(&plain, "test/sample:1"));
        assert!(err.contains("does not match its digest"), "{err}");
    }
}
