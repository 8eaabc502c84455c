//! Numeric codes stored in SIF headers and descriptors, each mapped to a
//! stable lowercase name. The names are what JSON output uses; the raw code
//! is always kept beside them so unknown values survive a round trip.

use serde::{Serialize, Serializer};
use std::fmt;

/// Defines an `i32`-coded enum with a stable name per variant and an
/// `Unknown(code)` catch-all, so parsing never fails on new codes.
macro_rules! code_enum {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $code:expr => $text:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )*
            /// A code this crate does not know; the raw value is kept.
            Unknown(i32),
        }

        impl $name {
            /// Every known variant, in code order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// Maps a raw on-disk code to a variant.
            pub fn from_code(code: i32) -> Self {
                match code {
                    $( $code => $name::$variant, )*
                    other => $name::Unknown(other),
                }
            }

            /// The raw on-disk code.
            pub fn code(self) -> i32 {
                match self {
                    $( $name::$variant => $code, )*
                    $name::Unknown(code) => code,
                }
            }

            /// The stable lowercase name (`"unknown"` for unknown codes).
            pub fn name(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )*
                    $name::Unknown(_) => "unknown",
                }
            }

            /// Parses a stable name back into a known variant.
            pub fn from_name(name: &str) -> Option<Self> {
                match name {
                    $( $text => Some($name::$variant), )*
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }
    };
}

code_enum! {
    /// The kind of a data object (descriptor `datatype`).
    DataType {
        /// Definition file the image was built from.
        Deffile = 0x4001 => "deffile",
        /// Environment variables.
        EnvVar = 0x4002 => "envvar",
        /// JSON labels.
        Labels = 0x4003 => "labels",
        /// File system partition.
        Partition = 0x4004 => "partition",
        /// Signature / verification data.
        Signature = 0x4005 => "signature",
        /// Generic JSON metadata.
        GenericJson = 0x4006 => "generic-json",
        /// Generic raw data.
        Generic = 0x4007 => "generic",
        /// Cryptographic message (e.g. wrapped key).
        CryptoMessage = 0x4008 => "crypto-message",
        /// Software bill of materials.
        Sbom = 0x4009 => "sbom",
        /// Root OCI image index (OCI-SIF).
        OciRootIndex = 0x400a => "oci-root-index",
        /// OCI blob (OCI-SIF).
        OciBlob = 0x400b => "oci-blob",
    }
}

code_enum! {
    /// File system type of a partition object.
    FsType {
        /// Squashfs, read-only.
        Squashfs = 1 => "squashfs",
        /// Ext3, read-write (deprecated).
        Ext3 = 2 => "ext3",
        /// Immutable data object archive.
        ImmutableArchive = 3 => "archive",
        /// Raw data.
        Raw = 4 => "raw",
        /// Encrypted squashfs.
        EncryptedSquashfs = 5 => "encrypted-squashfs",
    }
}

code_enum! {
    /// Role of a partition object.
    PartType {
        /// Hosts an operating system.
        System = 1 => "system",
        /// Hosts the primary operating system (the one that runs).
        PrimarySystem = 2 => "primary-system",
        /// Hosts data only.
        Data = 3 => "data",
        /// Hosts an overlay.
        Overlay = 4 => "overlay",
    }
}

code_enum! {
    /// Hash function of a signature object.
    HashType {
        /// SHA-256.
        Sha256 = 1 => "sha256",
        /// SHA-384.
        Sha384 = 2 => "sha384",
        /// SHA-512.
        Sha512 = 3 => "sha512",
        /// BLAKE2s-256.
        Blake2s = 4 => "blake2s",
        /// BLAKE2b-256.
        Blake2b = 5 => "blake2b",
    }
}

code_enum! {
    /// Format of a cryptographic message object.
    FormatType {
        /// OpenPGP.
        OpenPgp = 1 => "openpgp",
        /// PEM.
        Pem = 2 => "pem",
    }
}

code_enum! {
    /// Message kind of a cryptographic message object.
    MessageType {
        /// OpenPGP clear signature.
        ClearSignature = 0x100 => "clear-signature",
        /// PEM RSA-OAEP encrypted key.
        RsaOaep = 0x200 => "rsa-oaep",
    }
}

code_enum! {
    /// Format of an SBOM object.
    SbomFormat {
        /// CycloneDX JSON.
        CycloneDxJson = 1 => "cyclonedx-json",
        /// CycloneDX XML.
        CycloneDxXml = 2 => "cyclonedx-xml",
        /// GitHub dependency snapshot JSON.
        GithubJson = 3 => "github-json",
        /// SPDX JSON.
        SpdxJson = 4 => "spdx-json",
        /// SPDX RDF/XML.
        SpdxRdf = 5 => "spdx-rdf",
        /// SPDX tag/value.
        SpdxTagValue = 6 => "spdx-tag-value",
        /// SPDX YAML.
        SpdxYaml = 7 => "spdx-yaml",
        /// Syft JSON.
        SyftJson = 8 => "syft-json",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_names_are_unique() {
        for t in DataType::ALL {
            assert_eq!(DataType::from_code(t.code()), *t);
            assert_eq!(DataType::from_name(t.name()), Some(*t));
        }
        assert_eq!(DataType::from_code(7), DataType::Unknown(7));
        assert_eq!(DataType::Unknown(7).code(), 7);
        assert_eq!(PartType::from_code(2).name(), "primary-system");
        assert_eq!(FsType::from_code(1).name(), "squashfs");
        assert_eq!(
            serde_json::to_string(&DataType::Deffile).unwrap(),
            "\"deffile\""
        );
    }
}
