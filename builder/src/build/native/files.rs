//! `%files` and `%appfiles`: copies from the host (relative to the recipe's
//! folder) or from an earlier stage's root filesystem (`%files from NAME`).
//!
//! As Apptainer does: a source may be a glob; a missing destination means
//! the same path as the source; a destination that is a folder (or ends in
//! `/`) receives the source under its own name; parent folders are made.
//! Host copies follow every symbolic link (`cp -L`); stage copies follow
//! only the source named (or globbed) and keep links inside a folder.
//! Destinations are resolved inside the root filesystem and never written
//! through: a link or file in the way is replaced.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use sreg_recipe::FileEntry;

use super::paths::{inside, remove_non_dir};
use crate::build::log::BuildLog;

/// Where a copy's sources come from.
pub enum Origin<'a> {
    /// The host; relative sources start at this folder (the recipe's).
    Host(&'a Path),
    /// An earlier stage's root filesystem.
    Stage(&'a Path),
}

/// Copies one `%files` line into `rootfs`, under `dest_base` (`/`, or an
/// app's folder for `%appfiles`).
pub fn copy_entry(
    log: &BuildLog,
    origin: &Origin<'_>,
    entry: &FileEntry,
    rootfs: &Path,
    dest_base: &str,
) -> Result<()> {
    let at = |e: anyhow::Error| e.context(format!("line {}: %files {}", entry.line, entry.src));
    let sources = expand(origin, &entry.src).map_err(at)?;
    for (src, as_written) in sources {
        let dest = entry.dest.clone().unwrap_or(as_written);
        let dest_in_root = format!("{}/{}", dest_base.trim_end_matches('/'), dest);
        let target = destination(rootfs, &dest_in_root, &src).map_err(at)?;
        log.line(format!(
            "copying {} to {}",
            src.display(),
            target
                .strip_prefix(rootfs)
                .map(|p| format!("/{}", p.display()))
                .unwrap_or_default()
        ));
        let follow_inner = matches!(origin, Origin::Host(_));
        copy_tree(&src, &target, true, follow_inner).map_err(at)?;
    }
    Ok(())
}

/// The source paths of an entry, each with the path to use as destination
/// when the line gives none.
fn expand(origin: &Origin<'_>, src: &str) -> Result<Vec<(PathBuf, String)>> {
    if src.is_empty() {
        bail!("an empty source");
    }
    let (base, pattern_path) = match origin {
        Origin::Host(dir) => (None, dir.join(src)),
        Origin::Stage(root) => (Some(*root), root.join(src.trim_start_matches('/'))),
    };
    let pattern = pattern_path
        .to_str()
        .ok_or_else(|| anyhow!("the path is not UTF-8"))?;
    let has_glob = src.contains(['*', '?', '[']);
    let matches: Vec<PathBuf> = if has_glob {
        let mut m: Vec<PathBuf> = glob::glob(pattern)
            .map_err(|e| anyhow!("bad glob pattern: {e}"))?
            .filter_map(Result::ok)
            .collect();
        m.sort();
        if m.is_empty() {
            bail!("the pattern matches nothing");
        }
        m
    } else {
        vec![pattern_path.clone()]
    };
    let mut out = Vec::new();
    for found in matches {
        match base {
            None => {
                if fs::metadata(&found).is_err() {
                    bail!("{} does not exist", found.display());
                }
                // The same path as written: relative to the recipe's folder,
                // taken from the root in the image.
                let written = match origin {
                    Origin::Host(dir) if !Path::new(src).is_absolute() => found
                        .strip_prefix(dir)
                        .unwrap_or(&found)
                        .display()
                        .to_string(),
                    _ => found.display().to_string(),
                };
                out.push((found, written));
            }
            Some(root) => {
                let rel = found.strip_prefix(root).unwrap_or(&found).to_path_buf();
                // The named source may be a link: followed inside that stage.
                let resolved = inside(root, &rel)?;
                if fs::metadata(&resolved).is_err() {
                    bail!("/{} does not exist in that stage", rel.display());
                }
                out.push((resolved, format!("/{}", rel.display())));
            }
        }
    }
    Ok(out)
}

/// The path a source lands at: inside a folder destination under the
/// source's name, else the destination itself; parents are made.
fn destination(rootfs: &Path, dest: &str, src: &Path) -> Result<PathBuf> {
    let resolved = inside(rootfs, dest)?;
    let name = src
        .file_name()
        .ok_or_else(|| anyhow!("{} has no file name", src.display()))?;
    if dest.ends_with('/') {
        fs::create_dir_all(&resolved)
            .with_context(|| format!("cannot create {}", resolved.display()))?;
        return Ok(resolved.join(name));
    }
    if resolved.is_dir() {
        return Ok(resolved.join(name));
    }
    if let Some(parent) = resolved.parent() {
        fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    Ok(resolved)
}

/// Copies `src` to `target` (whose parent is a real folder inside the root
/// filesystem). `follow_top`/`follow_inner`: follow symbolic links at the
/// top and below it.
fn copy_tree(src: &Path, target: &Path, follow_top: bool, follow_inner: bool) -> Result<()> {
    let meta = if follow_top {
        fs::metadata(src)
    } else {
        fs::symlink_metadata(src)
    }
    .with_context(|| format!("cannot read {}", src.display()))?;
    let kind = meta.file_type();
    if kind.is_dir() {
        let existing = fs::symlink_metadata(target).ok();
        if !existing.as_ref().is_some_and(|m| m.is_dir()) {
            // A file or a link in the way is replaced, never followed.
            remove_non_dir(target)?;
            fs::create_dir(target)
                .with_context(|| format!("cannot create {}", target.display()))?;
            fs::set_permissions(target, fs::Permissions::from_mode(meta.mode_bits()))?;
        }
        let mut children: Vec<_> = fs::read_dir(src)
            .with_context(|| format!("cannot list {}", src.display()))?
            .collect::<std::io::Result<_>>()?;
        children.sort_by_key(|e| e.file_name());
        for child in children {
            copy_tree(
                &child.path(),
                &target.join(child.file_name()),
                follow_inner,
                follow_inner,
            )?;
        }
    } else if kind.is_file() {
        if fs::symlink_metadata(target).is_ok_and(|m| m.is_dir()) {
            bail!("cannot replace the folder {} with a file", target.display());
        }
        remove_non_dir(target)?;
        fs::copy(src, target)
            .with_context(|| format!("cannot copy {} to {}", src.display(), target.display()))?;
    } else if kind.is_symlink() {
        let to = fs::read_link(src)?;
        remove_non_dir(target)?;
        std::os::unix::fs::symlink(&to, target)
            .with_context(|| format!("cannot create the link {}", target.display()))?;
    } else {
        bail!(
            "{} is a special file (device, socket or pipe): only files, folders and links are copied",
            src.display()
        );
    }
    if nix::unistd::geteuid().is_root() && !follow_inner {
        // Stage copies keep owners, as Apptainer's tar copy does as root.
        use std::os::unix::fs::MetadataExt;
        let _ = std::os::unix::fs::lchown(target, Some(meta.uid()), Some(meta.gid()));
    }
    Ok(())
}

trait ModeBits {
    fn mode_bits(&self) -> u32;
}

impl ModeBits for fs::Metadata {
    fn mode_bits(&self) -> u32 {
        self.permissions().mode() & 0o7777
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(src: &str, dest: Option<&str>) -> FileEntry {
        FileEntry {
            src: src.into(),
            dest: dest.map(Into::into),
            from: None,
            app: None,
            line: 7,
        }
    }

    fn log(dir: &Path) -> BuildLog {
        BuildLog::create(&dir.join("log"), false).unwrap()
    }

    #[test]
    fn host_files_globs_folders_and_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path().join("ctx");
        let root = dir.path().join("root");
        fs::create_dir_all(ctx.join("data/sub")).unwrap();
        fs::create_dir_all(&root).unwrap();
        fs::write(ctx.join("data/a.txt"), "a").unwrap();
        fs::write(ctx.join("data/b.txt"), "b").unwrap();
        fs::write(ctx.join("data/sub/c"), "c").unwrap();
        let log = log(dir.path());
        let host = Origin::Host(&ctx);
        copy_entry(&log, &host, &entry("data/*.txt", Some("/opt/")), &root, "/").unwrap();
        assert_eq!(fs::read_to_string(root.join("opt/a.txt")).unwrap(), "a");
        assert_eq!(fs::read_to_string(root.join("opt/b.txt")).unwrap(), "b");
        copy_entry(&log, &host, &entry("data", None), &root, "/").unwrap();
        assert_eq!(fs::read_to_string(root.join("data/sub/c")).unwrap(), "c");
        // Into an existing folder: under the source's name.
        copy_entry(&log, &host, &entry("data/sub", Some("/opt")), &root, "/").unwrap();
        assert_eq!(fs::read_to_string(root.join("opt/sub/c")).unwrap(), "c");
        let err = copy_entry(&log, &host, &entry("nope/*.x", None), &root, "/")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 7"), "{err}");
    }

    #[test]
    fn destinations_never_leave_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path().join("ctx");
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        fs::create_dir_all(&ctx).unwrap();
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(ctx.join("f"), "payload").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("escape")).unwrap();
        std::os::unix::fs::symlink(outside.join("file"), root.join("etc/link")).unwrap();
        let log = log(dir.path());
        let host = Origin::Host(&ctx);
        copy_entry(&log, &host, &entry("f", Some("/escape/f")), &root, "/").unwrap();
        copy_entry(&log, &host, &entry("f", Some("../../../f2")), &root, "/").unwrap();
        copy_entry(&log, &host, &entry("f", Some("/etc/link")), &root, "/").unwrap();
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
        assert!(root.join("f2").is_file());
    }

    #[test]
    fn stage_copies_keep_inner_links() {
        let dir = tempfile::tempdir().unwrap();
        let stage = dir.path().join("stage");
        let root = dir.path().join("root");
        fs::create_dir_all(stage.join("opt/app")).unwrap();
        fs::create_dir_all(&root).unwrap();
        fs::write(stage.join("opt/app/bin"), "x").unwrap();
        std::os::unix::fs::symlink("bin", stage.join("opt/app/alias")).unwrap();
        std::os::unix::fs::symlink("/opt/app", stage.join("current")).unwrap();
        let log = log(dir.path());
        let from = Origin::Stage(&stage);
        copy_entry(
            &log,
            &from,
            &entry("/current", Some("/usr/app")),
            &root,
            "/",
        )
        .unwrap();
        assert_eq!(
            fs::read_link(root.join("usr/app/alias")).unwrap(),
            Path::new("bin")
        );
        assert_eq!(fs::read_to_string(root.join("usr/app/bin")).unwrap(), "x");
    }
}
