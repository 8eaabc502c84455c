//! CPU architecture codes. SIF stores them as three bytes: two ASCII digits
//! and a NUL (`"02\0"` is amd64), in the header and in partition descriptors.

use serde::{Serialize, Serializer};
use std::fmt;

/// Known architectures, indexed by their numeric code (0 = unknown).
/// Names are Go's `GOARCH` values, which is what Apptainer and siftool print.
const NAMES: [&str; 13] = [
    "unknown", "386", "amd64", "arm", "arm64", "ppc64", "ppc64le", "mips", "mipsle", "mips64",
    "mips64le", "s390x", "riscv64",
];

/// A CPU architecture as stored in SIF (`"00"`..`"12"`), raw bytes preserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Arch([u8; 3]);

impl Arch {
    /// The "unknown" architecture (`"00"`), used when no primary partition exists.
    pub const UNKNOWN: Arch = Arch(*b"00\0");
    /// x86-64.
    pub const AMD64: Arch = Arch(*b"02\0");
    /// AArch64.
    pub const ARM64: Arch = Arch(*b"04\0");

    /// Wraps the three raw bytes found on disk.
    pub fn from_raw(raw: [u8; 3]) -> Self {
        Arch(raw)
    }

    /// The three raw bytes written to disk.
    pub fn raw(self) -> [u8; 3] {
        self.0
    }

    /// Looks up an architecture by Go name (`"amd64"`, `"arm64"`, ...).
    /// Also accepts `"x86_64"` and `"aarch64"`, Rust's names for the common two.
    pub fn from_name(name: &str) -> Option<Self> {
        let name = match name {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        let idx = NAMES.iter().position(|n| *n == name)?;
        Some(Self::from_number(idx as u8))
    }

    /// Builds the code for a numeric index (`2` gives `"02"`); values past 99 become 99.
    pub fn from_number(n: u8) -> Self {
        let n = n.min(99);
        Arch([b'0' + n / 10, b'0' + n % 10, 0])
    }

    /// The numeric index, if the two bytes are ASCII digits.
    pub fn number(self) -> Option<u8> {
        let [a, b, _] = self.0;
        if a.is_ascii_digit() && b.is_ascii_digit() {
            Some((a - b'0') * 10 + (b - b'0'))
        } else {
            None
        }
    }

    /// The two-character code as text (`"02"`), lossy for non-ASCII bytes.
    pub fn code(self) -> String {
        String::from_utf8_lossy(&self.0[..2]).into_owned()
    }

    /// The stable lowercase name (`"amd64"`), or `"unknown"`.
    pub fn name(self) -> &'static str {
        match self.number() {
            Some(n) if (n as usize) < NAMES.len() && self.0[2] == 0 => NAMES[n as usize],
            _ => "unknown",
        }
    }

    /// The architecture this program was compiled for.
    pub fn host() -> Self {
        Self::from_name(std::env::consts::ARCH).unwrap_or(Arch::UNKNOWN)
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Arch {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_codes() {
        assert_eq!(Arch::from_name("amd64"), Some(Arch::AMD64));
        assert_eq!(Arch::from_name("x86_64"), Some(Arch::AMD64));
        assert_eq!(Arch::from_name("riscv64").unwrap().code(), "12");
        assert_eq!(Arch::from_raw(*b"99\0").name(), "unknown");
        assert_eq!(Arch::from_raw(*b"\xff\xff\xff").name(), "unknown");
        assert_eq!(Arch::UNKNOWN.name(), "unknown");
        assert_eq!(Arch::from_name("vax"), None);
    }
}
