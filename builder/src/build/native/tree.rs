//! Filling a root filesystem from a folder on the host (a sandbox).

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::ExitStatus;

use anyhow::{Context, Result, bail};
use tokio::process::Command;

use crate::build::job::Job;

/// How a tree is brought into the root filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// A full copy (`cp -a`): the build may change any file.
    Copy,
    /// Hard links to the source's files in new folders (`cp -al`): for a
    /// build that writes nothing into the tree but through
    /// [`super::paths::replace_file`], so the source is never changed.
    /// Falls back to a copy across filesystems.
    Link,
}

/// Brings the contents of `src` into the existing folder `rootfs`.
pub async fn fill(job: &Job<'_>, src: &Path, rootfs: &Path, how: Fill) -> Result<Fill> {
    let src_dev = std::fs::metadata(src)
        .with_context(|| format!("cannot read {}", src.display()))?
        .dev();
    let dst_dev = std::fs::metadata(rootfs)
        .with_context(|| format!("cannot read {}", rootfs.display()))?
        .dev();
    let how = if how == Fill::Link && src_dev != dst_dev {
        job.log.line(format!(
            "{} is on another filesystem than the build folder: copying it instead of linking",
            src.display()
        ));
        Fill::Copy
    } else {
        how
    };
    if how == Fill::Link {
        job.log.line(format!(
            "linking {} into the root filesystem",
            src.display()
        ));
        if cp(job, "-al", src, rootfs).await?.success() {
            return Ok(Fill::Link);
        }
        // A user may not link files of others (fs.protected_hardlinks).
        job.log
            .line("cannot hard-link every file: copying the tree instead");
        std::fs::remove_dir_all(rootfs)
            .and_then(|()| std::fs::create_dir(rootfs))
            .with_context(|| format!("cannot empty {}", rootfs.display()))?;
    }
    job.log.line(format!(
        "copying {} into the root filesystem",
        src.display()
    ));
    let status = cp(job, "-a", src, rootfs).await?;
    if !status.success() {
        bail!(
            "cannot copy {} into the root filesystem (cp: {status})",
            src.display()
        );
    }
    Ok(Fill::Copy)
}

/// `cp FLAGS SRC/. ROOTFS`; -a keeps owners (as root), modes, times,
/// links, devices and extended attributes.
async fn cp(job: &Job<'_>, flags: &str, src: &Path, rootfs: &Path) -> Result<ExitStatus> {
    let mut cmd = Command::new("cp");
    cmd.arg(flags).arg("--").arg(src.join(".")).arg(rootfs);
    job.log.run(cmd, &job.cancel).await
}
