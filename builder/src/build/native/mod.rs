//! The native backend: builds a SIF in Rust, without Apptainer.
//!
//! Each stage of the recipe gets its own root filesystem under the build
//! folder and goes through Apptainer's steps in Apptainer's order:
//!
//! 1. bootstrap ([`bootstrap`]), then the base layout of `/.singularity.d`
//!    ([`layout`]) and what the source's config says ([`metadata`]);
//! 2. `%setup` on the host, with `$APPTAINER_ROOTFS` ([`scripts`]);
//! 3. `%files from STAGE`, then `%files` from the host ([`files`]);
//! 4. SCIF apps' folders, metadata and `%appfiles` ([`apps`]);
//! 5. `%post` with the `%appinstall`s after it, inside the root filesystem
//!    ([`scripts`], [`isolation`]);
//! 6. `%help`, `%labels`, the definition, `%environment`, `%startscript`,
//!    `%runscript`, `%test` into `/.singularity.d` ([`metadata`]);
//! 7. `%test` on the read-only root filesystem unless `--notest`.
//!
//! The last stage is packed by `mksquashfs` and written as a SIF with the
//! definition file and labels.json ([`squash`]).

pub mod apps;
pub mod bootstrap;
pub mod files;
pub mod in_place;
pub mod inspect;
pub mod isolation;
pub mod layout;
pub mod metadata;
pub mod oci;
pub mod paths;
pub mod registry_http;
pub mod scripts;
pub mod squash;
pub mod tree;
pub mod unpack;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use sreg_recipe::{SectionKind, Stage};
use sreg_sif::Arch;

use super::job::{BackendInfo, Job};
use super::tools;
use crate::cli::RunInRootfsArgs;
use files::Origin;

/// A finished stage: its name and root filesystem, for `%files from`.
struct Built {
    name: Option<String>,
    rootfs: PathBuf,
}

pub async fn build(job: &Job<'_>) -> Result<BackendInfo> {
    // Fail before any work when the last step cannot run.
    tools::find("mksquashfs")?;
    let stages = job.definition.stages();
    let mut built: Vec<Built> = Vec::new();
    let mut last = None;
    for stage in stages {
        let out = build_stage(job, stage, &built).await?;
        built.push(Built {
            name: stage.name().map(str::to_string),
            rootfs: out.rootfs.clone(),
        });
        last = Some(out);
    }
    let out = last.ok_or_else(|| anyhow!("the recipe has no stage"))?;
    let squashfs = job.work_dir.join("image.squashfs");
    let (r, apps) = (out.rootfs.clone(), job.definition.final_stage().apps());
    let (lower, work) = (out.lower.clone(), job.work_dir.clone());
    let (inspect, lists) = blocking(move || {
        let lists = match &lower {
            Some((tree, copied)) => Some(in_place::lists(tree, &r, copied, &work)?),
            None => {
                clear_device_nodes(&r)?;
                None
            }
        };
        Ok((inspect::metadata(&r, &apps)?, lists))
    })
    .await?;
    let source = match &out.lower {
        Some((tree, _)) => tree.clone(),
        None => out.rootfs.clone(),
    };
    let comp = &job.args.squashfs_comp;
    squash::mksquashfs(job, &source, &squashfs, comp, lists).await?;
    let objects = squash::Objects {
        labels: out.labels,
        inspect,
        arch: out.arch,
    };
    squash::write_sif(job, &squashfs, objects).await?;
    Ok(BackendInfo::new(
        "native",
        Some(env!("CARGO_PKG_VERSION").to_string()),
    ))
}

/// How a stage is named in messages: `stage 2 (line 9)` or `stage build (line 1)`.
fn stage_label(stage: &Stage) -> String {
    match stage.name() {
        Some(n) => format!("stage {n} (line {})", stage.line()),
        None => format!("stage {} (line {})", stage.index() + 1, stage.line()),
    }
}

/// The interpreter a section asked for with `-c SHELL`.
fn shell_of(stage: &Stage, kind: SectionKind) -> Option<String> {
    stage
        .sections_of(kind)
        .filter(|s| s.app().is_none())
        .find_map(|s| s.shell().map(str::to_string))
}

/// A stage's result.
struct StageOut {
    rootfs: PathBuf,
    labels: Vec<u8>,
    arch: Arch,
    /// Packed in place: the source tree, and what was copied from it into
    /// `rootfs` (which then holds only the build's additions).
    lower: Option<(PathBuf, BTreeSet<PathBuf>)>,
}

async fn build_stage(job: &Job<'_>, stage: &Stage, earlier: &[Built]) -> Result<StageOut> {
    let label = stage_label(stage);
    let rootfs = job
        .work_dir
        .join(format!("stage-{}", stage.index()))
        .join("rootfs");
    std::fs::create_dir_all(&rootfs)
        .with_context(|| format!("cannot create {}", rootfs.display()))?;
    job.log.line(format!(
        "--- {label}: Bootstrap: {}{}",
        stage.bootstrap(),
        stage
            .from()
            .map(|f| format!(", From: {f}"))
            .unwrap_or_default()
    ));

    let lower = bootstrap::localimage::in_place_source(job, stage);
    let (source, lower) = match lower {
        Some(tree) => {
            job.log.line(format!(
                "packing {} where it stands, with the build's metadata laid over it",
                tree.display()
            ));
            let (t, r) = (tree.clone(), rootfs.clone());
            let copied = blocking(move || in_place::prepare_upper(&t, &r)).await?;
            (bootstrap::SourceConfig::default(), Some((tree, copied)))
        }
        None => {
            let source = bootstrap::bootstrap(job, stage, &rootfs)
                .await
                .with_context(|| format!("{label}: Bootstrap: {}", stage.bootstrap()))?;
            (source, None)
        }
    };
    let arch = match source.arch.as_deref() {
        Some(name) => Arch::from_name(name).ok_or_else(|| {
            anyhow!("{label}: the source's architecture {name} is not one SIF knows")
        })?,
        None => Arch::host(),
    };
    {
        let (r, s) = (rootfs.clone(), source.clone());
        blocking(move || {
            layout::write_base(&r)?;
            metadata::write_source_config(&r, &s)
        })
        .await
        .with_context(|| format!("{label}: cannot lay out /.singularity.d"))?;
    }

    if let Some(setup) = stage.script(SectionKind::Setup) {
        let what = format!("%setup of {label}");
        let shell = shell_of(stage, SectionKind::Setup);
        scripts::run_on_host(job, &rootfs, &what, &setup, shell.as_deref()).await?;
    }

    {
        let (log, r, st, ctx) = (
            job.log.clone(),
            rootfs.clone(),
            stage.clone(),
            job.context_dir.clone(),
        );
        let sources: Vec<(Option<String>, PathBuf)> = earlier
            .iter()
            .map(|b| (b.name.clone(), b.rootfs.clone()))
            .collect();
        blocking(move || copy_files(&log, &st, &r, &ctx, &sources))
            .await
            .with_context(|| format!("{label}: %files"))?;
        let (log, r, st, ctx) = (
            job.log.clone(),
            rootfs.clone(),
            stage.clone(),
            job.context_dir.clone(),
        );
        blocking(move || apps::write(&log, &st, &r, &ctx))
            .await
            .with_context(|| format!("{label}: SCIF apps"))?;
    }

    let mut post = stage.script(SectionKind::Post).unwrap_or_default();
    post.push_str(&apps::install_script(stage));
    if !post.trim().is_empty() {
        let what = format!("%post of {label}");
        let shell = shell_of(stage, SectionKind::Post);
        scripts::run_post(job, &rootfs, &what, &post, shell.as_deref()).await?;
    }

    let labels = {
        let (r, st, src, text, a) = (
            rootfs.clone(),
            stage.clone(),
            source.clone(),
            job.recipe_text.clone(),
            arch.name(),
        );
        blocking(move || {
            metadata::write(
                &r,
                &metadata::Facts {
                    stage: &st,
                    source: &src,
                    recipe_text: &text,
                    arch: a,
                },
            )
        })
        .await
        .with_context(|| format!("{label}: cannot write the image's metadata"))?
    };

    let has_test = stage
        .script(SectionKind::Test)
        .is_some_and(|t| !t.trim().is_empty());
    if has_test && !job.notest {
        scripts::run_test(job, &rootfs, &format!("%test of {label}")).await?;
    }
    Ok(StageOut {
        rootfs,
        labels,
        arch,
        lower,
    })
}

/// `%files from STAGE` first, then host `%files`, as Apptainer orders them.
fn copy_files(
    log: &super::log::BuildLog,
    stage: &Stage,
    rootfs: &Path,
    context_dir: &Path,
    earlier: &[(Option<String>, PathBuf)],
) -> Result<()> {
    let entries = stage.files();
    for entry in entries.iter().filter(|e| e.from.is_some()) {
        let name = entry.from.as_deref().unwrap_or_default();
        let from = earlier
            .iter()
            .find(|(n, _)| n.as_deref() == Some(name))
            .map(|(_, r)| r)
            .ok_or_else(|| {
                anyhow!(
                    "line {}: %files from {name}: no earlier stage is named {name}",
                    entry.line
                )
            })?;
        files::copy_entry(log, &Origin::Stage(from), entry, rootfs, "/")?;
    }
    for entry in entries.iter().filter(|e| e.from.is_none()) {
        files::copy_entry(log, &Origin::Host(context_dir), entry, rootfs, "/")?;
    }
    Ok(())
}

/// Device nodes under `/dev` go: the runtime mounts its own `/dev`, and
/// an image holding them cannot be unpacked without root (`--fakeroot`,
/// `build --sandbox` as a user).
fn clear_device_nodes(rootfs: &Path) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let dev = rootfs.join("dev");
    if !std::fs::symlink_metadata(&dev).is_ok_and(|m| m.is_dir()) {
        return Ok(());
    }
    for entry in walkdir::WalkDir::new(&dev).contents_first(true) {
        let entry = entry?;
        let t = entry.file_type();
        if t.is_char_device() || t.is_block_device() {
            std::fs::remove_file(entry.path())
                .with_context(|| format!("cannot remove {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// Runs file work off the async threads, so a timeout still fires on time.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| anyhow!("a build step stopped: {e}"))?
}

/// `sreg __run-in-rootfs`: runs one command inside a root filesystem.
pub fn run_in_rootfs(args: &RunInRootfsArgs) -> Result<()> {
    isolation::run(args)
}
