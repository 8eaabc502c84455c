//! The 585-byte object descriptor and the typed "extra" metadata each kind
//! keeps in its 384-byte private area. Layout follows the Go reference's
//! `rawDescriptor` encoded with `encoding/binary` (little-endian, packed).

use crate::arch::Arch;
use crate::codes::{DataType, FormatType, FsType, HashType, MessageType, PartType, SbomFormat};
use crate::header::trim_nul_lossy;
use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

/// Size of one encoded descriptor.
pub const DESCRIPTOR_LEN: usize = 585;
/// Bytes reserved for an object name.
pub const NAME_LEN: usize = 128;
/// Bytes reserved for kind-specific metadata.
pub const EXTRA_LEN: usize = 384;
/// Set in group and link fields: marks a group id (and "no group" when alone).
pub const GROUP_MASK: u32 = 0xf000_0000;
/// The group Apptainer puts its objects in.
pub const DEFAULT_GROUP: u32 = 1;

const NAME_AT: usize = 73;
const EXTRA_AT: usize = NAME_AT + NAME_LEN;
/// Signature entity field length (a PGP fingerprint, NUL padded).
const ENTITY_LEN: usize = 256;

/// What a descriptor's link field points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "type", content = "id", rename_all = "lowercase")]
pub enum Link {
    /// Another object, by id.
    Object(u32),
    /// A group of objects, by group id.
    Group(u32),
}

/// One used entry of the descriptor table: where an object is and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub(crate) index: usize,
    pub(crate) data_type: DataType,
    pub(crate) used: bool,
    pub(crate) id: u32,
    pub(crate) group_raw: u32,
    pub(crate) link_raw: u32,
    pub(crate) offset: i64,
    pub(crate) size: i64,
    pub(crate) size_with_padding: i64,
    pub(crate) created_at: i64,
    pub(crate) modified_at: i64,
    pub(crate) uid: i64,
    pub(crate) gid: i64,
    pub(crate) name: [u8; NAME_LEN],
    pub(crate) extra: [u8; EXTRA_LEN],
}

fn i32_at(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_le_bytes(a)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn i64_at(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_le_bytes(a)
}

impl Descriptor {
    /// Decodes one table entry; `index` is its position in the table.
    /// Never fails: values are checked by verification, not here.
    pub fn decode(index: usize, b: &[u8; DESCRIPTOR_LEN]) -> Self {
        let mut name = [0u8; NAME_LEN];
        name.copy_from_slice(&b[NAME_AT..EXTRA_AT]);
        let mut extra = [0u8; EXTRA_LEN];
        extra.copy_from_slice(&b[EXTRA_AT..]);
        Descriptor {
            index,
            data_type: DataType::from_code(i32_at(b, 0)),
            used: b[4] != 0,
            id: u32_at(b, 5),
            group_raw: u32_at(b, 9),
            link_raw: u32_at(b, 13),
            offset: i64_at(b, 17),
            size: i64_at(b, 25),
            size_with_padding: i64_at(b, 33),
            created_at: i64_at(b, 41),
            modified_at: i64_at(b, 49),
            uid: i64_at(b, 57),
            gid: i64_at(b, 65),
            name,
            extra,
        }
    }

    /// Encodes the descriptor into its 585 on-disk bytes.
    pub fn encode(&self) -> [u8; DESCRIPTOR_LEN] {
        let mut b = [0u8; DESCRIPTOR_LEN];
        b[0..4].copy_from_slice(&self.data_type.code().to_le_bytes());
        b[4] = u8::from(self.used);
        b[5..9].copy_from_slice(&self.id.to_le_bytes());
        b[9..13].copy_from_slice(&self.group_raw.to_le_bytes());
        b[13..17].copy_from_slice(&self.link_raw.to_le_bytes());
        let nums = [
            self.offset,
            self.size,
            self.size_with_padding,
            self.created_at,
            self.modified_at,
            self.uid,
            self.gid,
        ];
        for (i, n) in nums.iter().enumerate() {
            b[17 + i * 8..25 + i * 8].copy_from_slice(&n.to_le_bytes());
        }
        b[NAME_AT..EXTRA_AT].copy_from_slice(&self.name);
        b[EXTRA_AT..].copy_from_slice(&self.extra);
        b
    }

    /// Position of this descriptor in the table (0-based).
    pub fn index(&self) -> usize {
        self.index
    }

    /// Object id (unique within the image, never 0 for a valid image).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The object kind.
    pub fn data_type(&self) -> DataType {
        self.data_type
    }

    /// Whether the table marks this entry as in use.
    pub fn is_used(&self) -> bool {
        self.used
    }

    /// Group id, or `None` when the object is in no group.
    pub fn group_id(&self) -> Option<u32> {
        match self.group_raw & !GROUP_MASK {
            0 => None,
            g => Some(g),
        }
    }

    /// Raw on-disk group field (group id with [`GROUP_MASK`] set).
    pub fn group_raw(&self) -> u32 {
        self.group_raw
    }

    /// What this object is linked to, if anything (e.g. a signature links
    /// to the partition or group it signs).
    pub fn link(&self) -> Option<Link> {
        let id = self.link_raw & !GROUP_MASK;
        if id == 0 {
            None
        } else if self.link_raw & GROUP_MASK == GROUP_MASK {
            Some(Link::Group(id))
        } else {
            Some(Link::Object(id))
        }
    }

    /// Raw on-disk link field.
    pub fn link_raw(&self) -> u32 {
        self.link_raw
    }

    /// Byte offset of the object in the file, as stored (may be hostile).
    pub fn offset(&self) -> i64 {
        self.offset
    }

    /// Byte size of the object, as stored (may be hostile).
    pub fn size(&self) -> i64 {
        self.size
    }

    /// Size plus the alignment padding written before the object.
    pub fn size_with_padding(&self) -> i64 {
        self.size_with_padding
    }

    /// Object creation time, Unix seconds.
    pub fn created_at(&self) -> i64 {
        self.created_at
    }

    /// Object modification time, Unix seconds.
    pub fn modified_at(&self) -> i64 {
        self.modified_at
    }

    /// Deprecated owner fields kept for historical compatibility: (uid, gid).
    pub fn owner(&self) -> (i64, i64) {
        (self.uid, self.gid)
    }

    /// Object name (usually the input file name), trailing NULs removed.
    pub fn name(&self) -> String {
        trim_nul_lossy(&self.name)
    }

    /// The raw 384-byte kind-specific area.
    pub fn extra_raw(&self) -> &[u8; EXTRA_LEN] {
        &self.extra
    }

    /// The kind-specific metadata decoded for this object's kind.
    pub fn extra(&self) -> Extra {
        match self.data_type {
            DataType::Partition => Extra::Partition(self.partition_unchecked()),
            DataType::Signature => Extra::Signature(self.signature_unchecked()),
            DataType::CryptoMessage => Extra::CryptoMessage(CryptoMessageMeta {
                format: FormatType::from_code(i32_at(&self.extra, 0)),
                message: MessageType::from_code(i32_at(&self.extra, 4)),
            }),
            DataType::Sbom => Extra::Sbom(SbomMeta {
                format: SbomFormat::from_code(i32_at(&self.extra, 0)),
            }),
            DataType::OciRootIndex | DataType::OciBlob => Extra::OciBlob(OciBlobMeta {
                digest: trim_nul_lossy(&self.extra),
            }),
            _ => Extra::None,
        }
    }

    fn partition_unchecked(&self) -> PartitionMeta {
        let mut arch = [0u8; 3];
        arch.copy_from_slice(&self.extra[8..11]);
        PartitionMeta {
            fs_type: FsType::from_code(i32_at(&self.extra, 0)),
            part_type: PartType::from_code(i32_at(&self.extra, 4)),
            arch: Arch::from_raw(arch),
        }
    }

    fn signature_unchecked(&self) -> SignatureMeta {
        let mut entity = [0u8; ENTITY_LEN];
        entity.copy_from_slice(&self.extra[4..4 + ENTITY_LEN]);
        SignatureMeta {
            hash_type: HashType::from_code(i32_at(&self.extra, 0)),
            entity,
        }
    }

    /// Partition metadata, if this is a partition object.
    pub fn partition(&self) -> Option<PartitionMeta> {
        (self.data_type == DataType::Partition).then(|| self.partition_unchecked())
    }

    /// Signature metadata, if this is a signature object.
    pub fn signature(&self) -> Option<SignatureMeta> {
        (self.data_type == DataType::Signature).then(|| self.signature_unchecked())
    }

    /// Crypto message metadata, if this is a crypto message object.
    pub fn crypto_message(&self) -> Option<CryptoMessageMeta> {
        match self.extra() {
            Extra::CryptoMessage(m) => Some(m),
            _ => None,
        }
    }

    /// SBOM metadata, if this is an SBOM object.
    pub fn sbom(&self) -> Option<SbomMeta> {
        match self.extra() {
            Extra::Sbom(m) => Some(m),
            _ => None,
        }
    }

    /// OCI digest, if this is an OCI root index or blob object.
    pub fn oci_blob(&self) -> Option<OciBlobMeta> {
        match self.extra() {
            Extra::OciBlob(m) => Some(m),
            _ => None,
        }
    }

    /// True for a partition whose type is primary system.
    pub fn is_primary_partition(&self) -> bool {
        self.partition()
            .is_some_and(|p| p.part_type == PartType::PrimarySystem)
    }

    /// Object end offset, if `offset + size` does not overflow and neither is negative.
    pub(crate) fn range(&self) -> Option<(u64, u64)> {
        let start = u64::try_from(self.offset).ok()?;
        let len = u64::try_from(self.size).ok()?;
        Some((start, start.checked_add(len)?))
    }

    /// A blank (unused) descriptor, for building new entries.
    pub(crate) fn blank(index: usize) -> Self {
        Descriptor {
            index,
            data_type: DataType::Unknown(0),
            used: false,
            id: 0,
            group_raw: 0,
            link_raw: 0,
            offset: 0,
            size: 0,
            size_with_padding: 0,
            created_at: 0,
            modified_at: 0,
            uid: 0,
            gid: 0,
            name: [0; NAME_LEN],
            extra: [0; EXTRA_LEN],
        }
    }
}

/// Kind-specific metadata, decoded according to the object's kind.
#[derive(Debug, Clone, PartialEq, Eq)]
// Short-lived values; boxing the 256-byte signature entity would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Extra {
    /// The kind keeps nothing in its extra area.
    None,
    /// A partition.
    Partition(PartitionMeta),
    /// A signature.
    Signature(SignatureMeta),
    /// A crypto message.
    CryptoMessage(CryptoMessageMeta),
    /// An SBOM.
    Sbom(SbomMeta),
    /// An OCI root index or blob.
    OciBlob(OciBlobMeta),
}

impl Extra {
    /// Encodes the metadata into a 384-byte extra area.
    pub fn encode(&self) -> [u8; EXTRA_LEN] {
        let mut b = [0u8; EXTRA_LEN];
        match self {
            Extra::None => {}
            Extra::Partition(p) => {
                b[0..4].copy_from_slice(&p.fs_type.code().to_le_bytes());
                b[4..8].copy_from_slice(&p.part_type.code().to_le_bytes());
                b[8..11].copy_from_slice(&p.arch.raw());
            }
            Extra::Signature(s) => {
                b[0..4].copy_from_slice(&s.hash_type.code().to_le_bytes());
                b[4..4 + ENTITY_LEN].copy_from_slice(&s.entity);
            }
            Extra::CryptoMessage(m) => {
                b[0..4].copy_from_slice(&m.format.code().to_le_bytes());
                b[4..8].copy_from_slice(&m.message.code().to_le_bytes());
            }
            Extra::Sbom(s) => b[0..4].copy_from_slice(&s.format.code().to_le_bytes()),
            Extra::OciBlob(o) => {
                // Truncation keeps one NUL so readers find the end.
                let d = o.digest.as_bytes();
                let n = d.len().min(EXTRA_LEN - 1);
                b[..n].copy_from_slice(&d[..n]);
            }
        }
        b
    }

    /// The object kind this metadata belongs to (`None` for [`Extra::None`]).
    pub fn data_type(&self) -> Option<DataType> {
        match self {
            Extra::None => None,
            Extra::Partition(_) => Some(DataType::Partition),
            Extra::Signature(_) => Some(DataType::Signature),
            Extra::CryptoMessage(_) => Some(DataType::CryptoMessage),
            Extra::Sbom(_) => Some(DataType::Sbom),
            Extra::OciBlob(_) => Some(DataType::OciBlob),
        }
    }
}

/// Partition metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionMeta {
    /// File system in the partition.
    pub fs_type: FsType,
    /// Role of the partition.
    pub part_type: PartType,
    /// CPU architecture of the binaries inside.
    pub arch: Arch,
}

/// Signature metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureMeta {
    /// Hash function used for the signed digest.
    pub hash_type: HashType,
    /// Raw 256-byte entity field (a key fingerprint, NUL padded).
    pub entity: [u8; ENTITY_LEN],
}

impl SignatureMeta {
    /// The 20-byte key fingerprint, or `None` when the field is empty
    /// (same rule as the Go reference: first 20 bytes all zero).
    pub fn fingerprint(&self) -> Option<[u8; 20]> {
        let mut fp = [0u8; 20];
        fp.copy_from_slice(&self.entity[..20]);
        (fp != [0u8; 20]).then_some(fp)
    }

    /// The fingerprint as upper-case hex (as `siftool info` prints it).
    pub fn fingerprint_hex(&self) -> Option<String> {
        self.fingerprint()
            .map(|fp| fp.iter().map(|b| format!("{b:02X}")).collect())
    }
}

/// Crypto message metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CryptoMessageMeta {
    /// Message format.
    pub format: FormatType,
    /// Message kind.
    pub message: MessageType,
}

/// SBOM metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SbomMeta {
    /// SBOM format.
    pub format: SbomFormat,
}

/// OCI blob metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciBlobMeta {
    /// Digest such as `sha256:...` (empty if unset).
    pub digest: String,
}

impl Serialize for PartitionMeta {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("PartitionMeta", 6)?;
        st.serialize_field("fs_type", &self.fs_type)?;
        st.serialize_field("fs_type_code", &self.fs_type.code())?;
        st.serialize_field("part_type", &self.part_type)?;
        st.serialize_field("part_type_code", &self.part_type.code())?;
        st.serialize_field("arch", &self.arch)?;
        st.serialize_field("arch_code", &self.arch.code())?;
        st.end()
    }
}

impl Serialize for SignatureMeta {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("SignatureMeta", 3)?;
        st.serialize_field("hash_type", &self.hash_type)?;
        st.serialize_field("hash_type_code", &self.hash_type.code())?;
        st.serialize_field("fingerprint", &self.fingerprint_hex())?;
        st.end()
    }
}

impl Serialize for CryptoMessageMeta {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("CryptoMessageMeta", 4)?;
        st.serialize_field("format", &self.format)?;
        st.serialize_field("format_code", &self.format.code())?;
        st.serialize_field("message_type", &self.message)?;
        st.serialize_field("message_type_code", &self.message.code())?;
        st.end()
    }
}

impl Serialize for SbomMeta {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("SbomMeta", 2)?;
        st.serialize_field("format", &self.format)?;
        st.serialize_field("format_code", &self.format.code())?;
        st.end()
    }
}

impl Serialize for OciBlobMeta {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("OciBlobMeta", 1)?;
        st.serialize_field("digest", &self.digest)?;
        st.end()
    }
}

/// JSON summary of a descriptor: common fields, then one optional
/// kind-specific object (`partition`, `signature`, `crypto_message`,
/// `sbom` or `oci_blob`).
impl Serialize for Descriptor {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Descriptor", 13)?;
        st.serialize_field("id", &self.id)?;
        st.serialize_field("kind", &self.data_type)?;
        st.serialize_field("kind_code", &self.data_type.code())?;
        st.serialize_field("name", &self.name())?;
        st.serialize_field("group_id", &self.group_id())?;
        st.serialize_field("link", &self.link())?;
        st.serialize_field("offset", &self.offset)?;
        st.serialize_field("size", &self.size)?;
        st.serialize_field("size_with_padding", &self.size_with_padding)?;
        st.serialize_field("created_at", &self.created_at)?;
        st.serialize_field("modified_at", &self.modified_at)?;
        match self.extra() {
            Extra::None => {}
            Extra::Partition(p) => st.serialize_field("partition", &p)?,
            Extra::Signature(sig) => st.serialize_field("signature", &sig)?,
            Extra::CryptoMessage(m) => st.serialize_field("crypto_message", &m)?,
            Extra::Sbom(m) => st.serialize_field("sbom", &m)?,
            Extra::OciBlob(m) => st.serialize_field("oci_blob", &m)?,
        }
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_partition_descriptor() {
        let mut d = Descriptor::blank(0);
        d.data_type = DataType::Partition;
        d.used = true;
        d.id = 3;
        d.group_raw = GROUP_MASK | 1;
        d.link_raw = GROUP_MASK | 2;
        d.offset = 32768;
        d.size = 4096;
        d.size_with_padding = 4096 + 10;
        d.extra = Extra::Partition(PartitionMeta {
            fs_type: FsType::Squashfs,
            part_type: PartType::PrimarySystem,
            arch: Arch::AMD64,
        })
        .encode();
        let b = d.encode();
        assert_eq!(&b[0..4], &0x4004i32.to_le_bytes());
        let back = Descriptor::decode(0, &b);
        assert_eq!(back, d);
        assert_eq!(back.group_id(), Some(1));
        assert_eq!(back.link(), Some(Link::Group(2)));
        assert!(back.is_primary_partition());
        let json = serde_json::to_value(&back).unwrap();
        assert_eq!(json["kind"], "partition");
        assert_eq!(json["partition"]["part_type"], "primary-system");
        assert_eq!(json["partition"]["arch_code"], "02");
        assert_eq!(json["link"]["type"], "group");
    }

    #[test]
    fn signature_fingerprint() {
        let mut entity = [0u8; 256];
        entity[0] = 0x43;
        entity[19] = 0x01;
        let s = SignatureMeta {
            hash_type: HashType::Sha256,
            entity,
        };
        assert_eq!(
            s.fingerprint_hex().unwrap(),
            "4300000000000000000000000000000000000001"
        );
        let empty = SignatureMeta {
            hash_type: HashType::Sha256,
            entity: [0; 256],
        };
        assert_eq!(empty.fingerprint(), None);
    }
}
