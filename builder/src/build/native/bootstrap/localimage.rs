//! `Bootstrap: localimage`: `From:` a SIF image (its primary squashfs
//! partition is unpacked) or a folder holding a root filesystem (a
//! sandbox), relative to the recipe's folder.
//!
//! A folder is hard-linked rather than copied when the stage runs nothing
//! that could write into the tree (no `%setup`, `%post`, `%appinstall`,
//! nor a `%test` that runs): the build then only adds files by replacing
//! (see [`crate::build::native::paths`]), so the source stays untouched and
//! packing a prepared tree costs little more than `mksquashfs` alone.

use std::path::Path;

use anyhow::{Result, bail};
use sreg_recipe::{SectionKind, Stage};

use super::SourceConfig;
use crate::build::job::Job;
use crate::build::native::tree::{self, Fill};
use crate::build::native::unpack;

pub async fn bootstrap(job: &Job<'_>, stage: &Stage, rootfs: &Path) -> Result<SourceConfig> {
    let Some(from) = stage.from().filter(|f| !f.is_empty()) else {
        bail!(
            "line {}: `Bootstrap: localimage` needs `From: PATH` (a SIF image or a folder)",
            stage.line()
        );
    };
    let path = job.context_dir.join(from);
    let meta = std::fs::metadata(&path).map_err(|e| {
        anyhow::anyhow!(
            "line {}: From: {from}: cannot read {} ({e})",
            stage.line(),
            path.display()
        )
    })?;
    if meta.is_dir() {
        let how = if writes_into_tree(job, stage) {
            Fill::Copy
        } else {
            Fill::Link
        };
        tree::fill(job, &path, rootfs, how).await?;
        return Ok(SourceConfig::default());
    }
    let unpacked = unpack::extract_sif(job, &path, rootfs).await?;
    Ok(SourceConfig {
        arch: unpacked.arch,
        resolved: Some(path.display().to_string()),
        ..SourceConfig::default()
    })
}

/// The folder a stage can be packed from where it stands (see
/// [`crate::build::native::in_place`]): the last stage, from a folder, and
/// adding nothing to it but metadata (no %setup, %files, %post, apps, nor
/// a %test that runs).
pub fn in_place_source(job: &Job<'_>, stage: &Stage) -> Option<std::path::PathBuf> {
    let last = job.definition.stages().len() == stage.index() + 1;
    if !last || stage.bootstrap() != "localimage" || writes_into_tree(job, stage) {
        return None;
    }
    let has = |kind| stage.sections_of(kind).next().is_some();
    if has(SectionKind::Files) || has(SectionKind::Test) || !stage.apps().is_empty() {
        return None;
    }
    let path = job.context_dir.join(stage.from()?);
    path.is_dir().then_some(path)
}

/// Whether some script of the stage may change files in place.
pub fn writes_into_tree(job: &Job<'_>, stage: &Stage) -> bool {
    let has = |kind| stage.sections_of(kind).next().is_some();
    has(SectionKind::Setup)
        || has(SectionKind::Post)
        || has(SectionKind::AppInstall)
        || (!job.notest && has(SectionKind::Test))
}
