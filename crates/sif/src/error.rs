//! Typed errors. Every variant names what is wrong and where (object id,
//! byte offset, field), so a caller can report it without extra context.

use std::io;

/// Everything that can go wrong while reading, verifying or writing a SIF.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SifError {
    /// An I/O error from the underlying reader or writer.
    #[error("I/O error while {context}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// The input ends before a structure that must be there.
    #[error("file is {file_len} bytes, too short for the {what} at offset {offset} ({len} bytes)")]
    Truncated {
        /// Which structure was cut off.
        what: &'static str,
        /// Where it starts.
        offset: u64,
        /// How long it should be.
        len: u64,
        /// Real length of the input.
        file_len: u64,
    },

    /// The magic at offset 32 is not `SIF_MAGIC\0`.
    #[error(
        "bad magic at offset 32: expected \"SIF_MAGIC\\0\", found \"{}\" (not a SIF file)",
        found.escape_ascii()
    )]
    BadMagic {
        /// The ten bytes found.
        found: [u8; 10],
    },

    /// The version at offset 42 is not one we understand.
    #[error(
        "unsupported SIF version \"{}\" at offset 42 (supported: \"01\")",
        found.escape_ascii()
    )]
    UnsupportedVersion {
        /// The three bytes found.
        found: [u8; 3],
    },

    /// A header field holds a value that cannot be valid (negative, overflowing).
    #[error("header field {field} has invalid value {value}: {reason}")]
    BadHeaderField {
        /// Header field name.
        field: &'static str,
        /// The raw value.
        value: i64,
        /// Why it is invalid.
        reason: &'static str,
    },

    /// The descriptor table does not fit in the file or is malformed.
    #[error(
        "descriptor table (offset {offset}, size {size}, {count} descriptors) is invalid: {reason}"
    )]
    BadDescriptorTable {
        /// Header `descriptors_offset`.
        offset: i64,
        /// Header `descriptors_size`.
        size: i64,
        /// Header `descriptors_total`.
        count: i64,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// The descriptor table and the data section overlap.
    #[error(
        "descriptor table [{table_start}, {table_end}) overlaps data section [{data_start}, {data_end})"
    )]
    TableOverlapsData {
        /// Start of the descriptor table.
        table_start: u64,
        /// End of the descriptor table.
        table_end: u64,
        /// Start of the data section.
        data_start: u64,
        /// End of the data section.
        data_end: u64,
    },

    /// The data section declared in the header does not fit in the file.
    #[error(
        "data section [{data_start}, {data_end}) declared in header extends past end of file ({file_len} bytes)"
    )]
    DataSectionOutOfFile {
        /// Header `data_offset`.
        data_start: u64,
        /// `data_offset + data_size`.
        data_end: u64,
        /// Real file length.
        file_len: u64,
    },

    /// A descriptor field holds a value that cannot be valid.
    #[error("object {id} (descriptor #{index}): field {field} has invalid value {value}: {reason}")]
    BadDescriptorField {
        /// Object id from the descriptor.
        id: u32,
        /// Position in the descriptor table (0-based).
        index: usize,
        /// Field name.
        field: &'static str,
        /// The raw value.
        value: i64,
        /// Why it is invalid.
        reason: &'static str,
    },

    /// An object's bytes lie (partly) outside the file.
    #[error("object {id}: range [{offset}, {end}) extends past end of file ({file_len} bytes)")]
    ObjectOutOfFile {
        /// Object id.
        id: u32,
        /// Start offset.
        offset: u64,
        /// End offset (exclusive).
        end: u64,
        /// Real file length.
        file_len: u64,
    },

    /// An object's bytes lie outside the data section declared in the header.
    #[error(
        "object {id}: range [{offset}, {end}) is outside the data section [{data_start}, {data_end})"
    )]
    ObjectOutsideData {
        /// Object id.
        id: u32,
        /// Start offset.
        offset: u64,
        /// End offset (exclusive).
        end: u64,
        /// Start of the data section.
        data_start: u64,
        /// End of the data section.
        data_end: u64,
    },

    /// Two objects share bytes.
    #[error(
        "object {first} [{first_start}, {first_end}) overlaps object {second} [{second_start}, {second_end})"
    )]
    ObjectsOverlap {
        /// First object id.
        first: u32,
        /// Its start.
        first_start: u64,
        /// Its end.
        first_end: u64,
        /// Second object id.
        second: u32,
        /// Its start.
        second_start: u64,
        /// Its end.
        second_end: u64,
    },

    /// `descriptors_total - descriptors_free` disagrees with the used descriptors found.
    #[error(
        "header says {declared} descriptors are used (total {total} - free {free}), but the table has {found}"
    )]
    UsedCountMismatch {
        /// Used count implied by the header.
        declared: i64,
        /// Header `descriptors_total`.
        total: i64,
        /// Header `descriptors_free`.
        free: i64,
        /// Used descriptors actually found.
        found: usize,
    },

    /// Two used descriptors carry the same object id.
    #[error("duplicate object id {id} in descriptors #{first_index} and #{second_index}")]
    DuplicateId {
        /// The repeated id.
        id: u32,
        /// Index of the first descriptor.
        first_index: usize,
        /// Index of the second descriptor.
        second_index: usize,
    },

    /// A descriptor links to an object or group that does not exist.
    #[error("object {id} links to {} {target}, which does not exist", if *.is_group { "group" } else { "object" })]
    DanglingLink {
        /// The linking object.
        id: u32,
        /// The missing target.
        target: u32,
        /// Whether the target is a group id.
        is_group: bool,
    },

    /// More than one partition claims to be the primary system partition.
    #[error("more than one primary system partition: objects {first} and {second}")]
    MultiplePrimaryPartitions {
        /// First primary partition id.
        first: u32,
        /// Second primary partition id.
        second: u32,
    },

    /// An object's `size_with_padding` is smaller than its `size`.
    #[error("object {id}: size_with_padding {size_with_padding} is smaller than size {size}")]
    BadPadding {
        /// Object id.
        id: u32,
        /// Declared size.
        size: i64,
        /// Declared size with padding.
        size_with_padding: i64,
    },

    /// No object with this id.
    #[error("no object with id {id}")]
    ObjectNotFound {
        /// The id asked for.
        id: u32,
    },

    /// An object is larger than the caller's limit.
    #[error("object {id} is {size} bytes, more than the limit of {limit} bytes")]
    ObjectTooLarge {
        /// Object id.
        id: u32,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },

    /// An object's bytes are not valid UTF-8 / JSON where text or JSON is expected.
    #[error("object {id} ({kind}) is not valid {expected}: {detail}")]
    BadContent {
        /// Object id.
        id: u32,
        /// Object kind name.
        kind: &'static str,
        /// What was expected ("UTF-8", "JSON").
        expected: &'static str,
        /// Parser message.
        detail: String,
    },

    /// The object is not of the kind the operation needs.
    #[error("object {id} is a {found}, expected {expected}")]
    WrongKind {
        /// Object id.
        id: u32,
        /// Kind found.
        found: &'static str,
        /// Kind needed.
        expected: &'static str,
    },

    /// Invalid input given to the writer or editor.
    #[error("invalid input for object #{index}: {reason}")]
    InvalidInput {
        /// Position of the input (0-based), or the id for edits.
        index: usize,
        /// What is wrong.
        reason: String,
    },

    /// A declared input length does not match what the reader produced.
    #[error("input for object #{index} declared {declared} bytes but produced {actual}")]
    InputLengthMismatch {
        /// Position of the input.
        index: usize,
        /// Declared length.
        declared: u64,
        /// Bytes produced (may stop counting at declared + 1).
        actual: u64,
    },

    /// No free descriptor left for a new object.
    #[error(
        "descriptor table is full ({total} descriptors); rewrite the image with a larger table"
    )]
    DescriptorTableFull {
        /// Table capacity.
        total: i64,
    },

    /// The image already has a primary partition.
    #[error("image already has a primary system partition (object {existing})")]
    PrimaryPartitionExists {
        /// The existing primary partition.
        existing: u32,
    },
}

impl SifError {
    /// Wraps an I/O error with what was being done.
    pub(crate) fn io(context: &'static str) -> impl FnOnce(io::Error) -> SifError {
        move |source| SifError::Io { context, source }
    }
}

/// Shorthand for results in this crate.
pub type Result<T, E = SifError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_and_version_errors_show_the_bytes_as_text() {
        let e = SifError::BadMagic {
            found: *b"daemon:x:1",
        };
        assert_eq!(
            e.to_string(),
            "bad magic at offset 32: expected \"SIF_MAGIC\\0\", found \"daemon:x:1\" (not a SIF file)"
        );
        let e = SifError::UnsupportedVersion { found: *b"02\0" };
        assert_eq!(
            e.to_string(),
            "unsupported SIF version \"02\\x00\" at offset 42 (supported: \"01\")"
        );
    }
}
