//! Real SIF images of any size, for tests: a definition file, labels, and a
//! primary "squashfs" partition of pseudo-random bytes (registries do not
//! look inside partitions). Deterministic for a given seed.

use std::io::Cursor;
use std::path::Path;

use sreg_sif::{Arch, ObjectInput, SifBuilder};

/// A SIF of about `payload` bytes for `arch` (`"amd64"`, `"arm64"`, ...).
pub fn sif_bytes(arch: &str, payload: usize, seed: u64) -> Vec<u8> {
    let arch = Arch::from_name(arch).expect("known architecture");
    let def = format!("Bootstrap: docker\nFrom: alpine:3.20\n\n%labels\n    Seed {seed}\n");
    let labels = format!(
        r#"{{"org.label-schema.build-arch":"{}","seed":"{seed}"}}"#,
        arch.name()
    );
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        | 1;
    let partition: Vec<u8> = (0..payload)
        .map(|_| {
            // xorshift: cheap, and incompressible enough for transfer tests.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let mut out = Cursor::new(Vec::with_capacity(payload + 40_000));
    SifBuilder::new()
        .time(1_700_000_000)
        .id(uuid_from_seed(seed))
        .object(ObjectInput::definition_file(def.as_bytes()))
        .object(ObjectInput::labels(labels.as_bytes()))
        .object(ObjectInput::primary_squashfs(partition.as_slice(), arch))
        .write(&mut out)
        .expect("write test SIF");
    out.into_inner()
}

/// Writes [`sif_bytes`] to `path` and returns its `sha256.<hex>` hash.
pub fn write_sif(path: &Path, arch: &str, payload: usize, seed: u64) -> String {
    let bytes = sif_bytes(arch, payload, seed);
    std::fs::write(path, &bytes).expect("write SIF file");
    library_hash(&bytes)
}

/// The library API's image hash of some bytes: `sha256.<hex>`.
pub fn library_hash(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("sha256.{}", hex::encode(Sha256::digest(bytes)))
}

fn uuid_from_seed(seed: u64) -> uuid::Uuid {
    uuid::Uuid::from_u64_pair(seed, !seed)
}
