//! `Bootstrap: scratch`: an empty root filesystem, filled by `%setup` and
//! `%files` alone.

use std::path::Path;

use anyhow::Result;
use sreg_recipe::Stage;

use super::SourceConfig;
use crate::build::job::Job;

pub async fn bootstrap(job: &Job<'_>, stage: &Stage, rootfs: &Path) -> Result<SourceConfig> {
    let _ = (stage, rootfs);
    job.log
        .line("starting from an empty root filesystem (scratch)");
    Ok(SourceConfig::default())
}
