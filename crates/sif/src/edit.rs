//! Editing an existing image **in place**: adding an object appends its
//! data after the data section and fills a free descriptor slot; removing
//! one clears its slot and, when it is the last object, truncates the file.
//! This is what `siftool add`/`del` do, so images stay byte-compatible.
//!
//! Writes are ordered data, then descriptor, then header, so an interrupted
//! add leaves the old image intact (plus unreferenced bytes at the end).

use crate::arch::Arch;
use crate::codes::PartType;
use crate::descriptor::{DESCRIPTOR_LEN, Descriptor, Extra, Link};
use crate::error::{Result, SifError};
use crate::reader::Sif;
use crate::writer::{ObjectInput, align_up, now, stream_object, write_zeros};
use std::fs::File;
use std::io::{self, Cursor, Read, Seek, SeekFrom, Write};

/// Storage whose length can be cut, needed to compact on removal.
pub trait SetLen {
    /// Truncates or extends to `len` bytes.
    fn set_len(&mut self, len: u64) -> io::Result<()>;
}

impl SetLen for File {
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }
}

impl SetLen for Cursor<Vec<u8>> {
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "length too large"))?;
        self.get_mut().resize(len, 0);
        Ok(())
    }
}

/// How [`Sif::remove_object`] treats the removed object's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoveOptions {
    /// Overwrite the object's bytes with zeros.
    pub zero_data: bool,
    /// If the object is the last in the file, truncate the file to drop it
    /// (and its padding). Objects in the middle leave a hole either way.
    pub compact: bool,
    /// Modification time to record (default: now).
    pub time: Option<i64>,
}

impl Default for RemoveOptions {
    /// Compact when possible, do not zero, current time.
    fn default() -> Self {
        RemoveOptions {
            zero_data: false,
            compact: true,
            time: None,
        }
    }
}

impl<R: Read + Write + Seek> Sif<R> {
    fn write_descriptor(&mut self, d: &Descriptor) -> Result<()> {
        // The table was bounds-checked at open, so this cannot overflow.
        let at = self.header.descriptors_offset as u64 + (d.index * DESCRIPTOR_LEN) as u64;
        self.inner
            .seek(SeekFrom::Start(at))
            .map_err(SifError::io("seeking to descriptor"))?;
        self.inner
            .write_all(&d.encode())
            .map_err(SifError::io("writing descriptor"))
    }

    fn write_header(&mut self) -> Result<()> {
        self.inner
            .seek(SeekFrom::Start(0))
            .map_err(SifError::io("seeking to header"))?;
        self.inner
            .write_all(&self.header.encode())
            .map_err(SifError::io("writing header"))?;
        self.inner.flush().map_err(SifError::io("flushing image"))
    }

    fn store_descriptor(&mut self, d: Descriptor) {
        self.slot_used[d.index] = d.used;
        self.descriptors.retain(|o| o.index != d.index);
        if d.used {
            let pos = self.descriptors.partition_point(|o| o.index < d.index);
            self.descriptors.insert(pos, d);
        }
    }

    /// Adds an object **in place** (no copy of the image) and returns its id.
    ///
    /// The data is appended at the end of the data section (aligned as the
    /// input asks), then the first free descriptor slot and the header are
    /// rewritten, in that order, so an interrupted add leaves the old image
    /// valid. The image must pass [`Sif::verify`] first, so a damaged image
    /// is never made worse. The id is the slot number + 1, as siftool does.
    pub fn add_object(&mut self, mut input: ObjectInput<'_>) -> Result<u32> {
        self.verify()?;
        input.validate(0)?;
        if input.is_primary() {
            if let Some(p) = self.primary_partition() {
                return Err(SifError::PrimaryPartitionExists { existing: p.id });
            }
        }
        let dangling = match input.link {
            Some(Link::Object(t)) => self.descriptor(t).is_err(),
            Some(Link::Group(g)) => !self.descriptors.iter().any(|d| d.group_id() == Some(g)),
            None => false,
        };
        if dangling {
            return Err(SifError::InvalidInput {
                index: 0,
                reason: "link target does not exist in the image".into(),
            });
        }
        let index =
            self.slot_used
                .iter()
                .position(|u| !u)
                .ok_or(SifError::DescriptorTableFull {
                    total: self.header.descriptors_total,
                })?;
        let mut id = index as u32 + 1;
        if self.descriptor(id).is_ok() {
            // Slot numbering was not followed by whoever wrote the image.
            id = self.descriptors.iter().map(|d| d.id).max().unwrap_or(0) + 1;
        }
        let time = input.time.unwrap_or_else(now);
        // verify() proved data_offset/data_size are non-negative and in the file.
        let data_end = self.header.data_offset as u64 + self.header.data_size as u64;
        let offset = align_up(data_end, input.alignment).ok_or(SifError::InvalidInput {
            index: 0,
            reason: "alignment overflows".into(),
        })?;
        let padding = offset - data_end;
        self.inner
            .seek(SeekFrom::Start(data_end))
            .map_err(SifError::io("seeking to end of data"))?;
        write_zeros(&mut self.inner, padding).map_err(SifError::io("writing alignment padding"))?;
        let size = stream_object(&mut input.source, &mut self.inner, input.len, 0)?;
        let d = input.descriptor(index, id, offset, size, padding, time);
        self.write_descriptor(&d)?;

        self.header.descriptors_free -= 1;
        self.header.data_size += (size + padding) as i64;
        self.header.modified_at = time;
        if let Extra::Partition(p) = &input.extra {
            if p.part_type == PartType::PrimarySystem {
                self.header.arch = p.arch;
            }
        }
        self.write_header()?;
        self.file_len = self.file_len.max(offset + size);
        self.store_descriptor(d);
        Ok(id)
    }

    /// Makes partition `id` the primary system partition, demoting the
    /// current one to a plain system partition, and sets the header arch.
    pub fn set_primary_partition(&mut self, id: u32, time: Option<i64>) -> Result<()> {
        self.verify()?;
        let d = self.descriptor(id)?.clone();
        let Some(meta) = d.partition() else {
            return Err(SifError::WrongKind {
                id,
                found: d.data_type.name(),
                expected: "partition",
            });
        };
        match meta.part_type {
            PartType::PrimarySystem => return Ok(()),
            PartType::System => {}
            _ => {
                return Err(SifError::WrongKind {
                    id,
                    found: meta.part_type.name(),
                    expected: "system partition",
                });
            }
        }
        let time = time.unwrap_or_else(now);
        if let Some(old) = self.primary_partition().cloned() {
            let mut old = old;
            if let Some(mut m) = old.partition() {
                m.part_type = PartType::System;
                old.extra = Extra::Partition(m).encode();
            }
            old.modified_at = time;
            self.write_descriptor(&old)?;
            self.store_descriptor(old);
        }
        let mut new = d;
        let mut m = meta;
        m.part_type = PartType::PrimarySystem;
        new.extra = Extra::Partition(m).encode();
        new.modified_at = time;
        self.write_descriptor(&new)?;
        self.store_descriptor(new);
        self.header.arch = m.arch;
        self.header.modified_at = time;
        self.write_header()
    }
}

impl<R: Read + Write + Seek + SetLen> Sif<R> {
    /// Removes object `id` **in place**: clears its descriptor slot and,
    /// per [`RemoveOptions`], zeroes its bytes and truncates the file when it
    /// is the last object. The image must pass [`Sif::verify`] first.
    /// Removing the primary partition resets the header arch to unknown.
    pub fn remove_object(&mut self, id: u32, opts: RemoveOptions) -> Result<()> {
        self.verify()?;
        let d = self.descriptor(id)?.clone();
        let (start, len) = self.checked_range(&d)?;
        let time = opts.time.unwrap_or_else(now);
        if opts.zero_data {
            self.inner
                .seek(SeekFrom::Start(start))
                .map_err(SifError::io("seeking to object"))?;
            write_zeros(&mut self.inner, len).map_err(SifError::io("zeroing object"))?;
        }
        let end = start + len;
        let is_last = self
            .descriptors
            .iter()
            .all(|o| o.id == id || o.range().is_some_and(|(_, e)| e <= end));
        let data_end = self.header.data_offset as u64 + self.header.data_size as u64;
        // Padding lies before the object; verify() proved size_with_padding >= size.
        let padded_start = end.saturating_sub(d.size_with_padding as u64);
        if opts.compact
            && is_last
            && end == data_end
            && padded_start >= self.header.data_offset as u64
        {
            self.inner
                .set_len(padded_start)
                .map_err(SifError::io("truncating image"))?;
            self.file_len = padded_start;
            self.header.data_size = (padded_start - self.header.data_offset as u64) as i64;
        }
        let blank = Descriptor::blank(d.index);
        self.write_descriptor(&blank)?;
        self.store_descriptor(blank);
        self.header.descriptors_free += 1;
        self.header.modified_at = time;
        if d.is_primary_partition() {
            self.header.arch = Arch::UNKNOWN;
        }
        self.write_header()
    }
}
