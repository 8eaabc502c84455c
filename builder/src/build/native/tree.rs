//! Filling a root filesystem from a folder on the host (a sandbox).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

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
    let mut cmd = Command::new("cp");
    // -a keeps owners, modes, times, links, devices and extended attributes.
    cmd.arg(if how == Fill::Link { "-al" } else { "-a" })
        .arg("--")
        .arg(src.join("."))
        .arg(rootfs);
    job.log.line(format!(
        "{} {} into the root filesystem",
        if how == Fill::Link {
            "linking"
        } else {
            "copying"
        },
        src.display()
    ));
    let status = job.log.run(cmd, &job.cancel).await?;
    if !status.success() {
        bail!(
            "cannot copy {} into the root filesystem (cp: {status})",
            src.display()
        );
    }
    Ok(how)
}
