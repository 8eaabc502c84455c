//! The slurm backend.

use anyhow::{Result, bail};

use super::job::{BackendInfo, Job};

pub async fn build(job: &Job<'_>) -> Result<BackendInfo> {
    let _ = job;
    bail!("the slurm backend is not built yet")
}
