//! Packing a prepared root filesystem where it stands.
//!
//! A `localimage` folder whose recipe only adds metadata (`%labels`,
//! `%environment`, `%runscript`, `%help`...) needs no copy of the tree, nor
//! even a tree of hard links (making and removing hundreds of folders costs
//! seconds on some filesystems). The build writes into a small *upper*
//! folder holding copies of what it reads and replaces (`/.singularity.d`,
//! `/etc/hosts`, `/etc/resolv.conf`, the links at the root), then
//! `mksquashfs` reads the source tree itself, with the upper folder's
//! entries laid over it as pseudo files (`-pf`) and the source's entries
//! they replace left out (`-ef`). The source is only ever read.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// What the base layout and the metadata read or replace, relative to the root.
const READ_BY_BUILD: &[&str] = &[
    ".singularity.d",
    "etc/hosts",
    "etc/resolv.conf",
    "singularity",
    "environment",
    ".exec",
    ".run",
    ".shell",
    ".test",
];

/// Copies into the empty `upper` what the build reads from `lower`,
/// keeping links as links. Returns the paths copied.
pub fn prepare_upper(lower: &Path, upper: &Path) -> Result<BTreeSet<PathBuf>> {
    let mut copied = BTreeSet::new();
    for rel in READ_BY_BUILD {
        let src = lower.join(rel);
        let Ok(meta) = fs::symlink_metadata(&src) else {
            continue;
        };
        let dst = upper.join(rel);
        if let Some(parent) = dst.parent() {
            fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let status = std::process::Command::new("cp")
            .arg("-a")
            .arg("--")
            .arg(&src)
            .arg(&dst)
            .status()
            .context("cannot run cp")?;
        if !status.success() {
            bail!("cannot copy {} ({status})", src.display());
        }
        if meta.is_dir() {
            for e in walkdir::WalkDir::new(&dst) {
                let e = e?;
                copied.insert(e.path().strip_prefix(upper)?.to_path_buf());
            }
        } else {
            copied.insert(PathBuf::from(rel));
        }
    }
    Ok(copied)
}

/// The `-ef` and `-pf` lists that lay `upper` over `lower`, written into
/// `dir`: every entry of `upper` that differs from `lower` becomes a pseudo
/// entry (the source's own left out), copied entries the build removed are
/// left out, and so are device nodes (as in the copied tree).
pub fn lists(
    lower: &Path,
    upper: &Path,
    copied: &BTreeSet<PathBuf>,
    dir: &Path,
) -> Result<(PathBuf, PathBuf)> {
    let mut excludes: BTreeSet<PathBuf> = BTreeSet::new();
    let mut pseudo = String::new();
    // Parents come before their children in a walk, as -pf needs.
    for e in walkdir::WalkDir::new(upper)
        .min_depth(1)
        .sort_by_file_name()
    {
        let e = e?;
        let rel = e.path().strip_prefix(upper)?.to_path_buf();
        let name = pseudo_name(&rel)?;
        let meta = fs::symlink_metadata(e.path())?;
        let mode = meta.mode() & 0o7777;
        let mtime = meta.mtime().max(0);
        let below = fs::symlink_metadata(lower.join(&rel)).ok();
        let t = meta.file_type();
        if t.is_dir() {
            match &below {
                Some(b) if b.is_dir() => continue,
                Some(_) => {
                    excludes.insert(rel.clone());
                }
                None => {}
            }
            pseudo.push_str(&format!("{name} D {mtime} {mode:o} 0 0\n"));
        } else if t.is_symlink() {
            let target = fs::read_link(e.path())?;
            if below.as_ref().is_some_and(|b| b.is_symlink())
                && fs::read_link(lower.join(&rel)).ok().as_ref() == Some(&target)
            {
                continue;
            }
            if below.is_some() {
                excludes.insert(rel.clone());
            }
            let target = target
                .to_str()
                .filter(|t| !t.contains(['\n', ' ']))
                .ok_or_else(|| anyhow::anyhow!("unusual link target in {}", rel.display()))?;
            pseudo.push_str(&format!("{name} S {mtime} 777 0 0 {target}\n"));
        } else if t.is_file() {
            if let Some(b) = &below {
                if b.is_file()
                    && b.mode() == meta.mode()
                    && same_content(&lower.join(&rel), e.path())?
                {
                    continue;
                }
                excludes.insert(rel.clone());
            }
            let source = e
                .path()
                .to_str()
                .ok_or_else(|| anyhow::anyhow!("the build folder's path is not UTF-8"))?;
            pseudo.push_str(&format!(
                "{name} F {mtime} {mode:o} 0 0 cat {}\n",
                super::metadata::shell_quote(source)
            ));
        } else {
            bail!(
                "unexpected special file {} in the build's metadata",
                rel.display()
            );
        }
    }
    for rel in copied {
        if fs::symlink_metadata(upper.join(rel)).is_err() {
            excludes.insert(rel.clone());
        }
    }
    let dev = lower.join("dev");
    if dev.is_dir() && !dev.is_symlink() {
        for e in walkdir::WalkDir::new(&dev) {
            let e = e?;
            let t = e.file_type();
            if t.is_char_device() || t.is_block_device() {
                excludes.insert(e.path().strip_prefix(lower)?.to_path_buf());
            }
        }
    }
    let excl_path = dir.join("exclude.list");
    let mut f = fs::File::create(&excl_path)?;
    for rel in &excludes {
        writeln!(f, "{}", pseudo_name(rel)?)?;
    }
    let pseudo_path = dir.join("pseudo.list");
    fs::write(&pseudo_path, pseudo)?;
    Ok((excl_path, pseudo_path))
}

/// A relative path as the lists take it (no blanks or newlines: quoting
/// rules differ between mksquashfs versions).
fn pseudo_name(rel: &Path) -> Result<String> {
    let s = rel
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("{} is not UTF-8", rel.display()))?;
    if s.contains(|c: char| c.is_whitespace() || c == '"' || c == '\\') {
        bail!("{s}: a name with blanks cannot be laid over the source");
    }
    Ok(s.to_string())
}

fn same_content(a: &Path, b: &Path) -> Result<bool> {
    let (ma, mb) = (fs::metadata(a)?, fs::metadata(b)?);
    if ma.len() != mb.len() {
        return Ok(false);
    }
    Ok(fs::read(a)? == fs::read(b)?)
}
