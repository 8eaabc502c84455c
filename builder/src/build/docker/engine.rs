//! Reaching the Docker-API engine (Docker or `podman system service`) and
//! finding the image the build runs in.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::query_parameters::CreateImageOptions;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::build::log::BuildLog;

/// Sockets tried, in order, when DOCKER_HOST is not set: Docker's, then
/// rootful podman's. (Rootless podman's is added from XDG_RUNTIME_DIR.)
const DEFAULT_SOCKETS: &[&str] = &["/var/run/docker.sock", "/run/podman/podman.sock"];

/// Requests that stream a whole build (wait, logs, uploads) must not be cut
/// short by bollard's default 2-minute timeout; `--timeout` bounds a build.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);

/// How long a silent engine may take to answer `/_ping` and `/version`.
const HELLO_TIMEOUT: Duration = Duration::from_secs(30);

/// A connected engine and what it says of itself.
pub struct Engine {
    pub docker: Docker,
    /// Where it was reached, as DOCKER_HOST would say it.
    pub host: String,
    /// `Podman Engine`, `Engine` (Docker)...
    pub name: String,
    pub version: String,
    /// The API version in use (the lower of the engine's and bollard's).
    pub api_version: String,
    /// The engine's architecture in Go's words (`amd64`, `arm64`).
    pub arch: Option<String>,
}

/// Connects to DOCKER_HOST, else to the first default socket that exists,
/// and checks that an engine answers.
pub async fn connect() -> Result<Engine> {
    let host = match std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()) {
        Some(h) => h,
        None => default_socket().ok_or_else(|| {
            anyhow!(
                "no Docker-API engine found: DOCKER_HOST is not set and none of {} exists. {}",
                candidate_sockets().join(", "),
                HOW_TO_START
            )
        })?,
    };
    let unreachable = |e: String| {
        anyhow!(
            "no Docker-API engine answers at {host}: {e}. {HOW_TO_START}, and set DOCKER_HOST to \
             its address"
        )
    };
    let docker = Docker::connect_with_host(&host)
        .map_err(|e| unreachable(e.to_string()))?
        .with_timeout(REQUEST_TIMEOUT);
    let hello = async {
        docker.ping().await?;
        docker.clone().negotiate_version().await
    };
    let docker = match tokio::time::timeout(HELLO_TIMEOUT, hello).await {
        Err(_) => return Err(unreachable(format!("no answer in {HELLO_TIMEOUT:?}"))),
        Ok(Err(e)) => return Err(unreachable(e.to_string())),
        Ok(Ok(d)) => d,
    };
    let version = tokio::time::timeout(HELLO_TIMEOUT, docker.version())
        .await
        .map_err(|_| unreachable("no answer to /version".into()))?
        .with_context(|| format!("the engine at {host} did not say its version"))?;
    let name = version
        .components
        .as_ref()
        .and_then(|c| c.first())
        .map(|c| c.name.clone())
        .unwrap_or_else(|| "Engine".into());
    let v = docker.client_version();
    Ok(Engine {
        host,
        name,
        version: version.version.unwrap_or_else(|| "unknown".into()),
        api_version: format!("{}.{}", v.major_version, v.minor_version),
        arch: version.arch,
        docker,
    })
}

const HOW_TO_START: &str = "Start an engine: Docker (`systemctl start docker`), or podman \
    (`podman system service --time=0 unix:///run/podman/podman.sock &`, then \
    DOCKER_HOST=unix:///run/podman/podman.sock)";

fn candidate_sockets() -> Vec<String> {
    let mut out: Vec<String> = DEFAULT_SOCKETS.iter().map(|s| s.to_string()).collect();
    if let Ok(run) = std::env::var("XDG_RUNTIME_DIR") {
        out.push(format!("{run}/podman/podman.sock"));
    }
    out
}

fn default_socket() -> Option<String> {
    candidate_sockets()
        .into_iter()
        .find(|s| Path::new(s).exists())
        .map(|s| format!("unix://{s}"))
}

/// The image a build runs in, as the engine knows it.
pub struct Image {
    pub name: String,
    pub id: String,
    /// `repo@sha256:...`, when the image came from a registry.
    pub digest: Option<String>,
}

/// Finds `name` in the engine, pulling it when missing (anonymously).
/// `default` marks sreg's own default image, which is built locally and
/// never pulled, so its absence gets the recipe for building it.
pub async fn image(
    engine: &Engine,
    name: &str,
    default: bool,
    log: &BuildLog,
    cancel: &CancellationToken,
) -> Result<Image> {
    match engine.docker.inspect_image(name).await {
        Ok(found) => return Ok(image_facts(name, found)),
        Err(DockerError::DockerResponseServerError {
            status_code: 404, ..
        }) => {}
        Err(e) => {
            return Err(anyhow!(
                "cannot look up the image {name} in the engine: {e}"
            ));
        }
    }
    let how_to_build = format!(
        "build it once with `docker build -t {name} scripts/docker` (or `podman build`; the \
         Dockerfile is scripts/docker/Dockerfile in sreg's source tree), or choose an image with \
         --docker-image or SREG_DOCKER_IMAGE (it needs squashfs-tools and a glibc as new as this \
         host's: Debian bookworm or newer)"
    );
    if default {
        bail!(
            "the docker backend's default image {name} is not in the engine at {}: {how_to_build}",
            engine.host
        );
    }
    log.line(format!("docker: {name} is not in the engine: pulling it"));
    let options = CreateImageOptions {
        from_image: Some(name.to_string()),
        ..Default::default()
    };
    let mut pull = engine.docker.create_image(Some(options), None, None);
    let mut last = String::new();
    loop {
        let item = tokio::select! {
            item = pull.next() => item,
            () = cancel.cancelled() => bail!("cancelled while pulling {name}"),
        };
        match item {
            None => break,
            Some(Ok(info)) => {
                // Progress repeats its status for every chunk: log changes only.
                let status = [info.id.as_deref(), info.status.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(": ");
                let progressing = info
                    .progress_detail
                    .as_ref()
                    .is_some_and(|p| p.current.is_some());
                if !progressing && !status.is_empty() && status != last {
                    log.line(format!("docker: {status}"));
                    last = status;
                }
            }
            Some(Err(e)) => bail!(
                "the image {name} is not in the engine at {} and pulling it failed ({e}): pull it \
                 yourself (private registries need `docker login` or `podman login` on the \
                 engine's side), or {how_to_build}",
                engine.host
            ),
        }
    }
    let found = engine
        .docker
        .inspect_image(name)
        .await
        .with_context(|| format!("{name} was pulled but the engine cannot find it"))?;
    Ok(image_facts(name, found))
}

fn image_facts(name: &str, found: bollard::models::ImageInspect) -> Image {
    Image {
        name: name.to_string(),
        id: found.id.unwrap_or_default(),
        digest: found.repo_digests.and_then(|d| d.into_iter().next()),
    }
}

/// Go's name for this machine's architecture, as engines report theirs.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}
