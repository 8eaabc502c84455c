//! What a backend is given: one build, fully resolved, and what it reports.

use std::collections::BTreeMap;
use std::path::PathBuf;

use sreg_recipe::Definition;
use tokio_util::sync::CancellationToken;

use super::log::BuildLog;
use crate::cli::{BuildArgs, Isolation};

/// One build, as every backend sees it.
pub struct Job<'a> {
    /// The recipe file, absolute.
    pub recipe_path: PathBuf,
    /// Its text as written (build arguments not substituted).
    pub recipe_text: String,
    /// The parsed recipe with build arguments substituted.
    pub definition: Definition,
    /// The build arguments given on the command line (and from the file).
    pub build_args: BTreeMap<String, String>,
    /// The recipe's folder: relative `%files` sources start here.
    pub context_dir: PathBuf,
    /// Where the backend writes the image. The caller verifies it and moves
    /// it to the final path; on failure the caller removes it.
    pub partial: PathBuf,
    /// A scratch folder for this build only, removed afterwards.
    pub work_dir: PathBuf,
    pub notest: bool,
    pub nohttps: bool,
    pub isolation: Isolation,
    /// Cancelled on timeout or Ctrl-C: a backend stops what it started
    /// (containers, Slurm jobs, child processes) and returns an error.
    pub cancel: CancellationToken,
    pub log: BuildLog,
    /// Every command-line option, for backend-specific ones.
    pub args: &'a BuildArgs,
}

/// Which backend built the image, for the build record.
#[derive(Debug, Clone)]
pub struct BackendInfo {
    /// `native`, `apptainer`, `singularity`, `docker`, `slurm`.
    pub name: String,
    /// Its version (for docker and slurm: the engine's and Slurm's, and the
    /// inner backend's in `details`).
    pub version: Option<String>,
    /// Anything else worth keeping (container image, Slurm job id...).
    pub details: BTreeMap<String, String>,
}

impl BackendInfo {
    pub fn new(name: &str, version: Option<String>) -> BackendInfo {
        BackendInfo {
            name: name.to_string(),
            version,
            details: BTreeMap::new(),
        }
    }
}
