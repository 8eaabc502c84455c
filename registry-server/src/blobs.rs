//! Image bytes in object storage.
//!
//! An upload streams into a temporary object (`uploads/<id>`), hashed once
//! on the way through and in constant memory. Only when the hash, the size
//! and the SIF checks pass is it moved to its content address
//! (`blobs/sha256/<hex>`); content already there is kept once. What an
//! interrupted upload leaves behind is under `uploads/`, where `gc` finds it.

use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    GetOptions, GetRange, GetResult, GetResultPayload, ObjectStoreExt, WriteMultipart,
};
use rand::distr::{Alphanumeric, SampleString};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tokio_util::io::ReaderStream;

use crate::error::{Error, Result};
use crate::storage::Storage;

/// Parts written to the store while an upload streams in: large enough for
/// S3 (at least 5 MiB), small enough to keep memory flat.
const CHUNK: usize = 8 << 20;
/// Parts in flight at once.
const IN_FLIGHT: usize = 2;

/// A finished temporary upload.
#[derive(Debug, Clone)]
pub struct Ingested {
    pub temp: Path,
    pub size: u64,
    /// Lower-case hex sha256 of the bytes.
    pub sha256: String,
}

impl Storage {
    fn blob_path(&self, sha256_hex: &str) -> Path {
        self.prefix
            .clone()
            .join("blobs")
            .join("sha256")
            .join(sha256_hex)
    }

    pub fn uploads_prefix(&self) -> Path {
        self.prefix.clone().join("uploads")
    }

    /// Streams `body` into a new temporary object, refusing more than `limit`
    /// bytes. On any error the temporary object is removed.
    pub async fn ingest<S, E>(&self, mut body: S, limit: u64) -> Result<Ingested>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let id = Alphanumeric.sample_string(&mut rand::rng(), 24);
        let temp = self.uploads_prefix().join(id);
        let upload = self.store.put_multipart(&temp).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, CHUNK);
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        let failure = loop {
            let chunk = match body.next().await {
                None => break None,
                Some(Ok(chunk)) => chunk,
                Some(Err(e)) => {
                    break Some(Error::BadRequest(format!(
                        "the upload was interrupted after {size} bytes: {e}"
                    )));
                }
            };
            size += chunk.len() as u64;
            if size > limit {
                break Some(Error::TooLarge(format!(
                    "the image is larger than this registry's limit of {limit} bytes"
                )));
            }
            hasher.update(&chunk);
            if let Err(e) = writer.wait_for_capacity(IN_FLIGHT).await {
                break Some(e.into());
            }
            writer.write(&chunk);
        };
        if let Some(err) = failure {
            let _ = writer.abort().await;
            return Err(err);
        }
        writer.finish().await?;
        Ok(Ingested {
            temp,
            size,
            sha256: hex::encode(hasher.finalize()),
        })
    }

    /// Moves a verified upload to its content address and returns the
    /// digest (`sha256:<hex>`). Content already stored is kept as it is.
    pub async fn commit(&self, upload: &Ingested) -> Result<String> {
        let target = self.blob_path(&upload.sha256);
        if self.store.head(&target).await.is_ok() {
            self.discard(&upload.temp).await;
        } else {
            self.store.rename(&upload.temp, &target).await?;
        }
        // On a local folder, the bytes and the name reach the disk before the
        // image is published: a power loss cannot leave a published image
        // without its content. (S3 answers a PUT only once it is durable.)
        if let Some(file) = self.local_file(&target) {
            tokio::task::spawn_blocking(move || sync_file_and_folder(&file))
                .await
                .map_err(|e| Error::Internal(format!("fsync task failed: {e}")))?
                .map_err(|e| Error::Internal(format!("cannot fsync a stored blob: {e}")))?;
        }
        Ok(format!("sha256:{}", upload.sha256))
    }

    /// Removes a temporary object; a failure only leaves work for `gc`.
    pub async fn discard(&self, temp: &Path) {
        if let Err(e) = self.store.delete(temp).await {
            tracing::warn!("could not remove temporary upload {temp}: {e}");
        }
    }

    /// Reads a stored blob, whole or a byte range.
    pub async fn get_blob(&self, digest: &str, range: Option<Range<u64>>) -> Result<Blob> {
        let hex = digest
            .strip_prefix("sha256:")
            .ok_or_else(|| Error::Internal(format!("bad blob digest {digest}")))?;
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..Default::default()
        };
        Ok(Blob(
            self.store.get_opts(&self.blob_path(hex), options).await?,
        ))
    }

    /// A blocking `Read + Seek` over a stored object, for the SIF reader.
    /// Use it inside `spawn_blocking`.
    pub fn object_reader(&self, path: &Path, len: u64) -> ObjectReader {
        ObjectReader {
            storage: self.clone(),
            path: path.clone(),
            len,
            pos: 0,
            buf: Bytes::new(),
            buf_start: 0,
            runtime: tokio::runtime::Handle::current(),
        }
    }
}

fn sync_file_and_folder(file: &std::path::Path) -> std::io::Result<()> {
    std::fs::File::open(file)?.sync_all()?;
    if let Some(dir) = file.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// A stored blob being read.
pub struct Blob(pub GetResult);

/// Local files are read in blocks this large: object_store's own 8 KiB
/// reads, one blocking task each, cap a download far below disk speed.
const FILE_READ_BLOCK: usize = 1 << 20;

impl Blob {
    /// The byte range being read.
    pub fn range(&self) -> Range<u64> {
        self.0.range.clone()
    }

    /// All the bytes, in memory: for small objects only.
    pub async fn bytes(self) -> object_store::Result<Bytes> {
        let chunks: Vec<Bytes> = self.into_stream().try_collect().await?;
        Ok(chunks.concat().into())
    }

    /// The bytes, as a stream.
    pub fn into_stream(self) -> BoxStream<'static, object_store::Result<Bytes>> {
        let GetResult { payload, range, .. } = self.0;
        match payload {
            GetResultPayload::File(mut file, path) => {
                if let Err(e) = file.seek(SeekFrom::Start(range.start)) {
                    let err = object_store::Error::Generic {
                        store: "LocalFileSystem",
                        source: format!("seeking in {}: {e}", path.display()).into(),
                    };
                    return futures_util::stream::once(async move { Err(err) }).boxed();
                }
                let reader = tokio::fs::File::from_std(file).take(range.end - range.start);
                ReaderStream::with_capacity(reader, FILE_READ_BLOCK)
                    .map_err(|e| object_store::Error::Generic {
                        store: "LocalFileSystem",
                        source: Box::new(e),
                    })
                    .boxed()
            }
            GetResultPayload::Stream(s) => s,
        }
    }
}

/// Reads an object through ranged GETs, 64 KiB at a time: the SIF reader
/// touches only the header, the descriptor table and a few small objects.
pub struct ObjectReader {
    storage: Storage,
    path: Path,
    len: u64,
    pos: u64,
    buf: Bytes,
    buf_start: u64,
    runtime: tokio::runtime::Handle,
}

const READ_AHEAD: u64 = 64 << 10;

impl Read for ObjectReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.len || out.is_empty() {
            return Ok(0);
        }
        let in_buf =
            self.pos >= self.buf_start && self.pos < self.buf_start + self.buf.len() as u64;
        if !in_buf {
            let end = (self.pos + READ_AHEAD.max(out.len() as u64)).min(self.len);
            let range = self.pos..end;
            let store = self.storage.store.clone();
            let path = self.path.clone();
            self.buf = self
                .runtime
                .block_on(async move { store.get_range(&path, range).await })
                .map_err(std::io::Error::other)?;
            self.buf_start = self.pos;
        }
        let from = (self.pos - self.buf_start) as usize;
        let n = out.len().min(self.buf.len() - from);
        out[..n].copy_from_slice(&self.buf[from..from + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for ObjectReader {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target.ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before the start")
        })?;
        Ok(self.pos)
    }
}
