//! Paths inside a root filesystem, and writes that never reach outside it.
//!
//! A root filesystem comes from an image nobody checked: a symbolic link in
//! it may point at `/etc` of the host, and a file in it may be a hard link
//! into a tree we must not change (the `localimage` fast path links the
//! source tree). So every path is resolved inside the root, the way a
//! chrooted process would see it, and every file we write replaces what
//! stood there (unlink, then create) instead of writing through it.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// `path` (absolute or relative, as written in a recipe) inside `rootfs`:
/// `..` stops at the root and symbolic links are followed inside it.
pub fn inside(rootfs: &Path, path: impl AsRef<Path>) -> Result<PathBuf> {
    let path = path.as_ref();
    safe_path::scoped_join(rootfs, path).with_context(|| {
        format!(
            "cannot resolve {} inside the root filesystem",
            path.display()
        )
    })
}

/// Writes `data` to `path` as a new file with `mode`, replacing a file or
/// link that stood there (never writing through it).
pub fn replace_file(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    remove_non_dir(path)?;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(data)
        .with_context(|| format!("cannot write {}", path.display()))?;
    // The umask may have taken bits away from `mode`.
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {}", path.display()))?;
    Ok(())
}

/// Removes a file or symbolic link at `path`, if any; a folder stays.
pub fn remove_non_dir(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if !meta.is_dir() => {
            fs::remove_file(path).with_context(|| format!("cannot remove {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// Makes a symbolic link `link -> target` unless something is at `link`.
pub fn symlink_if_missing(target: &str, link: &Path) -> Result<()> {
    if fs::symlink_metadata(link).is_ok() {
        return Ok(());
    }
    std::os::unix::fs::symlink(target, link)
        .with_context(|| format!("cannot create the link {}", link.display()))
}

/// Creates the folder `rel` (and its parents) inside `rootfs`.
pub fn ensure_dir(rootfs: &Path, rel: &str) -> Result<PathBuf> {
    let dir = inside(rootfs, rel)?;
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_and_dotdot_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir_all(root.join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("hostetc")).unwrap();
        std::os::unix::fs::symlink("../../../..", root.join("up")).unwrap();
        assert_eq!(
            inside(&root, "/hostetc/passwd").unwrap(),
            root.join("etc/passwd")
        );
        assert_eq!(inside(&root, "../../x").unwrap(), root.join("x"));
        assert_eq!(inside(&root, "up/x").unwrap(), root.join("x"));
    }

    #[test]
    fn replace_file_never_writes_through_a_hard_link() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("source");
        let copy = dir.path().join("copy");
        fs::write(&source, "original").unwrap();
        fs::hard_link(&source, &copy).unwrap();
        replace_file(&copy, b"new", 0o755).unwrap();
        assert_eq!(fs::read_to_string(&source).unwrap(), "original");
        assert_eq!(fs::read_to_string(&copy).unwrap(), "new");
        let mode = fs::metadata(&copy).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
    }
}
