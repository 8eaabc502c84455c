//! Unpacks the primary squashfs partition of a SIF image into a root
//! filesystem (for `localimage`, `library`, `shub` and `oras` sources).

use std::path::Path;

use anyhow::{Context, Result, bail};
use sreg_sif::{FsType, Sif};
use tokio::process::Command;

use crate::build::job::Job;
use crate::build::tools;

/// What the image says of itself: its architecture, for the new image.
pub struct Unpacked {
    pub arch: Option<String>,
}

/// Extracts the primary partition of `sif` into `rootfs` (which may exist)
/// with `unsquashfs -o OFFSET`, so the partition is never copied out first.
pub async fn extract_sif(job: &Job<'_>, sif: &Path, rootfs: &Path) -> Result<Unpacked> {
    let image = Sif::open(sif).with_context(|| format!("{} is not a SIF image", sif.display()))?;
    if let Some(problem) = image.problems().first() {
        bail!("{} is not a sound SIF image: {problem}", sif.display());
    }
    let Some(part) = image.primary_partition() else {
        bail!("{} has no primary partition to build from", sif.display());
    };
    let meta = part
        .partition()
        .expect("a primary partition is a partition");
    if meta.fs_type != FsType::Squashfs {
        bail!(
            "the primary partition of {} is {:?}, not squashfs: only squashfs images can be built from",
            sif.display(),
            meta.fs_type
        );
    }
    let offset = part.offset();
    let arch = Some(image.primary_arch().name().to_string());
    drop(image);
    let unsquashfs = tools::find("unsquashfs")?;
    let mut cmd = Command::new(unsquashfs);
    cmd.args(["-f", "-no-progress", "-o"])
        .arg(offset.to_string())
        .arg("-d")
        .arg(rootfs)
        .arg(sif);
    if !nix::unistd::geteuid().is_root() {
        // Device nodes cannot be made without root; Apptainer skips them too.
        cmd.arg("-ignore-errors");
    }
    job.log.line(format!(
        "unpacking {} into the root filesystem",
        sif.display()
    ));
    let status = job.log.run(cmd, &job.cancel).await?;
    if !status.success() {
        bail!("unsquashfs could not unpack {} ({status})", sif.display());
    }
    Ok(Unpacked { arch })
}
