//! The Singularity Image Format (SIF): read, verify, write.
//!
//! * [`Sif`] opens an image from a path or any `Read + Seek`, reading only
//!   the 128-byte header and the descriptor table; object bytes come through
//!   bounded readers ([`Sif::object_reader`], [`Sif::read_object_limited`]).
//! * [`Sif::verify`] / [`Sif::problems`] check the structure against the
//!   real file length and report what is wrong and where.
//! * [`SifBuilder`] assembles a new image from streamed parts;
//!   [`Sif::add_object`] / [`Sif::remove_object`] edit an image in place.
//! * Every public info type implements `serde::Serialize` with stable
//!   lowercase names (`"deffile"`, `"partition"`, `"squashfs"`,
//!   `"primary-system"`, `"amd64"`) and the raw numeric codes beside them.
//!
//! ```no_run
//! let mut sif = sreg_sif::Sif::open("image.sif")?;
//! sif.verify()?;
//! if let Some(p) = sif.primary_partition() {
//!     println!("primary partition {} for {}", p.id(), sif.primary_arch());
//! }
//! println!("{}", serde_json::to_string(sif.descriptors()).unwrap());
//! # Ok::<(), sreg_sif::SifError>(())
//! ```

mod arch;
mod codes;
mod descriptor;
mod edit;
mod error;
pub mod fuzz;
mod header;
mod reader;
mod verify;
mod writer;

pub use arch::Arch;
pub use codes::{DataType, FormatType, FsType, HashType, MessageType, PartType, SbomFormat};
pub use descriptor::{
    CryptoMessageMeta, DEFAULT_GROUP, DESCRIPTOR_LEN, Descriptor, EXTRA_LEN, Extra, GROUP_MASK,
    Link, NAME_LEN, OciBlobMeta, PartitionMeta, SbomMeta, SignatureMeta,
};
pub use edit::{RemoveOptions, SetLen};
pub use error::{Result, SifError};
pub use header::{APPTAINER_LAUNCH_SCRIPT, HEADER_LEN, Header, LAUNCH_LEN, MAGIC, VERSION};
pub use reader::{MAX_DESCRIPTORS, METADATA_LIMIT, ObjectReader, Sif};
pub use writer::{
    DEFAULT_CAPACITY, DESCRIPTORS_OFFSET, ObjectInput, PARTITION_ALIGNMENT, SifBuilder,
    WriteSummary,
};
