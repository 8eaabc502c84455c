//! `sreg build RECIPE [-o OUT.sif] [--backend ...]`.
//!
//! One flow for every backend: read and check the recipe, pick the
//! backend, let it write the image to a partial file beside OUT while its
//! output goes to the log, then check the image (a sound SIF with a primary
//! partition), hash it, make it durable and rename it into place, and write
//! the build record beside it. A failed, timed-out or interrupted build
//! leaves no image and no partial file; its log stays, and its tail is shown.

pub mod apptainer;
pub mod docker;
pub mod job;
pub mod log;
pub mod native;
pub mod record;
pub mod slurm;
pub mod tools;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use anyhow::{Context, Result, anyhow, bail};
use sha2::{Digest, Sha256};
use sreg_recipe::Definition;
use sreg_sif::Sif;
use tokio_util::sync::CancellationToken;

use crate::buildmeta;
use crate::cli::{BackendKind, BuildArgs};
use job::{BackendInfo, Job};
use log::BuildLog;
use record::{BuildRecord, ImageFacts, LogFacts, RecipeFacts};

/// Lines of the log shown when a build fails.
const TAIL_LINES: usize = 30;

pub fn run(args: &BuildArgs) -> Result<()> {
    let recipe_path = std::path::absolute(&args.recipe)
        .with_context(|| format!("cannot resolve {}", args.recipe.display()))?;
    let recipe_text = std::fs::read_to_string(&recipe_path)
        .with_context(|| format!("cannot read the recipe {}", args.recipe.display()))?;
    let parsed =
        Definition::parse(&recipe_text).map_err(|e| anyhow!("{}: {e}", args.recipe.display()))?;
    let build_args = build_arguments(args)?;
    let definition = parsed
        .with_build_args(&build_args)
        .map_err(|e| anyhow!("{}: {e}", args.recipe.display()))?;
    for w in definition.warnings() {
        eprintln!("sreg: warning: {}: {w}", args.recipe.display());
    }

    let output = match &args.output {
        Some(o) => {
            std::path::absolute(o).with_context(|| format!("cannot resolve {}", o.display()))?
        }
        None => std::env::current_dir()?.join(default_file_name(&recipe_path)?),
    };
    if output.exists() && !args.force {
        bail!(
            "{} exists: remove it or pass --force to replace it",
            output.display()
        );
    }
    let out_dir = output
        .parent()
        .filter(|d| d.is_dir())
        .ok_or_else(|| anyhow!("the folder of {} does not exist", output.display()))?
        .to_path_buf();
    let backend = choose_backend(args.backend);
    let (record_path, log_path) = record::paths_for(&output);
    let log = BuildLog::create(&log_path, !args.quiet)?;

    let file_name = output
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let partial = out_dir.join(format!(".{file_name}.partial-{}", std::process::id()));
    let scratch_parent = args.tmpdir.clone().unwrap_or_else(|| out_dir.clone());
    let work = tempfile::Builder::new()
        .prefix(".sreg-build-")
        .tempdir_in(&scratch_parent)
        .with_context(|| {
            format!(
                "cannot create a build folder in {}",
                scratch_parent.display()
            )
        })?;
    let _partial_guard = RemoveOnDrop(partial.clone());

    let job = Job {
        recipe_path: recipe_path.clone(),
        recipe_text: recipe_text.clone(),
        definition,
        build_args: build_args.clone(),
        context_dir: recipe_path.parent().unwrap_or(Path::new("/")).to_path_buf(),
        partial: partial.clone(),
        work_dir: work.path().to_path_buf(),
        notest: args.notest,
        nohttps: args.nohttps,
        isolation: args.isolation,
        cancel: CancellationToken::new(),
        log: log.clone(),
        args,
    };

    let started_at = SystemTime::now();
    let started = Instant::now();
    log.line(format!(
        "sreg {}: building {} with the {} backend",
        env!("CARGO_PKG_VERSION"),
        args.recipe.display(),
        backend_name(backend)
    ));
    let outcome = crate::registry::block_on(run_backend(backend, &job, args.timeout))?;
    let info = match outcome {
        Ok(info) => info,
        Err(e) => {
            let tail = log.tail(TAIL_LINES);
            if !tail.is_empty() && args.quiet {
                eprintln!("--- last lines of {} ---\n{tail}\n---", log_path.display());
            }
            return Err(e.context(format!(
                "the build failed; its log is {}",
                log_path.display()
            )));
        }
    };

    let facts = finish_image(&partial, &output)?;
    let finished_at = SystemTime::now();
    let duration = started.elapsed().as_secs_f64();
    log.line(format!(
        "wrote {} ({} bytes, sha256:{}) in {duration:.1}s",
        output.display(),
        facts.size,
        facts.sha256
    ));

    let git = record::git_facts(&recipe_path);
    let ci = buildmeta::from_env(&|k| std::env::var(k).ok());
    let record = BuildRecord {
        schema: record::SCHEMA.into(),
        image: ImageFacts {
            file: file_name,
            ..facts
        },
        recipe: RecipeFacts {
            path: git
                .path
                .clone()
                .unwrap_or_else(|| args.recipe.display().to_string()),
            text: recipe_text,
        },
        build_args,
        // A CI checkout is often a detached HEAD: the CI service knows better.
        repository: ci.repository.or(git.repository),
        branch: ci.branch.or(git.branch),
        commit: ci.commit.or(git.commit),
        dirty: git.dirty,
        backend: info.name,
        backend_version: info.version,
        backend_details: info.details,
        host: ci.builder_host.unwrap_or_else(|| "unknown".into()),
        started_at: rfc3339(started_at),
        finished_at: rfc3339(finished_at),
        duration_seconds: (duration * 1000.0).round() / 1000.0,
        log: Some(log_facts(&log_path)?),
        ci_provider: ci.ci_provider,
        ci_url: ci.ci_url,
    };
    write_atomically(
        &record_path,
        serde_json::to_string_pretty(&record)?.as_bytes(),
    )?;
    println!("{}", output.display());
    Ok(())
}

/// `--build-arg-file` lines, then `--build-arg`s (which win).
fn build_arguments(args: &BuildArgs) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut add = |pair: &str, from: &str| -> Result<()> {
        let (k, v) = pair
            .split_once('=')
            .filter(|(k, _)| !k.trim().is_empty())
            .ok_or_else(|| anyhow!("{from}: {pair:?} is not NAME=VALUE"))?;
        out.insert(k.trim().to_string(), v.to_string());
        Ok(())
    };
    if let Some(file) = &args.build_arg_file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if !line.is_empty() && !line.starts_with('#') {
                add(line, &format!("{}:{}", file.display(), n + 1))?;
            }
        }
    }
    for pair in &args.build_args {
        add(pair, "--build-arg")?;
    }
    Ok(out)
}

/// `NAME_TAG.sif`, by the naming rule of `sreg recipes`.
fn default_file_name(recipe: &Path) -> Result<String> {
    let file = recipe.file_name().map(PathBuf::from).unwrap_or_default();
    let root = recipe
        .parent()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into());
    let name = sreg_recipe::derive_name(&file, &root).map_err(|e| {
        anyhow!(
            "cannot name the image of {}: {e}; pass -o OUT.sif",
            recipe.display()
        )
    })?;
    Ok(format!("{}_{}.sif", name.name, name.tag))
}

/// `auto`: apptainer, else singularity, else native.
fn choose_backend(kind: BackendKind) -> BackendKind {
    match kind {
        BackendKind::Auto if tools::exists("apptainer") => BackendKind::Apptainer,
        BackendKind::Auto if tools::exists("singularity") => BackendKind::Singularity,
        BackendKind::Auto => BackendKind::Native,
        other => other,
    }
}

pub fn backend_name(kind: BackendKind) -> &'static str {
    match kind {
        BackendKind::Auto => "auto",
        BackendKind::Apptainer => "apptainer",
        BackendKind::Singularity => "singularity",
        BackendKind::Native => "native",
        BackendKind::Docker => "docker",
        BackendKind::Slurm => "slurm",
    }
}

/// Runs the backend until it ends, the timeout passes or Ctrl-C. On the
/// last two the backend is cancelled and given a moment to clean up (stop
/// its container or Slurm job).
async fn run_backend(
    backend: BackendKind,
    job: &Job<'_>,
    timeout: Option<std::time::Duration>,
) -> Result<BackendInfo> {
    let work = async {
        match backend {
            BackendKind::Native => native::build(job).await,
            BackendKind::Apptainer | BackendKind::Singularity => {
                apptainer::build(job, backend_name(backend)).await
            }
            BackendKind::Docker => docker::build(job).await,
            BackendKind::Slurm => slurm::build(job).await,
            BackendKind::Auto => unreachable!("chosen before"),
        }
    };
    tokio::pin!(work);
    let deadline = async {
        match timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let why = tokio::select! {
        r = &mut work => return r,
        () = deadline => format!("the build took longer than --timeout {}", humantime::format_duration(timeout.unwrap_or_default())),
        _ = tokio::signal::ctrl_c() => "interrupted".to_string(),
    };
    job.log.line(format!("sreg: {why}: stopping the build"));
    job.cancel.cancel();
    // Backends return soon after a cancel; the grace bounds a stuck one.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(60), &mut work).await;
    Err(anyhow!("{why}"))
}

/// Checks the written image, hashes it, syncs it and renames it into place.
fn finish_image(partial: &Path, output: &Path) -> Result<ImageFacts> {
    let sif = Sif::open(partial).context("the backend wrote no readable SIF image")?;
    if let Some(problem) = sif.problems().first() {
        bail!("the backend wrote an unsound SIF image: {problem}");
    }
    if sif.primary_partition().is_none() {
        bail!("the backend wrote a SIF image without a primary partition");
    }
    let arch = Some(sif.primary_arch().name().to_string());
    drop(sif);
    let (size, sha256) = hash_file(partial)?;
    std::fs::File::open(partial)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot sync {}", partial.display()))?;
    std::fs::rename(partial, output)
        .with_context(|| format!("cannot move the image to {}", output.display()))?;
    sync_dir(output);
    Ok(ImageFacts {
        file: String::new(),
        size,
        sha256,
        arch,
    })
}

fn log_facts(path: &Path) -> Result<LogFacts> {
    let (size, sha256) = hash_file(path)?;
    Ok(LogFacts {
        file: path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned(),
        size,
        sha256,
    })
}

/// Size and sha256 (hex) of a file.
pub fn hash_file(path: &Path) -> Result<(u64, String)> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hex::encode(hasher.finalize())))
}

/// Writes `path` through a temporary file beside it.
fn write_atomically(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    std::io::Write::write_all(&mut tmp, data)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn sync_dir(file: &Path) {
    if let Some(dir) = file.parent() {
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Removes a path when dropped, unless it is gone already.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_follow_the_recipe_naming_rule() {
        assert_eq!(
            default_file_name(Path::new("/r/lolcow/Singularity")).unwrap(),
            "lolcow_latest.sif"
        );
        assert_eq!(
            default_file_name(Path::new("/r/tools/Singularity.v1.0")).unwrap(),
            "tools_v1.0.sif"
        );
        assert_eq!(
            default_file_name(Path::new("/r/x/samtools.def")).unwrap(),
            "x_samtools.sif"
        );
    }
}
