//! Assembling a new image from parts. Object bytes are streamed from their
//! `Read` sources straight to the output, never held in memory.

use crate::arch::Arch;
use crate::codes::{DataType, FormatType, FsType, MessageType, PartType, SbomFormat};
use crate::descriptor::{
    DEFAULT_GROUP, DESCRIPTOR_LEN, Descriptor, Extra, GROUP_MASK, Link, NAME_LEN, OciBlobMeta,
    PartitionMeta, SbomMeta,
};
use crate::error::{Result, SifError};
use crate::header::{APPTAINER_LAUNCH_SCRIPT, HEADER_LEN, Header, LAUNCH_LEN, VERSION};
use crate::reader::MAX_DESCRIPTORS;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::time::{SystemTime, UNIX_EPOCH};
use uuid::Uuid;

/// Where the descriptor table starts, as in the Go reference and Apptainer.
pub const DESCRIPTORS_OFFSET: u64 = 4096;
/// Descriptor table capacity the Go reference and Apptainer use.
pub const DEFAULT_CAPACITY: usize = 48;
/// Alignment of partition objects (so they can be loop-mounted in place).
pub const PARTITION_ALIGNMENT: u64 = 4096;

/// One object to put into an image: its kind, metadata, and a byte source.
pub struct ObjectInput<'a> {
    pub(crate) data_type: DataType,
    pub(crate) source: Box<dyn Read + 'a>,
    pub(crate) len: Option<u64>,
    pub(crate) name: String,
    pub(crate) group: Option<u32>,
    pub(crate) link: Option<Link>,
    pub(crate) alignment: u64,
    pub(crate) extra: Extra,
    pub(crate) time: Option<i64>,
}

impl std::fmt::Debug for ObjectInput<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectInput")
            .field("data_type", &self.data_type)
            .field("len", &self.len)
            .field("name", &self.name)
            .field("group", &self.group)
            .field("link", &self.link)
            .field("alignment", &self.alignment)
            .field("extra", &self.extra)
            .finish_non_exhaustive()
    }
}

impl<'a> ObjectInput<'a> {
    /// An object of any kind, in group 1 (as Apptainer does), unaligned
    /// unless it is a partition (4096), with no extra metadata.
    pub fn new(data_type: DataType, source: impl Read + 'a) -> Self {
        ObjectInput {
            data_type,
            source: Box::new(source),
            len: None,
            name: String::new(),
            group: Some(DEFAULT_GROUP),
            link: None,
            alignment: if data_type == DataType::Partition {
                PARTITION_ALIGNMENT
            } else {
                0
            },
            extra: Extra::None,
            time: None,
        }
    }

    /// A definition file object.
    pub fn definition_file(source: impl Read + 'a) -> Self {
        Self::new(DataType::Deffile, source)
    }

    /// A JSON labels object.
    pub fn labels(source: impl Read + 'a) -> Self {
        Self::new(DataType::Labels, source)
    }

    /// An environment object.
    pub fn environment(source: impl Read + 'a) -> Self {
        Self::new(DataType::EnvVar, source)
    }

    /// A partition object (4096-aligned).
    pub fn partition(
        source: impl Read + 'a,
        fs_type: FsType,
        part_type: PartType,
        arch: Arch,
    ) -> Self {
        Self::new(DataType::Partition, source).extra(Extra::Partition(PartitionMeta {
            fs_type,
            part_type,
            arch,
        }))
    }

    /// The primary squashfs system partition, the one Apptainer runs.
    pub fn primary_squashfs(source: impl Read + 'a, arch: Arch) -> Self {
        Self::partition(source, FsType::Squashfs, PartType::PrimarySystem, arch)
    }

    /// A generic raw object.
    pub fn generic(source: impl Read + 'a) -> Self {
        Self::new(DataType::Generic, source)
    }

    /// An SBOM object.
    pub fn sbom(source: impl Read + 'a, format: SbomFormat) -> Self {
        Self::new(DataType::Sbom, source).extra(Extra::Sbom(SbomMeta { format }))
    }

    /// A crypto message object.
    pub fn crypto_message(
        source: impl Read + 'a,
        format: FormatType,
        message: MessageType,
    ) -> Self {
        Self::new(DataType::CryptoMessage, source).extra(Extra::CryptoMessage(
            crate::descriptor::CryptoMessageMeta { format, message },
        ))
    }

    /// An OCI blob object with its digest (`sha256:...`), computed by the
    /// caller: the writer hashes nothing.
    pub fn oci_blob(source: impl Read + 'a, digest: impl Into<String>) -> Self {
        Self::new(DataType::OciBlob, source).extra(Extra::OciBlob(OciBlobMeta {
            digest: digest.into(),
        }))
    }

    /// Declares the exact length; required by [`SifBuilder::write_sequential`],
    /// checked against what the source yields in both write modes.
    pub fn with_len(mut self, len: u64) -> Self {
        self.len = Some(len);
        self
    }

    /// Sets the object name (at most 128 bytes).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Puts the object in group `group` (must be non-zero).
    pub fn group(mut self, group: u32) -> Self {
        self.group = Some(group);
        self
    }

    /// Puts the object in no group (as `siftool add` does by default).
    pub fn no_group(mut self) -> Self {
        self.group = None;
        self
    }

    /// Links the object to another object or group.
    pub fn link(mut self, link: Link) -> Self {
        self.link = Some(link);
        self
    }

    /// Aligns the object start to a multiple of `alignment` bytes (0 or 1: none).
    pub fn alignment(mut self, alignment: u64) -> Self {
        self.alignment = alignment;
        self
    }

    /// Sets kind-specific metadata; must match the object kind.
    pub fn extra(mut self, extra: Extra) -> Self {
        self.extra = extra;
        self
    }

    /// Fixes the object's created/modified time (Unix seconds).
    pub fn time(mut self, t: i64) -> Self {
        self.time = Some(t);
        self
    }

    /// Checks what can be checked before writing; `index` is for errors.
    pub(crate) fn validate(&self, index: usize) -> Result<()> {
        let bad = |reason: String| SifError::InvalidInput { index, reason };
        if self.name.len() > NAME_LEN {
            return Err(bad(format!(
                "name is {} bytes, at most {NAME_LEN} fit",
                self.name.len()
            )));
        }
        if self.group == Some(0) || self.group.is_some_and(|g| g & GROUP_MASK != 0) {
            return Err(bad("group id must be between 1 and 0x0fffffff".into()));
        }
        if let Some(Link::Object(t) | Link::Group(t)) = self.link {
            if t == 0 || t & GROUP_MASK != 0 {
                return Err(bad("link target must be between 1 and 0x0fffffff".into()));
            }
        }
        if let Some(kind) = self.extra.data_type() {
            let matches = kind == self.data_type
                || (kind == DataType::OciBlob && self.data_type == DataType::OciRootIndex);
            if !matches {
                return Err(bad(format!(
                    "{} metadata given for a {} object",
                    kind, self.data_type
                )));
            }
        }
        if self.data_type == DataType::Partition && !matches!(self.extra, Extra::Partition(_)) {
            return Err(bad("partition object needs partition metadata".into()));
        }
        Ok(())
    }

    pub(crate) fn is_primary(&self) -> bool {
        matches!(&self.extra, Extra::Partition(p) if p.part_type == PartType::PrimarySystem)
    }

    /// Builds the descriptor for this input once its placement is known.
    pub(crate) fn descriptor(
        &self,
        index: usize,
        id: u32,
        offset: u64,
        size: u64,
        padding: u64,
        time: i64,
    ) -> Descriptor {
        let mut d = Descriptor::blank(index);
        d.data_type = self.data_type;
        d.used = true;
        d.id = id;
        d.group_raw = GROUP_MASK | self.group.unwrap_or(0);
        d.link_raw = match self.link {
            None => 0,
            Some(Link::Object(t)) => t,
            Some(Link::Group(g)) => g | GROUP_MASK,
        };
        // Sizes are bounded by what was written, far below i64::MAX.
        d.offset = offset as i64;
        d.size = size as i64;
        d.size_with_padding = (size + padding) as i64;
        let t = self.time.unwrap_or(time);
        d.created_at = t;
        d.modified_at = t;
        let n = self.name.len().min(NAME_LEN);
        d.name[..n].copy_from_slice(&self.name.as_bytes()[..n]);
        d.extra = self.extra.encode();
        d
    }
}

/// Rounds `offset` up to a multiple of `alignment` (0 and 1 mean none).
pub(crate) fn align_up(offset: u64, alignment: u64) -> Option<u64> {
    if alignment <= 1 {
        return Some(offset);
    }
    offset.div_ceil(alignment).checked_mul(alignment)
}

/// Current time in Unix seconds (0 if the clock is before 1970).
pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

const ZEROS: [u8; 4096] = [0; 4096];

pub(crate) fn write_zeros<W: Write>(w: &mut W, mut n: u64) -> io::Result<()> {
    while n > 0 {
        let k = n.min(ZEROS.len() as u64) as usize;
        w.write_all(&ZEROS[..k])?;
        n -= k as u64;
    }
    Ok(())
}

/// Streams `src` to `w`, enforcing a declared length if there is one.
pub(crate) fn stream_object<W: Write>(
    src: &mut dyn Read,
    w: &mut W,
    declared: Option<u64>,
    index: usize,
) -> Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total: u64 = 0;
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(SifError::Io {
                    context: "reading object input",
                    source: e,
                });
            }
        };
        let next = total + n as u64;
        if let Some(limit) = declared {
            if next > limit {
                return Err(SifError::InputLengthMismatch {
                    index,
                    declared: limit,
                    actual: next,
                });
            }
        }
        w.write_all(&buf[..n])
            .map_err(SifError::io("writing object data"))?;
        total = next;
    }
    if let Some(limit) = declared {
        if total != limit {
            return Err(SifError::InputLengthMismatch {
                index,
                declared: limit,
                actual: total,
            });
        }
    }
    Ok(total)
}

/// What was written: the header and descriptors of the new image.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WriteSummary {
    /// The header as written.
    pub header: Header,
    /// The descriptors as written, in table order.
    pub descriptors: Vec<Descriptor>,
    /// Total bytes in the image.
    pub total_len: u64,
}

/// Builds a new SIF image from parts.
///
/// Defaults match Apptainer: launch script `#!/usr/bin/env run-singularity\n`,
/// 48 descriptors at offset 4096, data right after the table, partitions
/// 4096-aligned, a random id and the current time.
///
/// ```
/// use sreg_sif::{SifBuilder, ObjectInput, Arch, Sif};
/// use std::io::Cursor;
/// let mut out = Cursor::new(Vec::new());
/// SifBuilder::new()
///     .object(ObjectInput::definition_file(&b"Bootstrap: scratch\n"[..]))
///     .object(ObjectInput::primary_squashfs(&[0u8; 100][..], Arch::AMD64))
///     .write(&mut out)?;
/// let mut sif = Sif::from_reader(out)?;
/// sif.verify()?;
/// assert_eq!(sif.definition_file()?.as_deref(), Some("Bootstrap: scratch\n"));
/// # Ok::<(), sreg_sif::SifError>(())
/// ```
#[derive(Debug)]
pub struct SifBuilder<'a> {
    launch_script: String,
    id: Option<Uuid>,
    time: Option<i64>,
    capacity: usize,
    inputs: Vec<ObjectInput<'a>>,
}

impl Default for SifBuilder<'_> {
    fn default() -> Self {
        Self::new()
    }
}

/// Placement of one object in the data section.
struct Slot {
    offset: u64,
    padding: u64,
}

impl<'a> SifBuilder<'a> {
    /// A builder with Apptainer's defaults and no objects.
    pub fn new() -> Self {
        SifBuilder {
            launch_script: APPTAINER_LAUNCH_SCRIPT.to_string(),
            id: None,
            time: None,
            capacity: DEFAULT_CAPACITY,
            inputs: Vec::new(),
        }
    }

    /// Sets the launch script (fewer than 32 bytes; empty for none).
    pub fn launch_script(mut self, script: impl Into<String>) -> Self {
        self.launch_script = script.into();
        self
    }

    /// Fixes the image id (default: random v4).
    pub fn id(mut self, id: Uuid) -> Self {
        self.id = Some(id);
        self
    }

    /// Fixes the image and default object times, Unix seconds (default: now).
    pub fn time(mut self, t: i64) -> Self {
        self.time = Some(t);
        self
    }

    /// Sets the descriptor table capacity (default 48). Room left free
    /// lets objects be added in place later.
    pub fn descriptor_capacity(mut self, n: usize) -> Self {
        self.capacity = n;
        self
    }

    /// Appends an object; ids are assigned 1, 2, ... in this order.
    pub fn object(mut self, input: ObjectInput<'a>) -> Self {
        self.inputs.push(input);
        self
    }

    fn validate(&self) -> Result<[u8; LAUNCH_LEN]> {
        let launch = Header::launch_script_field(&self.launch_script).ok_or_else(|| {
            SifError::InvalidInput {
                index: 0,
                reason: format!(
                    "launch script is {} bytes, at most {} fit",
                    self.launch_script.len(),
                    LAUNCH_LEN - 1
                ),
            }
        })?;
        if self.capacity as i64 > MAX_DESCRIPTORS || self.inputs.len() > self.capacity {
            return Err(SifError::DescriptorTableFull {
                total: self.capacity as i64,
            });
        }
        let mut primary = None;
        let groups: Vec<u32> = self.inputs.iter().filter_map(|i| i.group).collect();
        for (index, input) in self.inputs.iter().enumerate() {
            input.validate(index)?;
            if input.is_primary() {
                if let Some(existing) = primary {
                    return Err(SifError::PrimaryPartitionExists { existing });
                }
                primary = Some(index as u32 + 1);
            }
            let dangling = match input.link {
                Some(Link::Object(t)) => t as usize > self.inputs.len(),
                Some(Link::Group(g)) => !groups.contains(&g),
                None => false,
            };
            if dangling {
                return Err(SifError::InvalidInput {
                    index,
                    reason: "link target is not among the objects written".into(),
                });
            }
        }
        Ok(launch)
    }

    fn header(&self, launch: [u8; LAUNCH_LEN], time: i64, data_size: u64) -> Header {
        let arch = self
            .inputs
            .iter()
            .find(|i| i.is_primary())
            .and_then(|i| match &i.extra {
                Extra::Partition(p) => Some(p.arch),
                _ => None,
            })
            .unwrap_or(Arch::UNKNOWN);
        let table = (self.capacity * DESCRIPTOR_LEN) as i64;
        Header {
            launch_script: launch,
            version: VERSION,
            arch,
            id: self.id.unwrap_or_else(Uuid::new_v4),
            created_at: time,
            modified_at: time,
            descriptors_free: (self.capacity - self.inputs.len()) as i64,
            descriptors_total: self.capacity as i64,
            descriptors_offset: DESCRIPTORS_OFFSET as i64,
            descriptors_size: table,
            data_offset: DESCRIPTORS_OFFSET as i64 + table,
            data_size: data_size as i64,
        }
    }

    fn data_offset(&self) -> u64 {
        DESCRIPTORS_OFFSET + (self.capacity * DESCRIPTOR_LEN) as u64
    }

    /// Writes the header, zero gap and table (with `capacity` slots) at the
    /// writer's current position, which must be offset 0.
    fn write_front<W: Write>(
        w: &mut W,
        header: &Header,
        descriptors: &[Descriptor],
        capacity: usize,
    ) -> Result<()> {
        let ctx = SifError::io("writing header and descriptor table");
        w.write_all(&header.encode()).map_err(ctx)?;
        write_zeros(w, DESCRIPTORS_OFFSET - HEADER_LEN as u64)
            .map_err(SifError::io("writing header padding"))?;
        for d in descriptors {
            w.write_all(&d.encode())
                .map_err(SifError::io("writing descriptor table"))?;
        }
        write_zeros(w, ((capacity - descriptors.len()) * DESCRIPTOR_LEN) as u64)
            .map_err(SifError::io("writing descriptor table"))
    }

    /// Writes the image to a seekable output starting at offset 0: object
    /// data first (lengths need not be known), then the header and table.
    /// On error the output is not a valid image.
    pub fn write<W: Write + Seek>(mut self, w: &mut W) -> Result<WriteSummary> {
        let launch = self.validate()?;
        let time = self.time.unwrap_or_else(now);
        let data_offset = self.data_offset();
        w.seek(SeekFrom::Start(data_offset))
            .map_err(SifError::io("seeking to data section"))?;
        let mut cursor = data_offset;
        let mut descriptors = Vec::with_capacity(self.inputs.len());
        for (index, input) in self.inputs.iter_mut().enumerate() {
            let offset =
                align_up(cursor, input.alignment).ok_or_else(|| SifError::InvalidInput {
                    index,
                    reason: "alignment overflows".into(),
                })?;
            let padding = offset - cursor;
            write_zeros(w, padding).map_err(SifError::io("writing alignment padding"))?;
            let size = stream_object(&mut input.source, w, input.len, index)?;
            descriptors.push(input.descriptor(
                index,
                index as u32 + 1,
                offset,
                size,
                padding,
                time,
            ));
            cursor = offset + size;
        }
        let header = self.header(launch, time, cursor - data_offset);
        w.seek(SeekFrom::Start(0))
            .map_err(SifError::io("seeking to header"))?;
        Self::write_front(w, &header, &descriptors, self.capacity)?;
        w.flush().map_err(SifError::io("flushing output"))?;
        Ok(WriteSummary {
            header,
            descriptors,
            total_len: cursor,
        })
    }

    /// Writes the image front to back to any `Write` (a pipe, a hasher, an
    /// HTTP body). Every input must declare its length with
    /// [`ObjectInput::with_len`], since the table precedes the data.
    /// On error the output is not a valid image.
    pub fn write_sequential<W: Write>(mut self, w: &mut W) -> Result<WriteSummary> {
        let launch = self.validate()?;
        let time = self.time.unwrap_or_else(now);
        let data_offset = self.data_offset();
        let mut cursor = data_offset;
        let mut slots = Vec::with_capacity(self.inputs.len());
        let mut descriptors = Vec::with_capacity(self.inputs.len());
        for (index, input) in self.inputs.iter().enumerate() {
            let size = input.len.ok_or_else(|| SifError::InvalidInput {
                index,
                reason: "sequential writing needs a declared length".into(),
            })?;
            let overflow = || SifError::InvalidInput {
                index,
                reason: "object placement overflows".into(),
            };
            let offset = align_up(cursor, input.alignment).ok_or_else(overflow)?;
            let end = offset
                .checked_add(size)
                .filter(|e| *e <= i64::MAX as u64)
                .ok_or_else(overflow)?;
            slots.push(Slot {
                offset,
                padding: offset - cursor,
            });
            descriptors.push(input.descriptor(
                index,
                index as u32 + 1,
                offset,
                size,
                offset - cursor,
                time,
            ));
            cursor = end;
        }
        let header = self.header(launch, time, cursor - data_offset);
        Self::write_front(w, &header, &descriptors, self.capacity)?;
        for (index, (input, slot)) in self.inputs.iter_mut().zip(&slots).enumerate() {
            write_zeros(w, slot.padding).map_err(SifError::io("writing alignment padding"))?;
            stream_object(&mut input.source, w, input.len, index)?;
            debug_assert!(slot.offset >= data_offset);
        }
        w.flush().map_err(SifError::io("flushing output"))?;
        Ok(WriteSummary {
            header,
            descriptors,
            total_len: cursor,
        })
    }
}
