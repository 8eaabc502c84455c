//! The apptainer backend.

use anyhow::{Result, bail};

use super::job::{BackendInfo, Job};

pub async fn build(job: &Job<'_>, program: &str) -> Result<BackendInfo> {
    let _ = (job, program);
    bail!("the apptainer backend is not built yet")
}
