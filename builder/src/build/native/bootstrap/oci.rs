//! `Bootstrap: docker` (an image from a registry), `oci` (an OCI image
//! layout folder), `oci-archive` (a tar of one) and `docker-archive` (a
//! `docker save` tar): the image's layers applied in order, with
//! whiteouts, and its config returned for the environment and runscript.
//!
//! Paths in `From:` are relative to the recipe's folder, as the apptainer
//! backend (which runs there) sees them.

use std::path::Path;

use anyhow::{Context, Result, bail};
use sreg_recipe::Stage;

use super::SourceConfig;
use crate::build::job::Job;
use crate::build::native::oci::image::{self as oci_image, FetchedImage};
use crate::build::native::oci::{layout as oci_layout, pull as oci_pull};

pub async fn bootstrap(job: &Job<'_>, stage: &Stage, rootfs: &Path) -> Result<SourceConfig> {
    let agent = stage.bootstrap();
    let from = stage.from().map(str::trim).unwrap_or_default();
    if from.is_empty() {
        // The caller names the stage and its line.
        bail!("`Bootstrap: {agent}` needs `From:` (the image to start from)");
    }
    let image = fetch(job, stage, &agent, from)
        .await
        .with_context(|| format!("cannot get `From: {from}`"))?;
    let config = oci_image::unpack(job, image, rootfs).await?;
    job.log.line(format!(
        "image config: {} environment variables, entrypoint {:?}, command {:?}{}",
        config.env.len(),
        config.entrypoint,
        config.cmd,
        config
            .arch
            .as_deref()
            .map(|a| format!(", architecture {a}"))
            .unwrap_or_default()
    ));
    Ok(config)
}

async fn fetch(job: &Job<'_>, stage: &Stage, agent: &str, from: &str) -> Result<FetchedImage> {
    match agent {
        "docker" => {
            let reference =
                oci_pull::docker_reference(from, stage.get("registry"), stage.get("namespace"))?;
            oci_pull::fetch_image(job, &reference).await
        }
        "oci" => {
            let (dir, tag) = oci_layout::split_ref(from, &job.context_dir);
            if !dir.is_dir() {
                bail!("{} is not a folder (an OCI image layout)", dir.display());
            }
            let log = job.log.clone();
            blocking(move || oci_layout::read_layout(&dir, tag.as_deref(), &log)).await
        }
        "oci-archive" | "docker-archive" => {
            let (file, tag) = oci_layout::split_ref(from, &job.context_dir);
            if !file.is_file() {
                bail!("{} is not a file", file.display());
            }
            let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
            let dest = job.work_dir.join(agent);
            job.log.line(format!(
                "unpacking {} ({})",
                file.display(),
                oci_image::human_bytes(size)
            ));
            let log = job.log.clone();
            let oci = agent == "oci-archive";
            blocking(move || {
                oci_layout::unpack_archive(&file, &dest)?;
                let shown = file.display().to_string();
                if oci {
                    oci_layout::read_layout(&dest, tag.as_deref(), &log)
                } else {
                    oci_layout::read_docker_save(&dest, tag.as_deref(), &shown)
                }
            })
            .await
        }
        other => bail!("`Bootstrap: {other}` is not an OCI source"),
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .context("the image reader stopped")?
}
