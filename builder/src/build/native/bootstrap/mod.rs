//! Bootstrap agents: fill an empty root filesystem from the stage's source.
//!
//! | agent | module |
//! |---|---|
//! | `scratch` | [`scratch`] |
//! | `localimage` | [`localimage`]: a SIF file or a directory (sandbox) |
//! | `debootstrap` | [`debootstrap`] |
//! | `docker`, `oci`, `oci-archive`, `docker-archive` | [`oci`]: layers applied with whiteouts |
//! | `library`, `shub`, `oras` | [`remote_sif`]: a SIF from a registry, unpacked |

pub mod debootstrap;
pub mod localimage;
pub mod oci;
pub mod remote_sif;
pub mod scratch;

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Result, bail};
use sreg_recipe::Stage;

use crate::build::job::Job;

/// What a source says about running the image, besides its files: an OCI
/// image config, or the architecture of a SIF it came from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceConfig {
    /// `NAME=value` entries (OCI `Env`).
    pub env: Vec<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub working_dir: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// GOARCH-style name (`amd64`, `arm64`...), when the source knows it.
    pub arch: Option<String>,
    /// The source reference as resolved (with a digest where there is one).
    pub resolved: Option<String>,
}

/// Fills `rootfs` (an existing empty folder) from the stage's source.
pub async fn bootstrap(job: &Job<'_>, stage: &Stage, rootfs: &Path) -> Result<SourceConfig> {
    let agent = stage.bootstrap();
    match agent.as_str() {
        "scratch" => scratch::bootstrap(job, stage, rootfs).await,
        "localimage" => localimage::bootstrap(job, stage, rootfs).await,
        "debootstrap" => debootstrap::bootstrap(job, stage, rootfs).await,
        "docker" | "oci" | "oci-archive" | "docker-archive" => {
            oci::bootstrap(job, stage, rootfs).await
        }
        "library" | "shub" | "oras" => remote_sif::bootstrap(job, stage, rootfs).await,
        other => bail!(
            "line {}: `Bootstrap: {other}` is not supported by the native backend \
             (it builds from scratch, localimage, debootstrap, docker, oci, oci-archive, \
             docker-archive, library, shub and oras): build with --backend apptainer",
            stage.line()
        ),
    }
}
