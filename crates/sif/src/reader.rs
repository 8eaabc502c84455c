//! Opening an image: reads only the global header and the descriptor table,
//! bounding every size by the real file length before trusting it.

use crate::arch::Arch;
use crate::codes::DataType;
use crate::descriptor::{DESCRIPTOR_LEN, Descriptor};
use crate::error::{Result, SifError};
use crate::header::{HEADER_LEN, Header};
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// Most descriptors a table may declare. Real images use 48; the cap keeps
/// a hostile count from making us read hundreds of megabytes of table.
pub const MAX_DESCRIPTORS: i64 = 65_536;

/// Default cap for metadata objects read whole into memory (definition
/// file, labels, environment): such objects are small in real images.
pub const METADATA_LIMIT: u64 = 16 << 20;

/// An opened SIF image over any `Read + Seek` (a file, a cursor, ...).
///
/// Opening reads the 128-byte header and the descriptor table and nothing
/// else; object bytes are read only through [`Sif::object_reader`] and the
/// helpers built on it.
#[derive(Debug)]
pub struct Sif<R> {
    pub(crate) inner: R,
    pub(crate) file_len: u64,
    pub(crate) header: Header,
    /// Used descriptors in table order.
    pub(crate) descriptors: Vec<Descriptor>,
    /// For each table slot, whether it is in use (drives where edits go).
    pub(crate) slot_used: Vec<bool>,
}

impl Sif<File> {
    /// Opens the image at `path` read-only.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let f = File::open(path.as_ref()).map_err(SifError::io("opening image"))?;
        Sif::from_reader(f)
    }

    /// Opens the image at `path` for reading and in-place editing.
    pub fn open_rw(path: impl AsRef<Path>) -> Result<Self> {
        let f = File::options()
            .read(true)
            .write(true)
            .open(path.as_ref())
            .map_err(SifError::io("opening image for writing"))?;
        Sif::from_reader(f)
    }
}

/// Reads exactly `buf.len()` bytes at `offset`, mapping a short read to
/// [`SifError::Truncated`].
fn read_exact_at<R: Read + Seek>(
    r: &mut R,
    offset: u64,
    buf: &mut [u8],
    what: &'static str,
    file_len: u64,
) -> Result<()> {
    r.seek(SeekFrom::Start(offset))
        .map_err(SifError::io("seeking"))?;
    r.read_exact(buf).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            SifError::Truncated {
                what,
                offset,
                len: buf.len() as u64,
                file_len,
            }
        } else {
            SifError::Io {
                context: "reading",
                source: e,
            }
        }
    })
}

impl<R: Read + Seek> Sif<R> {
    /// Parses the header and descriptor table from `inner`.
    ///
    /// Fails on bad magic or version, and on a descriptor table that cannot
    /// be read (negative or absurd count, past end of file). Everything else
    /// is left to [`Sif::verify`], so damaged images can still be inspected.
    pub fn from_reader(mut inner: R) -> Result<Self> {
        let file_len = inner
            .seek(SeekFrom::End(0))
            .map_err(SifError::io("finding file length"))?;
        if file_len < HEADER_LEN as u64 {
            return Err(SifError::Truncated {
                what: "global header",
                offset: 0,
                len: HEADER_LEN as u64,
                file_len,
            });
        }
        let mut hb = [0u8; HEADER_LEN];
        read_exact_at(&mut inner, 0, &mut hb, "global header", file_len)?;
        let header = Header::decode(&hb)?;

        let (table_start, count) = table_bounds(&header, file_len)?;
        let mut descriptors = Vec::new();
        let mut slot_used = Vec::with_capacity(count);
        inner
            .seek(SeekFrom::Start(table_start))
            .map_err(SifError::io("seeking to descriptor table"))?;
        // Buffered so a 48-entry table is a handful of reads, not 48, and
        // limited so buffering never reads past the table into object data.
        let table_len = (count * DESCRIPTOR_LEN) as u64;
        let mut table = BufReader::with_capacity(
            table_len.clamp(1, 64 * 1024) as usize,
            (&mut inner).take(table_len),
        );
        let mut db = [0u8; DESCRIPTOR_LEN];
        for index in 0..count {
            table.read_exact(&mut db).map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => SifError::Truncated {
                    what: "descriptor",
                    offset: table_start + (index * DESCRIPTOR_LEN) as u64,
                    len: DESCRIPTOR_LEN as u64,
                    file_len,
                },
                _ => SifError::Io {
                    context: "reading descriptor table",
                    source: e,
                },
            })?;
            let d = Descriptor::decode(index, &db);
            slot_used.push(d.used);
            if d.used {
                descriptors.push(d);
            }
        }
        drop(table);
        Ok(Sif {
            inner,
            file_len,
            header,
            descriptors,
            slot_used,
        })
    }
}

/// Checks the header's table fields against the file and returns the table
/// start and descriptor count, both safe to use for reading.
pub(crate) fn table_bounds(h: &Header, file_len: u64) -> Result<(u64, usize)> {
    let bad = |reason| SifError::BadDescriptorTable {
        offset: h.descriptors_offset,
        size: h.descriptors_size,
        count: h.descriptors_total,
        reason,
    };
    if h.descriptors_total < 0 {
        return Err(bad("negative descriptor count"));
    }
    if h.descriptors_total > MAX_DESCRIPTORS {
        return Err(bad("descriptor count above limit of 65536"));
    }
    if h.descriptors_offset < 0 {
        return Err(bad("negative offset"));
    }
    if h.descriptors_size < 0 {
        return Err(bad("negative size"));
    }
    // Cannot overflow: count <= 65536.
    let needed = h.descriptors_total as u64 * DESCRIPTOR_LEN as u64;
    if (h.descriptors_size as u64) < needed {
        return Err(bad("size is smaller than descriptors_total * 585"));
    }
    let start = h.descriptors_offset as u64;
    if h.descriptors_total > 0 && start < HEADER_LEN as u64 {
        return Err(bad("table overlaps the global header"));
    }
    let end = start
        .checked_add(needed)
        .ok_or_else(|| bad("offset + size overflows"))?;
    if end > file_len {
        return Err(SifError::Truncated {
            what: "descriptor table",
            offset: start,
            len: needed,
            file_len,
        });
    }
    Ok((start, h.descriptors_total as usize))
}

impl<R> Sif<R> {
    /// The global header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The used descriptors, in table order.
    pub fn descriptors(&self) -> &[Descriptor] {
        &self.descriptors
    }

    /// The descriptor with object id `id`.
    pub fn descriptor(&self, id: u32) -> Result<&Descriptor> {
        self.descriptors
            .iter()
            .find(|d| d.id == id)
            .ok_or(SifError::ObjectNotFound { id })
    }

    /// The used descriptors of one kind, in table order.
    pub fn descriptors_of(&self, kind: DataType) -> impl Iterator<Item = &Descriptor> {
        self.descriptors.iter().filter(move |d| d.data_type == kind)
    }

    /// The first object of a kind, if any.
    pub fn first_of(&self, kind: DataType) -> Option<&Descriptor> {
        self.descriptors_of(kind).next()
    }

    /// The primary system partition, if the image has one.
    pub fn primary_partition(&self) -> Option<&Descriptor> {
        self.descriptors.iter().find(|d| d.is_primary_partition())
    }

    /// The architecture of the primary partition, falling back to the
    /// header's arch field when there is no primary partition.
    pub fn primary_arch(&self) -> Arch {
        self.primary_partition()
            .and_then(|d| d.partition())
            .map(|p| p.arch)
            .unwrap_or(self.header.arch)
    }

    /// Real length of the underlying file in bytes.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// Gives back the underlying reader.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Checks that an object lies inside the file; returns (start, len).
    pub(crate) fn checked_range(&self, d: &Descriptor) -> Result<(u64, u64)> {
        let (start, end) = d.range().ok_or(SifError::BadDescriptorField {
            id: d.id,
            index: d.index,
            field: if d.offset < 0 { "offset" } else { "size" },
            value: if d.offset < 0 || d.size < 0 {
                d.offset.min(d.size)
            } else {
                d.size
            },
            reason: "negative or offset + size overflows",
        })?;
        if end > self.file_len {
            return Err(SifError::ObjectOutOfFile {
                id: d.id,
                offset: start,
                end,
                file_len: self.file_len,
            });
        }
        Ok((start, end - start))
    }
}

impl<R: Read + Seek> Sif<R> {
    /// A reader over one object's bytes only (`Read + Seek`, positions are
    /// relative to the object start). Fails if the object's declared range
    /// is not inside the file.
    pub fn object_reader(&mut self, id: u32) -> Result<ObjectReader<'_, R>> {
        let d = self.descriptor(id)?;
        let (start, len) = self.checked_range(d)?;
        Ok(ObjectReader {
            inner: &mut self.inner,
            start,
            len,
            pos: 0,
        })
    }

    /// Reads a whole object into memory, refusing objects larger than
    /// `max_bytes` (checked before allocating).
    pub fn read_object_limited(&mut self, id: u32, max_bytes: u64) -> Result<Vec<u8>> {
        let mut r = self.object_reader(id)?;
        if r.len > max_bytes {
            return Err(SifError::ObjectTooLarge {
                id,
                size: r.len,
                limit: max_bytes,
            });
        }
        // len <= max_bytes and <= file length, so this allocation is bounded.
        let mut buf = Vec::with_capacity(usize::try_from(r.len).unwrap_or(0));
        r.read_to_end(&mut buf)
            .map_err(SifError::io("reading object"))?;
        Ok(buf)
    }

    fn first_text(&mut self, kind: DataType) -> Result<Option<String>> {
        let Some(id) = self.first_of(kind).map(|d| d.id) else {
            return Ok(None);
        };
        let bytes = self.read_object_limited(id, METADATA_LIMIT)?;
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|e| SifError::BadContent {
                id,
                kind: kind.name(),
                expected: "UTF-8",
                detail: e.to_string(),
            })
    }

    /// The definition file the image was built from, if present
    /// (first `deffile` object, at most [`METADATA_LIMIT`] bytes).
    pub fn definition_file(&mut self) -> Result<Option<String>> {
        self.first_text(DataType::Deffile)
    }

    /// The environment object's text, if present.
    pub fn environment(&mut self) -> Result<Option<String>> {
        self.first_text(DataType::EnvVar)
    }

    /// The JSON labels object, parsed, if present.
    pub fn labels(&mut self) -> Result<Option<serde_json::Value>> {
        let Some(id) = self.first_of(DataType::Labels).map(|d| d.id) else {
            return Ok(None);
        };
        let bytes = self.read_object_limited(id, METADATA_LIMIT)?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| SifError::BadContent {
                id,
                kind: "labels",
                expected: "JSON",
                detail: e.to_string(),
            })
    }
}

/// `Read + Seek` over one object's byte range; never reads outside it.
#[derive(Debug)]
pub struct ObjectReader<'a, R> {
    inner: &'a mut R,
    start: u64,
    len: u64,
    pos: u64,
}

impl<R> ObjectReader<'_, R> {
    /// Object length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True for a zero-length object.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Absolute file offset where the object starts.
    pub fn start(&self) -> u64 {
        self.start
    }
}

impl<R: Read + Seek> Read for ObjectReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.len || buf.is_empty() {
            return Ok(0);
        }
        let want = usize::try_from(self.len - self.pos)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        // Seek every time: another reader may have moved the shared handle.
        self.inner.seek(SeekFrom::Start(self.start + self.pos))?;
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file ended inside object",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: Read + Seek> Seek for ObjectReader<'_, R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let new = match pos {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match new {
            Some(p) => {
                self.pos = p;
                Ok(p)
            }
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before start of object or overflow",
            )),
        }
    }
}
