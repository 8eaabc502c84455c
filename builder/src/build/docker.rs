//! The docker backend: the build runs inside a fresh container of a
//! Docker-API engine (Docker, or podman's `podman system service`), so an
//! untrusted recipe never runs on the build host.
//!
//! sreg uploads its own executable and the recipe's folder into the
//! container with the archive API (no bind mounts: the engine may be remote
//! or rootless), runs `sreg build --backend native` there while the
//! container's output streams into the build log, downloads the image, and
//! removes the container whatever happens.

mod archive;
mod context;
mod engine;
mod logs;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, KillContainerOptions, RemoveContainerOptions, WaitContainerOptions,
};
use clap::ValueEnum;
use futures_util::StreamExt;

use super::job::{BackendInfo, Job};
use context::Context;

/// The image builds run in unless `--docker-image` says otherwise; built
/// from scripts/docker/Dockerfile (the error for a missing one says how).
pub const DEFAULT_IMAGE: &str = "localhost/sreg-builder:latest";

/// Label on every build container, to find leftovers of a killed sreg:
/// `docker rm -f $(docker ps -aq --filter label=org.sreg.build)`.
pub const LABEL: &str = "org.sreg.build";

/// sreg's own folder inside the container.
const SREG_DIR: &str = "/sreg-build";
const SREG_EXE: &str = "/sreg-build/sreg";
const OUT_DIR: &str = "/sreg-build/out";
const OUT_IMAGE: &str = "/sreg-build/out/image.sif";
const OUT_RECORD: &str = "/sreg-build/out/image.build.json";

/// Host variables passed into the container, when set: recipes fetch their
/// sources through the same proxy as on the host, pull private base images
/// with the same credentials, and keep a reproducible build's timestamp.
const PASSED_ENV: &[&str] = &[
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "SREG_DOCKER_USERNAME",
    "SREG_DOCKER_PASSWORD",
    "APPTAINER_DOCKER_USERNAME",
    "APPTAINER_DOCKER_PASSWORD",
    "SINGULARITY_DOCKER_USERNAME",
    "SINGULARITY_DOCKER_PASSWORD",
    "SOURCE_DATE_EPOCH",
];

pub async fn build(job: &Job<'_>) -> Result<BackendInfo> {
    let context = Context::of(job)?;
    let engine = engine::connect().await?;
    job.log.line(format!(
        "docker: {} {} at {} (API {})",
        engine.name, engine.version, engine.host, engine.api_version
    ));
    if let Some(arch) = engine.arch.as_deref().filter(|a| *a != engine::host_arch()) {
        bail!(
            "the engine at {} runs on {arch} but this sreg is built for {}: the docker backend \
             runs this very executable in the container, so use an engine on a {} machine",
            engine.host,
            engine::host_arch(),
            engine::host_arch()
        );
    }
    let image_name = job.args.docker_image.as_deref().unwrap_or(DEFAULT_IMAGE);
    let image = engine::image(
        &engine,
        image_name,
        job.args.docker_image.is_none(),
        &job.log,
        &job.cancel,
    )
    .await?;
    job.log
        .line(format!("docker: image {} ({})", image.name, image.id));

    let name = format!(
        "sreg-build-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0)
    );
    let created = engine
        .docker
        .create_container(
            Some(CreateContainerOptions {
                name: Some(name),
                ..Default::default()
            }),
            container_config(job, &context, image_name),
        )
        .await
        .with_context(|| format!("the engine cannot create a container of {image_name}"))?;
    let id = created.id;
    job.log.line(format!("docker: container {id}"));

    let outcome = run_container(&engine.docker, &id, job, &context).await;
    remove(&engine.docker, &id, job).await;
    let inner = outcome?;

    let mut info = BackendInfo::new("docker", Some(engine.version.clone()));
    let details = &mut info.details;
    details.insert("engine".into(), engine.name);
    details.insert("engine_api_version".into(), engine.api_version);
    details.insert("image".into(), image.name);
    details.insert("image_id".into(), image.id);
    if let Some(digest) = image.digest {
        details.insert("image_digest".into(), digest);
    }
    details.insert("container".into(), id);
    details.insert("inner_backend".into(), inner.backend);
    if let Some(v) = inner.backend_version {
        details.insert("inner_backend_version".into(), v);
    }
    Ok(info)
}

/// The container: sreg itself as the entrypoint, root inside (the
/// container is the sandbox), no mounts, no extra privileges.
fn container_config(job: &Job<'_>, context: &Context, image: &str) -> ContainerCreateBody {
    let env: Vec<String> = PASSED_ENV
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| format!("{k}={v}")))
        .collect();
    ContainerCreateBody {
        image: Some(image.to_string()),
        entrypoint: Some(vec![SREG_EXE.to_string()]),
        cmd: Some(inner_args(job)),
        working_dir: Some(context.workdir.display().to_string()),
        user: Some("0".into()),
        env: Some(env),
        tty: Some(false),
        labels: Some(HashMap::from([
            (LABEL.to_string(), "1".to_string()),
            (
                "org.sreg.recipe".to_string(),
                job.recipe_path.display().to_string(),
            ),
        ])),
        host_config: Some(HostConfig {
            network_mode: job.args.docker_network.clone(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `sreg build --backend native ...` as run inside. The outer sreg keeps
/// `--timeout`: it kills the container when the time is up.
fn inner_args(job: &Job<'_>) -> Vec<String> {
    let mut args: Vec<String> = [
        "build",
        "--backend",
        "native",
        "--force",
        "--output",
        OUT_IMAGE,
    ]
    .map(String::from)
    .to_vec();
    if let Some(isolation) = job.isolation.to_possible_value() {
        args.extend(["--isolation".into(), isolation.get_name().to_string()]);
    }
    args.extend(["--squashfs-comp".into(), job.args.squashfs_comp.clone()]);
    for (k, v) in &job.build_args {
        args.extend(["--build-arg".into(), format!("{k}={v}")]);
    }
    if job.notest {
        args.push("--notest".into());
    }
    if job.nohttps {
        args.push("--nohttps".into());
    }
    args.push(job.recipe_path.display().to_string());
    args
}

/// What the inner sreg's build record says.
struct Inner {
    backend: String,
    backend_version: Option<String>,
}

/// Upload, start, follow, wait, download: everything between create and
/// remove, stopped early by `job.cancel`.
async fn run_container(
    docker: &Docker,
    id: &str,
    job: &Job<'_>,
    context: &Context,
) -> Result<Inner> {
    let exe = own_executable()?;
    let items = vec![
        archive::Item::Dir {
            dest: SREG_DIR.into(),
            mode: 0o755,
        },
        archive::Item::File {
            src: exe,
            dest: SREG_EXE.into(),
            mode: 0o755,
        },
        archive::Item::Dir {
            dest: OUT_DIR.into(),
            mode: 0o755,
        },
        archive::Item::Tree {
            src: context.dir.clone(),
            dest: context.dir.display().to_string(),
            skip: context.skip_filter(),
        },
    ];
    let sent = tokio::select! {
        r = archive::upload(docker, id, items) => r?,
        () = job.cancel.cancelled() => bail!("cancelled"),
    };
    job.log.line(format!(
        "docker: uploaded sreg and {} ({} files, {} bytes)",
        context.dir.display(),
        sent.files,
        sent.bytes
    ));

    docker
        .start_container(id, None)
        .await
        .map_err(|e| start_error(e, &job.log))?;
    // The container stays until removed, so waiting after the start cannot
    // miss a quick exit: the engine answers at once with its code.
    let mut wait = Box::pin(docker.wait_container(id, None::<WaitContainerOptions>));
    let follower = logs::follow(docker.clone(), id.to_string(), job.log.clone());
    let code = tokio::select! {
        w = wait.next() => match w {
            Some(Ok(r)) => r.status_code,
            Some(Err(DockerError::DockerContainerWaitError { code, .. })) => code,
            Some(Err(e)) => return Err(anyhow!("lost the build container: {e}")),
            None => bail!("the engine stopped answering about the build container"),
        },
        () = job.cancel.cancelled() => {
            follower.abort();
            bail!("cancelled");
        }
    };
    // The log stream ends with the container; bound the wait all the same.
    match tokio::time::timeout(Duration::from_secs(30), follower).await {
        Ok(Ok(Err(e))) => job.log.line(format!("docker: {e:#}")),
        Ok(_) => {}
        Err(_) => job
            .log
            .line("docker: the container's output did not end; going on"),
    }
    if code != 0 {
        let mut err = anyhow!("the build inside the container failed (exit code {code})");
        let tail = job.log.tail(40);
        if tail.contains("GLIBC_") || tail.contains(&format!("exec {SREG_EXE}")) {
            err = err.context(
                "the image cannot run this sreg, which needs a glibc at least as new as the \
                 build host's: choose an image based on Debian bookworm or newer (--docker-image)",
            );
        }
        return Err(err);
    }

    let record_path = job.work_dir.join("inner.build.json");
    tokio::select! {
        r = archive::download_file(docker, id, OUT_RECORD, &record_path) => r?,
        () = job.cancel.cancelled() => bail!("cancelled"),
    };
    let record: serde_json::Value = serde_json::from_slice(&std::fs::read(&record_path)?)
        .context("the build record written in the container is not JSON")?;
    let got = tokio::select! {
        r = archive::download_file(docker, id, OUT_IMAGE, &job.partial) => r?,
        () = job.cancel.cancelled() => bail!("cancelled"),
    };
    let want_size = record["image"]["size"].as_u64();
    let want_sha = record["image"]["sha256"].as_str();
    if want_size != Some(got.size) || want_sha != Some(got.sha256.as_str()) {
        bail!(
            "the image fetched from the container ({} bytes, sha256:{}) is not the one built \
             there ({want_size:?} bytes, sha256:{want_sha:?})",
            got.size,
            got.sha256
        );
    }
    job.log.line(format!(
        "docker: fetched the image ({} bytes, sha256:{})",
        got.size, got.sha256
    ));
    Ok(Inner {
        backend: record["backend"].as_str().unwrap_or("native").to_string(),
        backend_version: record["backend_version"].as_str().map(str::to_string),
    })
}

/// This very executable, readable even if it was replaced on disk since it
/// started (`/proc/self/exe` still names the running file).
fn own_executable() -> Result<std::path::PathBuf> {
    let proc_exe = Path::new("/proc/self/exe");
    if std::fs::File::open(proc_exe).is_ok() {
        return Ok(proc_exe.to_path_buf());
    }
    std::env::current_exe().context("cannot find sreg's own executable to upload")
}

/// An engine that cannot start sreg inside usually has an image without a
/// compatible C library.
fn start_error(e: DockerError, log: &crate::build::log::BuildLog) -> anyhow::Error {
    log.line(format!("docker: cannot start the container: {e}"));
    anyhow!(
        "the engine cannot start sreg in the build container ({e}): the image needs a glibc-based \
         Linux (Debian bookworm or newer) for sreg's executable to run"
    )
}

/// Kills (if still running) and removes the container; a failure here is
/// logged, never hidden behind the build's own outcome.
async fn remove(docker: &Docker, id: &str, job: &Job<'_>) {
    let kill = docker.kill_container(id, None::<KillContainerOptions>);
    let _ = tokio::time::timeout(Duration::from_secs(10), kill).await;
    let options = RemoveContainerOptions {
        force: true,
        v: true,
        ..Default::default()
    };
    let removed = tokio::time::timeout(
        Duration::from_secs(50),
        docker.remove_container(id, Some(options)),
    )
    .await;
    match removed {
        Ok(Ok(())) => job.log.line(format!("docker: removed container {id}")),
        Ok(Err(e)) => job.log.line(format!(
            "docker: cannot remove container {id}: {e}; remove it with `docker rm -f {id}`"
        )),
        Err(_) => job.log.line(format!(
            "docker: the engine took too long to remove container {id}; remove it with `docker rm -f {id}`"
        )),
    }
}
