//! Applies OCI image layers (tar, gzip- or zstd-compressed) to a root
//! filesystem, in order, with whiteouts.
//!
//! Every path in a layer is taken as a path inside the root filesystem, the
//! way a process chrooted there would see it: `..` stops at the root, and a
//! symbolic link met on the way (`/lib -> /usr/lib`, or one a layer made to
//! point at `/etc`) is followed inside the root filesystem, never on the
//! host. The last component of an entry is never followed: what stands there
//! is replaced. Hard links may only point at files inside the root
//! filesystem.
//!
//! Whiteouts follow the OCI image spec: `.wh.NAME` removes `NAME` of lower
//! layers, `.wh..wh..opq` empties its folder of what lower layers put there.
//! Both leave alone what the same layer adds, whatever the order of entries.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use filetime::FileTime;
use tar::{Archive, EntryType};
use tokio_util::sync::CancellationToken;

/// The whiteout prefix and the opaque-folder marker of the OCI image spec.
const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

/// How a layer is compressed, told from its first bytes rather than its
/// media type, which registries and tools do not always set right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// Opens a layer file and undoes its compression.
pub fn open(path: &Path) -> Result<(Box<dyn Read + Send>, Compression)> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let head = reader
        .fill_buf()
        .with_context(|| format!("cannot read {}", path.display()))?;
    let compression = if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    };
    let reader: Box<dyn Read + Send> = match compression {
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(reader)
                .with_context(|| format!("cannot start a zstd decoder for {}", path.display()))?,
        ),
        Compression::None => Box::new(reader),
    };
    Ok((reader, compression))
}

/// What applying a layer did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Files, folders, links and devices written.
    pub entries: u64,
    /// Whiteouts and opaque markers honoured.
    pub whiteouts: u64,
    /// Bytes of file contents written.
    pub bytes: u64,
    /// Entries left out, with why (device nodes without root...).
    pub skipped: Vec<String>,
}

/// Applies one uncompressed layer stream to `rootfs` (an existing folder).
/// Ownership is kept only when `as_root`; otherwise files get the caller's
/// and folders stay writable by their owner (so later layers and clean-up
/// work), as Apptainer does when unprivileged. Stops with an error when
/// `cancel` fires.
pub fn apply(
    rootfs: &Path,
    layer: impl Read,
    as_root: bool,
    cancel: &CancellationToken,
) -> Result<Applied> {
    let root = rootfs
        .canonicalize()
        .with_context(|| format!("cannot open the root filesystem {}", rootfs.display()))?;
    let mut applier = Applier {
        root,
        as_root,
        created: HashSet::new(),
        folder_times: Vec::new(),
        applied: Applied::default(),
    };
    let mut archive = Archive::new(layer);
    let entries = archive.entries().context("cannot read the layer as tar")?;
    for entry in entries {
        if cancel.is_cancelled() {
            bail!("cancelled");
        }
        let mut entry = entry.context("cannot read the layer as tar")?;
        let shown = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        applier
            .entry(&mut entry)
            .with_context(|| format!("cannot apply the layer entry {shown}"))?;
    }
    // Folder times last: adding children changed them.
    for (path, mtime) in applier.folder_times.iter().rev() {
        filetime::set_symlink_file_times(path, *mtime, *mtime)
            .with_context(|| format!("cannot set the time of {}", path.display()))?;
    }
    Ok(applier.applied)
}

struct Applier {
    /// The root filesystem, canonical.
    root: PathBuf,
    as_root: bool,
    /// Paths this layer wrote, and their folders: whiteouts spare them.
    created: HashSet<PathBuf>,
    folder_times: Vec<(PathBuf, FileTime)>,
    applied: Applied,
}

/// A layer path as a path relative to the root: `.` dropped, `..` taken
/// back but never above the root, a leading `/` ignored.
fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

impl Applier {
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<()> {
        let rel = clean(&entry.path()?);
        let Some(name) = rel.file_name().map(OsStr::to_os_string) else {
            // The root folder itself: it exists; its metadata is the builder's.
            return Ok(());
        };
        let parent_rel = rel.parent().unwrap_or(Path::new(""));
        let name_bytes = name.as_bytes();
        if name_bytes == OPAQUE.as_bytes() {
            self.applied.whiteouts += 1;
            let folder = self.resolve(parent_rel)?;
            if fs::symlink_metadata(&folder).is_ok_and(|m| m.is_dir()) {
                self.clear_lower(&folder)?;
            }
            return Ok(());
        }
        if let Some(hidden) = name_bytes.strip_prefix(WHITEOUT.as_bytes()) {
            if hidden.starts_with(WHITEOUT.as_bytes()) {
                // Other AUFS metadata (`.wh..wh.plnk`...): not part of the image.
                return Ok(());
            }
            if hidden.is_empty() || hidden == b"." || hidden == b".." {
                bail!("a whiteout must name a file");
            }
            self.applied.whiteouts += 1;
            let target = self.resolve(parent_rel)?.join(OsStr::from_bytes(hidden));
            if !self.created.contains(&target) {
                remove(&target)?;
            }
            return Ok(());
        }

        let folder = self.resolve(parent_rel)?;
        self.make_folders(&folder)?;
        let target = folder.join(&name);
        let header = entry.header();
        let kind = header.entry_type();
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        let owner = (header.uid()?, header.gid()?);
        let mtime = FileTime::from_unix_time(header.mtime().unwrap_or(0) as i64, 0);
        match kind {
            EntryType::Directory => {
                let is_dir = fs::symlink_metadata(&target).is_ok_and(|m| m.is_dir());
                if !is_dir {
                    remove(&target)?;
                    fs::create_dir(&target)?;
                }
                self.set_owner(&target, owner)?;
                let mode = if self.as_root { mode } else { mode | 0o700 };
                fs::set_permissions(&target, fs::Permissions::from_mode(mode))?;
                self.folder_times.push((target.clone(), mtime));
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                remove(&target)?;
                // create_new: never through a link that might stand there.
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&target)?;
                self.applied.bytes += io::copy(entry, &mut file)?;
                drop(file);
                self.set_owner(&target, owner)?;
                // After chown, which clears set-id bits.
                let mode = if self.as_root { mode } else { mode | 0o400 };
                fs::set_permissions(&target, fs::Permissions::from_mode(mode))?;
                filetime::set_symlink_file_times(&target, mtime, mtime)?;
            }
            EntryType::Symlink => {
                let link = entry
                    .link_name()?
                    .ok_or_else(|| anyhow!("a symbolic link without a target"))?;
                remove(&target)?;
                // Kept as written: it is read inside the container.
                std::os::unix::fs::symlink(&link, &target)?;
                self.set_owner(&target, owner)?;
                filetime::set_symlink_file_times(&target, mtime, mtime)?;
            }
            EntryType::Link => {
                let link = entry
                    .link_name()?
                    .ok_or_else(|| anyhow!("a hard link without a target"))?;
                let link_rel = clean(&link);
                let Some(link_name) = link_rel.file_name() else {
                    bail!("a hard link to the root folder");
                };
                let source = self
                    .resolve(link_rel.parent().unwrap_or(Path::new("")))?
                    .join(link_name);
                match fs::symlink_metadata(&source) {
                    Ok(m) if m.is_dir() => bail!("a hard link to a folder ({})", link.display()),
                    Ok(_) => {}
                    Err(e) => {
                        return Err(e).with_context(|| {
                            format!("its target {} is not in the image", link.display())
                        });
                    }
                }
                if source != target {
                    remove(&target)?;
                    fs::hard_link(&source, &target)?;
                }
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                if !self.as_root && kind != EntryType::Fifo {
                    self.applied
                        .skipped
                        .push(format!("{}: a device node needs root", rel.display()));
                    return Ok(());
                }
                remove(&target)?;
                make_node(&target, kind, mode, header)?;
                self.set_owner(&target, owner)?;
                fs::set_permissions(&target, fs::Permissions::from_mode(mode))?;
                filetime::set_symlink_file_times(&target, mtime, mtime)?;
            }
            other => {
                self.applied.skipped.push(format!(
                    "{}: unsupported tar entry {other:?}",
                    rel.display()
                ));
                return Ok(());
            }
        }
        self.mark_created(target);
        self.applied.entries += 1;
        Ok(())
    }

    /// The real path of a folder given relative to the root, every link on
    /// the way followed inside the root.
    fn resolve(&self, rel: &Path) -> Result<PathBuf> {
        let path = safe_path::scoped_join(&self.root, rel)
            .with_context(|| format!("cannot resolve /{} in the image", rel.display()))?;
        // scoped_join promises this; a layer writing outside is worth a second look.
        if !path.starts_with(&self.root) {
            bail!("/{} resolves outside the image", rel.display());
        }
        Ok(path)
    }

    /// Creates missing folders of an entry (layers may omit them); they get
    /// mode 0755, as other unpackers give them.
    fn make_folders(&mut self, folder: &Path) -> Result<()> {
        if fs::symlink_metadata(folder).is_ok_and(|m| m.is_dir()) {
            return Ok(());
        }
        fs::create_dir_all(folder)
            .with_context(|| format!("cannot create the folder {}", folder.display()))?;
        Ok(())
    }

    fn mark_created(&mut self, path: PathBuf) {
        let mut p = path;
        while p != self.root && self.created.insert(p.clone()) {
            if !p.pop() {
                break;
            }
        }
    }

    /// Empties `folder` of what lower layers put there (an opaque folder),
    /// keeping what this layer wrote.
    fn clear_lower(&mut self, folder: &Path) -> Result<()> {
        let children = fs::read_dir(folder)
            .with_context(|| format!("cannot read the folder {}", folder.display()))?;
        for child in children {
            let path = child?.path();
            if !self.created.contains(&path) {
                remove(&path)?;
            } else if fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
                self.clear_lower(&path)?;
            }
        }
        Ok(())
    }

    fn set_owner(&self, path: &Path, (uid, gid): (u64, u64)) -> Result<()> {
        if !self.as_root {
            return Ok(());
        }
        let uid = u32::try_from(uid).map_err(|_| anyhow!("owner id {uid} is out of range"))?;
        let gid = u32::try_from(gid).map_err(|_| anyhow!("group id {gid} is out of range"))?;
        std::os::unix::fs::lchown(path, Some(uid), Some(gid))
            .with_context(|| format!("cannot set the owner of {}", path.display()))
    }
}

/// Removes whatever stands at `path` (a link itself, never its target);
/// nothing there is fine.
fn remove(path: &Path) -> Result<()> {
    let result = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => Err(e),
    };
    result.with_context(|| format!("cannot remove {}", path.display()))
}

fn make_node(path: &Path, kind: EntryType, mode: u32, header: &tar::Header) -> Result<()> {
    use nix::sys::stat::{Mode, SFlag, makedev, mknod};
    let (flag, dev) = match kind {
        EntryType::Fifo => (SFlag::S_IFIFO, 0),
        _ => {
            let major = header.device_major()?.unwrap_or(0);
            let minor = header.device_minor()?.unwrap_or(0);
            let flag = if kind == EntryType::Char {
                SFlag::S_IFCHR
            } else {
                SFlag::S_IFBLK
            };
            (flag, makedev(major.into(), minor.into()))
        }
    };
    mknod(path, flag, Mode::from_bits_truncate(mode), dev)
        .with_context(|| format!("cannot make the node {}", path.display()))
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;

    use super::*;

    /// A layer made in memory, entry by entry.
    struct Layer(tar::Builder<Vec<u8>>);

    impl Layer {
        fn new() -> Layer {
            Layer(tar::Builder::new(Vec::new()))
        }

        fn header(kind: EntryType, mode: u32) -> tar::Header {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_mode(mode);
            h.set_mtime(1_700_000_000);
            h.set_uid(1234);
            h.set_gid(4321);
            h.set_size(0);
            h
        }

        fn dir(mut self, path: &str) -> Layer {
            let mut h = Self::header(EntryType::Directory, 0o755);
            self.0.append_data(&mut h, path, io::empty()).unwrap();
            self
        }

        fn file(mut self, path: &str, data: &str) -> Layer {
            let mut h = Self::header(EntryType::Regular, 0o640);
            h.set_size(data.len() as u64);
            self.0.append_data(&mut h, path, data.as_bytes()).unwrap();
            self
        }

        fn symlink(mut self, path: &str, target: &str) -> Layer {
            let mut h = Self::header(EntryType::Symlink, 0o777);
            self.0.append_link(&mut h, path, target).unwrap();
            self
        }

        fn hardlink(mut self, path: &str, target: &str) -> Layer {
            let mut h = Self::header(EntryType::Link, 0o644);
            self.0.append_link(&mut h, path, target).unwrap();
            self
        }

        /// A raw entry path, which `tar::Builder` would refuse (`..`).
        fn raw_file(mut self, path: &str, data: &str) -> Layer {
            let mut h = Self::header(EntryType::Regular, 0o644);
            h.set_size(data.len() as u64);
            let name = &mut h.as_old_mut().name;
            name[..path.len()].copy_from_slice(path.as_bytes());
            h.set_cksum();
            self.0.append(&h, data.as_bytes()).unwrap();
            self
        }

        fn bytes(self) -> Vec<u8> {
            self.0.into_inner().unwrap()
        }
    }

    fn root() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rootfs");
        fs::create_dir(&root).unwrap();
        (dir, root)
    }

    fn apply_all(root: &Path, layers: Vec<Layer>) -> Vec<Result<Applied>> {
        layers
            .into_iter()
            .map(|l| apply(root, &l.bytes()[..], false, &CancellationToken::new()))
            .collect()
    }

    fn read(path: &Path) -> String {
        fs::read_to_string(path).unwrap()
    }

    #[test]
    fn later_layers_win_and_whiteouts_remove_lower_files() {
        let (_t, root) = root();
        let lower = Layer::new()
            .dir("etc/")
            .file("etc/a", "lower")
            .file("etc/b", "doomed")
            .dir("usr/lib/")
            .file("usr/lib/x", "kept")
            .dir("var/cache/")
            .file("var/cache/big", "doomed too");
        let upper = Layer::new()
            .file("etc/.wh.b", "")
            .file("etc/a", "upper")
            .file("var/.wh.cache", "");
        for r in apply_all(&root, vec![lower, upper]) {
            r.unwrap();
        }
        assert_eq!(read(&root.join("etc/a")), "upper");
        assert!(!root.join("etc/b").exists());
        assert!(!root.join("etc/.wh.b").exists());
        assert!(!root.join("var/cache").exists());
        assert!(root.join("var").is_dir());
        assert_eq!(read(&root.join("usr/lib/x")), "kept");
    }

    #[test]
    fn opaque_folder_hides_lower_content_but_keeps_its_own_layer() {
        let (_t, root) = root();
        let lower = Layer::new()
            .dir("opt/")
            .file("opt/old", "x")
            .dir("opt/sub/")
            .file("opt/sub/deep", "x")
            .file("keep", "x");
        // Entries of the same layer before and after the marker both stay.
        let upper = Layer::new()
            .file("opt/new", "before marker")
            .file("opt/sub/fresh", "before marker, in a lower folder")
            .file("opt/.wh..wh..opq", "")
            .file("opt/late", "after marker");
        for r in apply_all(&root, vec![lower, upper]) {
            r.unwrap();
        }
        let mut names: Vec<String> = fs::read_dir(root.join("opt"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["late", "new", "sub"]);
        assert!(!root.join("opt/sub/deep").exists());
        assert!(root.join("opt/sub/fresh").exists());
        assert!(root.join("keep").exists());
    }

    #[test]
    fn a_whiteout_spares_what_its_own_layer_adds() {
        let (_t, root) = root();
        let lower = Layer::new().file("f", "lower");
        let upper = Layer::new().file("f", "upper").file(".wh.f", "");
        for r in apply_all(&root, vec![lower, upper]) {
            r.unwrap();
        }
        assert_eq!(read(&root.join("f")), "upper");
    }

    #[test]
    fn hard_links_share_the_file_and_must_point_into_the_image() {
        let (t, root) = root();
        let layer = Layer::new()
            .file("bin/busybox", "binary")
            .hardlink("bin/sh", "bin/busybox")
            .hardlink("./bin/ls", "/bin/busybox");
        apply(&root, &layer.bytes()[..], false, &CancellationToken::new()).unwrap();
        let a = fs::metadata(root.join("bin/busybox")).unwrap();
        assert_eq!(a.ino(), fs::metadata(root.join("bin/sh")).unwrap().ino());
        assert_eq!(a.ino(), fs::metadata(root.join("bin/ls")).unwrap().ino());

        // A link to a host file, by `..` or by an absolute path, resolves
        // inside the image, where there is no such file.
        let host = t.path().join("secret");
        fs::write(&host, "host").unwrap();
        for target in ["../secret", host.to_str().unwrap()] {
            let evil = Layer::new().hardlink("stolen", target);
            let err =
                apply(&root, &evil.bytes()[..], false, &CancellationToken::new()).unwrap_err();
            assert!(
                format!("{err:#}").contains("is not in the image"),
                "{err:#}"
            );
        }
        assert_eq!(fs::metadata(&host).unwrap().nlink(), 1);
        assert!(!root.join("stolen").exists());
    }

    #[test]
    fn absolute_links_in_the_image_point_inside_it() {
        let (_t, root) = root();
        let layer = Layer::new()
            .dir("usr/lib/")
            .symlink("lib", "/usr/lib")
            .file("lib/libc.so", "libc")
            .symlink("usr/lib64", "../lib")
            .file("usr/lib64/ld.so", "ld");
        apply(&root, &layer.bytes()[..], false, &CancellationToken::new()).unwrap();
        assert_eq!(read(&root.join("usr/lib/libc.so")), "libc");
        // usr/lib64 -> ../lib -> /usr/lib, all inside.
        assert_eq!(read(&root.join("usr/lib/ld.so")), "ld");
        // Links are kept as written, for the container to read.
        assert_eq!(
            fs::read_link(root.join("lib")).unwrap(),
            Path::new("/usr/lib")
        );
    }

    #[test]
    fn a_malicious_layer_cannot_write_outside_the_root_filesystem() {
        let (t, root) = root();
        let outside = t.path().join("host-etc");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("passwd"), "host").unwrap();
        let outside_str = outside.to_str().unwrap();
        let evil = Layer::new()
            // A link to the host's folder, then files through it.
            .symlink("hostetc", outside_str)
            .file("hostetc/pwned", "x")
            .symlink("up", "../../../../..")
            .file("up/pwned-up", "x")
            // `..` in the entry's own path.
            .raw_file("../../escaped", "x")
            // A link standing where a file comes: replaced, not followed.
            .symlink("victim", &format!("{outside_str}/passwd"))
            .file("victim", "replaced");
        apply(&root, &evil.bytes()[..], false, &CancellationToken::new()).unwrap();

        let mut host: Vec<_> = fs::read_dir(&outside)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        host.sort();
        assert_eq!(host, ["passwd"]);
        assert_eq!(read(&outside.join("passwd")), "host");
        assert!(!t.path().join("escaped").exists());
        // Everything landed inside, where a chroot would have put it.
        let inside = root.join(outside.strip_prefix("/").unwrap());
        assert!(inside.join("pwned").is_file());
        assert!(root.join("pwned-up").is_file());
        assert!(root.join("escaped").is_file());
        assert_eq!(read(&root.join("victim")), "replaced");

        // A whiteout through the link removes nothing on the host either.
        let wipe = Layer::new()
            .file("hostetc/.wh.passwd", "")
            .file("up/.wh.host-etc", "");
        apply(&root, &wipe.bytes()[..], false, &CancellationToken::new()).unwrap();
        assert_eq!(read(&outside.join("passwd")), "host");
    }

    #[test]
    fn modes_times_and_owners_are_kept() {
        let (_t, root) = root();
        let layer = Layer::new().dir("d/").file("d/f", "data");
        let as_root = nix::unistd::geteuid().is_root();
        apply(
            &root,
            &layer.bytes()[..],
            as_root,
            &CancellationToken::new(),
        )
        .unwrap();
        let f = fs::metadata(root.join("d/f")).unwrap();
        let d = fs::metadata(root.join("d")).unwrap();
        assert_eq!(f.mtime(), 1_700_000_000);
        assert_eq!(d.mtime(), 1_700_000_000);
        if as_root {
            assert_eq!(f.mode() & 0o7777, 0o640);
            assert_eq!((f.uid(), f.gid()), (1234, 4321));
        } else {
            assert_eq!(f.mode() & 0o7777, 0o640);
        }
    }

    #[test]
    fn gzip_zstd_and_plain_layers_are_told_apart() {
        let (t, root) = root();
        let plain = Layer::new().file("plain", "p").bytes();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&Layer::new().file("gz", "g").bytes()).unwrap();
        let gz = gz.finish().unwrap();
        let zst = zstd::stream::encode_all(&Layer::new().file("zst", "z").bytes()[..], 3).unwrap();
        for (name, bytes, kind) in [
            ("plain.tar", plain, Compression::None),
            ("l.tar.gz", gz, Compression::Gzip),
            ("l.tar.zst", zst, Compression::Zstd),
        ] {
            let path = t.path().join(name);
            fs::write(&path, bytes).unwrap();
            let (reader, found) = open(&path).unwrap();
            assert_eq!(found, kind);
            apply(&root, reader, false, &CancellationToken::new()).unwrap();
        }
        for f in ["plain", "gz", "zst"] {
            assert!(root.join(f).is_file(), "{f}");
        }
    }

    #[test]
    fn a_cancelled_apply_stops() {
        let (_t, root) = root();
        let cancel = CancellationToken::new();
        cancel.cancel();
        let layer = Layer::new().file("f", "x");
        let err = apply(&root, &layer.bytes()[..], false, &cancel).unwrap_err();
        assert!(err.to_string().contains("cancelled"));
        assert!(!root.join("f").exists());
    }
}
