//! Files in and out of the build container through the engine's archive
//! API (tar streams), so nothing depends on bind mounts: the engine may be
//! remote or rootless. Both directions stream in constant memory.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use bollard::Docker;
use bollard::query_parameters::{DownloadFromContainerOptions, UploadToContainerOptions};
use futures_util::TryStreamExt;
use sha2::{Digest, Sha256};
use tokio_util::io::{ReaderStream, StreamReader, SyncIoBridge};

/// One file or folder tree to put into the container.
pub enum Item {
    /// A file, stored at `dest` (a path inside the container) with `mode`.
    File {
        src: PathBuf,
        dest: String,
        mode: u32,
    },
    /// An empty folder.
    Dir { dest: String, mode: u32 },
    /// A folder tree stored at `dest`, without the entries `skip` rejects.
    Tree {
        src: PathBuf,
        dest: String,
        skip: Box<dyn Fn(&Path) -> bool + Send>,
    },
}

/// What went in.
#[derive(Debug, Default, Clone, Copy)]
pub struct Sent {
    pub files: u64,
    pub bytes: u64,
}

/// The name of `dest` (a path inside the container) in an archive
/// extracted at `/`: tar names are relative.
fn entry_name(dest: &str) -> &str {
    dest.trim_start_matches('/')
}

/// Uploads `items` into the container, extracted at `/`. Files and folders
/// are stored as owned by root (the host's owners mean nothing inside).
pub async fn upload(docker: &Docker, container: &str, items: Vec<Item>) -> Result<Sent> {
    let (writer, reader) = tokio::io::duplex(256 * 1024);
    let bridge = SyncIoBridge::new(writer);
    let producer = tokio::task::spawn_blocking(move || -> Result<Sent> {
        let mut tar = tar::Builder::new(bridge);
        let mut sent = Sent::default();
        for item in &items {
            append(&mut tar, item, &mut sent)?;
        }
        let mut bridge = tar
            .into_inner()
            .context("cannot finish the upload archive")?;
        bridge
            .shutdown()
            .context("cannot finish the upload archive")?;
        Ok(sent)
    });
    let options = UploadToContainerOptions {
        path: "/".into(),
        ..Default::default()
    };
    let uploaded = docker
        .upload_to_container(
            container,
            Some(options),
            bollard::body_try_stream(ReaderStream::new(reader)),
        )
        .await;
    // The producer's error explains a cut-short stream better than the engine.
    let sent = producer.await.context("the upload archive task failed")??;
    uploaded.context("the engine refused the upload into the container")?;
    Ok(sent)
}

fn append<W: Write>(tar: &mut tar::Builder<W>, item: &Item, sent: &mut Sent) -> Result<()> {
    match item {
        Item::File { src, dest, mode } => {
            let file = File::open(src).with_context(|| format!("cannot read {}", src.display()))?;
            let meta = file.metadata()?;
            let mut header = root_header(&meta);
            header.set_mode(*mode);
            append_file(tar, header, entry_name(dest), file, sent)
        }
        Item::Dir { dest, mode } => {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(*mode);
            header.set_size(0);
            header.set_mtime(now());
            tar.append_data(&mut header, entry_name(dest), std::io::empty())
                .with_context(|| format!("cannot add {dest} to the upload"))
        }
        Item::Tree { src, dest, skip } => {
            let walk = walkdir::WalkDir::new(src)
                .follow_links(false)
                .sort_by_file_name()
                .into_iter()
                .filter_entry(|e| !skip(e.path()));
            for entry in walk {
                let entry = entry.with_context(|| format!("cannot read {}", src.display()))?;
                let rel = entry
                    .path()
                    .strip_prefix(src)
                    .expect("walkdir stays inside");
                let name = if rel.as_os_str().is_empty() {
                    entry_name(dest).to_string()
                } else {
                    format!("{}/{}", entry_name(dest), rel.display())
                };
                let meta = entry
                    .path()
                    .symlink_metadata()
                    .with_context(|| format!("cannot read {}", entry.path().display()))?;
                let mut header = root_header(&meta);
                let kind = meta.file_type();
                if kind.is_dir() {
                    tar.append_data(&mut header, &name, std::io::empty())
                } else if kind.is_symlink() {
                    let target = std::fs::read_link(entry.path())?;
                    tar.append_link(&mut header, &name, target)
                } else if kind.is_file() {
                    let file = File::open(entry.path())
                        .with_context(|| format!("cannot read {}", entry.path().display()))?;
                    append_file(tar, header, &name, file, sent)?;
                    Ok(())
                } else {
                    // Sockets, fifos and devices have no place in a recipe's folder.
                    Ok(())
                }
                .with_context(|| format!("cannot add {} to the upload", entry.path().display()))?;
            }
            Ok(())
        }
    }
}

/// Appends a regular file, refusing one that changes size while it is read
/// (the archive would be corrupt).
fn append_file<W: Write>(
    tar: &mut tar::Builder<W>,
    mut header: tar::Header,
    name: &str,
    file: File,
    sent: &mut Sent,
) -> Result<()> {
    let size = header.size()?;
    let mut counted = CountingReader {
        inner: file.take(size),
        count: 0,
    };
    tar.append_data(&mut header, name, &mut counted)
        .with_context(|| format!("cannot add {name} to the upload"))?;
    if counted.count != size {
        bail!("{name} changed while it was uploaded");
    }
    sent.files += 1;
    sent.bytes += size;
    Ok(())
}

struct CountingReader<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

/// A header with the entry's type, size, mode and time, owned by root.
fn root_header(meta: &std::fs::Metadata) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_metadata_in_mode(meta, tar::HeaderMode::Complete);
    header.set_uid(0);
    header.set_gid(0);
    let _ = header.set_username("root");
    let _ = header.set_groupname("root");
    header
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What came out: size and sha256 (hex) of the written file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub size: u64,
    pub sha256: String,
}

/// Downloads the one file at `path` in the container into `dest`, hashing
/// it on the way, and checks its size against the archive's header.
pub async fn download_file(
    docker: &Docker,
    container: &str,
    path: &str,
    dest: &Path,
) -> Result<Received> {
    let options = DownloadFromContainerOptions { path: path.into() };
    let stream = docker
        .download_from_container(container, Some(options))
        .map_err(std::io::Error::other);
    let reader = SyncIoBridge::new(StreamReader::new(stream));
    let dest = dest.to_path_buf();
    let path = path.to_string();
    tokio::task::spawn_blocking(move || extract_one(reader, &path, &dest))
        .await
        .context("the download task failed")?
}

fn extract_one(reader: impl Read, path: &str, dest: &Path) -> Result<Received> {
    let fetch = || anyhow!("cannot fetch {path} from the container");
    let mut archive = tar::Archive::new(reader);
    let mut entries = archive.entries().with_context(fetch)?;
    let mut entry = loop {
        match entries.next() {
            None => bail!("the container's archive of {path} holds no file"),
            Some(e) => {
                let e = e.with_context(fetch)?;
                if e.header().entry_type().is_file() {
                    break e;
                }
            }
        }
    };
    let size = entry.header().size().with_context(fetch)?;
    let file = File::create(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    let mut out = HashingWriter {
        inner: std::io::BufWriter::with_capacity(1 << 20, file),
        hasher: Sha256::new(),
        count: 0,
    };
    std::io::copy(&mut entry, &mut out).with_context(fetch)?;
    out.inner
        .flush()
        .with_context(|| format!("cannot write {}", dest.display()))?;
    if out.count != size {
        bail!(
            "{path} came out of the container cut short: {} of {size} bytes",
            out.count
        );
    }
    Ok(Received {
        size,
        sha256: hex::encode(out.hasher.finalize()),
    })
}

struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extract_one_writes_the_first_file_and_its_hash() {
        let dir = tempfile::tempdir().unwrap();
        let mut tar = tar::Builder::new(Vec::new());
        let mut dirh = tar::Header::new_gnu();
        dirh.set_entry_type(tar::EntryType::Directory);
        dirh.set_size(0);
        tar.append_data(&mut dirh, "out", std::io::empty()).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(5);
        h.set_mode(0o644);
        tar.append_data(&mut h, "out/image.sif", &b"hello"[..])
            .unwrap();
        let bytes = tar.into_inner().unwrap();
        let dest = dir.path().join("got");
        let got = extract_one(&bytes[..], "/out/image.sif", &dest).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"hello");
        assert_eq!(got.size, 5);
        assert_eq!(got.sha256, hex::encode(Sha256::digest(b"hello")));
    }

    #[test]
    fn a_truncated_archive_is_an_error_not_a_short_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(4096);
        h.set_mode(0o644);
        tar.append_data(&mut h, "image.sif", &[7u8; 4096][..])
            .unwrap();
        let bytes = tar.into_inner().unwrap();
        let err = extract_one(&bytes[..1024], "/image.sif", &dir.path().join("got"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("image.sif"), "{err}");
    }

    #[test]
    fn an_archive_without_a_file_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let mut tar = tar::Builder::new(Vec::new());
        let mut dirh = tar::Header::new_gnu();
        dirh.set_entry_type(tar::EntryType::Directory);
        dirh.set_size(0);
        tar.append_data(&mut dirh, "out", std::io::empty()).unwrap();
        let bytes = tar.into_inner().unwrap();
        let err = extract_one(&bytes[..], "/out", &dir.path().join("got"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("holds no file"), "{err}");
    }
}
