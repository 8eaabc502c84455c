//! `Bootstrap: scratch`.

use std::path::Path;

use anyhow::{Result, bail};
use sreg_recipe::Stage;

use super::SourceConfig;
use crate::build::job::Job;

pub async fn bootstrap(job: &Job<'_>, stage: &Stage, rootfs: &Path) -> Result<SourceConfig> {
    let _ = (job, stage, rootfs);
    bail!("not built yet")
}
