//! The last step: the final root filesystem packed with `mksquashfs`, then
//! a SIF of the definition file, labels.json and that squashfs as the
//! primary partition.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use sreg_sif::{Arch, DataType, ObjectInput, SifBuilder};
use tokio::process::Command;

use crate::build::job::Job;
use crate::build::tools;

/// Packs `rootfs` into the squashfs file `out`; `lists` are `-ef` and
/// `-pf` files that change what is packed (see [`super::in_place`]).
pub async fn mksquashfs(
    job: &Job<'_>,
    rootfs: &Path,
    out: &Path,
    comp: &str,
    lists: Option<(PathBuf, PathBuf)>,
) -> Result<()> {
    let exe = tools::find("mksquashfs")?;
    let mut cmd = Command::new(exe);
    cmd.arg(rootfs)
        .arg(out)
        .args(["-noappend", "-no-progress", "-comp", comp]);
    if let Some((exclude, pseudo)) = lists {
        cmd.arg("-ef").arg(exclude).arg("-pf").arg(pseudo);
    }
    if !nix::unistd::geteuid().is_root() {
        // Files a user made belong to root in the image, as with Apptainer.
        cmd.arg("-all-root");
    }
    job.log
        .line(format!("packing the root filesystem ({comp})"));
    let status = job.log.run(cmd, &job.cancel).await?;
    if !status.success() {
        bail!("mksquashfs failed ({status})");
    }
    Ok(())
}

/// What goes into the SIF besides the squashfs.
pub struct Objects {
    /// labels.json's bytes (a JSON.Labels object, what `sreg inspect` reads).
    pub labels: Vec<u8>,
    /// Apptainer's `inspect-metadata.json` (a JSON.Generic object).
    pub inspect: Vec<u8>,
    pub arch: Arch,
}

/// Writes the SIF to `job.partial`: definition file, labels, inspect
/// metadata, then the squashfs as the primary system partition.
pub async fn write_sif(job: &Job<'_>, squashfs: &Path, objects: Objects) -> Result<()> {
    let Objects {
        labels,
        inspect,
        arch,
    } = objects;
    let partial = job.partial.clone();
    let squashfs = squashfs.to_path_buf();
    let definition = job.recipe_text.clone().into_bytes();
    job.log
        .line(format!("writing the SIF image ({} partition)", arch.name()));
    tokio::task::spawn_blocking(move || -> Result<()> {
        let part =
            File::open(&squashfs).with_context(|| format!("cannot read {}", squashfs.display()))?;
        let len = part.metadata()?.len();
        let mut out = File::create(&partial)
            .with_context(|| format!("cannot create {}", partial.display()))?;
        SifBuilder::new()
            .object(ObjectInput::definition_file(&definition[..]))
            .object(ObjectInput::labels(&labels[..]))
            .object(
                ObjectInput::new(DataType::GenericJson, &inspect[..])
                    .name(super::inspect::OBJECT_NAME),
            )
            .object(
                ObjectInput::primary_squashfs(BufReader::with_capacity(1 << 20, part), arch)
                    .with_len(len),
            )
            .write(&mut out)
            .with_context(|| format!("cannot write {}", partial.display()))?;
        Ok(())
    })
    .await
    .map_err(|e| anyhow!("the SIF writer stopped: {e}"))?
}
