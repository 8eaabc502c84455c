//! Entry point shared by the cargo-fuzz target and the malformed-input
//! regression tests: exercises every read path on arbitrary bytes.

use crate::reader::Sif;
use std::io::{Cursor, Read, Seek, SeekFrom};

/// What [`read_all`] managed to do with an input, for test assertions.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The image opened (header and table parsed).
    pub opened: bool,
    /// Number of structural problems found by verification.
    pub problems: usize,
    /// Objects whose bytes could be read in full.
    pub objects_read: usize,
}

/// Opens `data` as a SIF, verifies it, serializes every descriptor to JSON,
/// and reads every object it can (capped at 1 MiB each). Must never panic,
/// hang, or allocate more than a small multiple of `data.len()`.
pub fn read_all(data: &[u8]) -> Outcome {
    let mut out = Outcome::default();
    let Ok(mut sif) = Sif::from_reader(Cursor::new(data)) else {
        return out;
    };
    out.opened = true;
    out.problems = sif.problems().len();
    let _ = serde_json::to_string(sif.header());
    let _ = sif.primary_arch();
    let ids: Vec<u32> = sif.descriptors().iter().map(|d| d.id()).collect();
    for d in sif.descriptors() {
        let _ = serde_json::to_string(d);
        let _ = (d.extra(), d.name(), d.link(), d.group_id());
        if let Some(s) = d.signature() {
            let _ = s.fingerprint_hex();
        }
    }
    for id in ids {
        if sif.read_object_limited(id, 1 << 20).is_ok() {
            out.objects_read += 1;
        }
        if let Ok(mut r) = sif.object_reader(id) {
            let mut b = [0u8; 16];
            let _ = r.seek(SeekFrom::End(-4));
            let _ = r.read(&mut b);
            let _ = r.seek(SeekFrom::Current(i64::MIN));
            let _ = r.seek(SeekFrom::Start(u64::MAX));
            let _ = r.read(&mut b);
        }
    }
    let _ = sif.definition_file();
    let _ = sif.labels();
    let _ = sif.environment();
    out
}
