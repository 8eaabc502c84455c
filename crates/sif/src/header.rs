//! The 128-byte global header at offset 0, field for field as the Go
//! reference lays it out (little-endian, no padding).

use crate::arch::Arch;
use crate::error::{Result, SifError};
use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};
use uuid::Uuid;

/// Size of the encoded global header.
pub const HEADER_LEN: usize = 128;
/// Bytes reserved for the launch script at offset 0.
pub const LAUNCH_LEN: usize = 32;
/// `SIF_MAGIC` plus NUL, at offset 32.
pub const MAGIC: [u8; 10] = *b"SIF_MAGIC\0";
/// The only spec version defined so far, at offset 42.
pub const VERSION: [u8; 3] = *b"01\0";
/// The launch script Apptainer writes: lets the image run as `./image.sif`.
pub const APPTAINER_LAUNCH_SCRIPT: &str = "#!/usr/bin/env run-singularity\n";

/// The SIF global header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Raw launch script bytes (NUL padded).
    pub launch_script: [u8; LAUNCH_LEN],
    /// Raw version bytes (`"01\0"`).
    pub version: [u8; 3],
    /// Architecture of the primary partition (`"00"` if none).
    pub arch: Arch,
    /// Image id.
    pub id: Uuid,
    /// Creation time, Unix seconds.
    pub created_at: i64,
    /// Last modification time, Unix seconds.
    pub modified_at: i64,
    /// Number of unused descriptors.
    pub descriptors_free: i64,
    /// Number of descriptors in the table (used and free).
    pub descriptors_total: i64,
    /// Byte offset of the descriptor table.
    pub descriptors_offset: i64,
    /// Byte size of the descriptor table.
    pub descriptors_size: i64,
    /// Byte offset of the data section.
    pub data_offset: i64,
    /// Byte size of the data section.
    pub data_size: i64,
}

fn le_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_le_bytes(a)
}

impl Header {
    /// Decodes a header and checks magic and version; other fields are
    /// range-checked by [`crate::Sif::verify`] and when they are used.
    pub fn decode(b: &[u8; HEADER_LEN]) -> Result<Self> {
        let mut magic = [0u8; 10];
        magic.copy_from_slice(&b[32..42]);
        if magic != MAGIC {
            return Err(SifError::BadMagic { found: magic });
        }
        let mut version = [0u8; 3];
        version.copy_from_slice(&b[42..45]);
        // All three bytes must match, NUL included, as in the Go reference.
        if version != VERSION {
            return Err(SifError::UnsupportedVersion { found: version });
        }
        let mut launch_script = [0u8; LAUNCH_LEN];
        launch_script.copy_from_slice(&b[..32]);
        let mut arch = [0u8; 3];
        arch.copy_from_slice(&b[45..48]);
        let mut id = [0u8; 16];
        id.copy_from_slice(&b[48..64]);
        Ok(Header {
            launch_script,
            version,
            arch: Arch::from_raw(arch),
            id: Uuid::from_bytes(id),
            created_at: le_i64(b, 64),
            modified_at: le_i64(b, 72),
            descriptors_free: le_i64(b, 80),
            descriptors_total: le_i64(b, 88),
            descriptors_offset: le_i64(b, 96),
            descriptors_size: le_i64(b, 104),
            data_offset: le_i64(b, 112),
            data_size: le_i64(b, 120),
        })
    }

    /// Encodes the header into its 128 on-disk bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[..32].copy_from_slice(&self.launch_script);
        b[32..42].copy_from_slice(&MAGIC);
        b[42..45].copy_from_slice(&self.version);
        b[45..48].copy_from_slice(&self.arch.raw());
        b[48..64].copy_from_slice(self.id.as_bytes());
        let nums = [
            self.created_at,
            self.modified_at,
            self.descriptors_free,
            self.descriptors_total,
            self.descriptors_offset,
            self.descriptors_size,
            self.data_offset,
            self.data_size,
        ];
        for (i, n) in nums.iter().enumerate() {
            b[64 + i * 8..72 + i * 8].copy_from_slice(&n.to_le_bytes());
        }
        b
    }

    /// The launch script as text, trailing NULs removed.
    pub fn launch_script_text(&self) -> String {
        trim_nul_lossy(&self.launch_script)
    }

    /// The version as text (`"01"`).
    pub fn version_text(&self) -> String {
        trim_nul_lossy(&self.version)
    }

    /// Builds a launch-script field from text; `None` if it does not fit
    /// (at least one NUL must remain, as the Go reference requires).
    pub fn launch_script_field(text: &str) -> Option<[u8; LAUNCH_LEN]> {
        let bytes = text.as_bytes();
        if bytes.len() >= LAUNCH_LEN {
            return None;
        }
        let mut field = [0u8; LAUNCH_LEN];
        field[..bytes.len()].copy_from_slice(bytes);
        Some(field)
    }
}

/// Text up to the first NUL, invalid UTF-8 replaced.
pub(crate) fn trim_nul_lossy(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

impl Serialize for Header {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Header", 14)?;
        st.serialize_field("launch_script", &self.launch_script_text())?;
        st.serialize_field("magic", "SIF_MAGIC")?;
        st.serialize_field("version", &self.version_text())?;
        st.serialize_field("arch", &self.arch)?;
        st.serialize_field("arch_code", &self.arch.code())?;
        st.serialize_field("id", &self.id.hyphenated().to_string())?;
        st.serialize_field("created_at", &self.created_at)?;
        st.serialize_field("modified_at", &self.modified_at)?;
        st.serialize_field("descriptors_free", &self.descriptors_free)?;
        st.serialize_field("descriptors_total", &self.descriptors_total)?;
        st.serialize_field("descriptors_offset", &self.descriptors_offset)?;
        st.serialize_field("descriptors_size", &self.descriptors_size)?;
        st.serialize_field("data_offset", &self.data_offset)?;
        st.serialize_field("data_size", &self.data_size)?;
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip() {
        let h = Header {
            launch_script: Header::launch_script_field(APPTAINER_LAUNCH_SCRIPT).unwrap(),
            version: VERSION,
            arch: Arch::AMD64,
            id: Uuid::from_u128(0x1234),
            created_at: 1,
            modified_at: 2,
            descriptors_free: 47,
            descriptors_total: 48,
            descriptors_offset: 4096,
            descriptors_size: 48 * 585,
            data_offset: 4096 + 48 * 585,
            data_size: 10,
        };
        let b = h.encode();
        assert_eq!(&b[32..42], b"SIF_MAGIC\0");
        assert_eq!(Header::decode(&b).unwrap(), h);
        assert_eq!(h.launch_script_text(), APPTAINER_LAUNCH_SCRIPT);
        assert!(Header::launch_script_field(&"x".repeat(32)).is_none());
    }

    #[test]
    fn bad_magic_and_version() {
        let mut b = [0u8; HEADER_LEN];
        assert!(matches!(Header::decode(&b), Err(SifError::BadMagic { .. })));
        b[32..42].copy_from_slice(&MAGIC);
        b[42..45].copy_from_slice(b"02\0");
        assert!(matches!(
            Header::decode(&b),
            Err(SifError::UnsupportedVersion { found }) if &found == b"02\0"
        ));
    }
}
