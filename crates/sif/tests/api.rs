//! Writer, editor and convenience-layer behaviour: large sparse images,
//! streaming, deterministic output, JSON names, and input validation.

use sreg_sif::{
    Arch, DataType, Extra, FsType, Link, ObjectInput, PartType, RemoveOptions, Sif, SifBuilder,
    SifError,
};
use std::fs::{self, File};
use std::io::{self, Cursor, Read, Seek, SeekFrom, Write};
use uuid::Uuid;

const T0: i64 = 1_700_000_000;

/// Counts bytes read through it, to prove what opening touches.
struct Counting<R> {
    inner: R,
    read: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

impl<R: Seek> Seek for Counting<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

fn small_image() -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    SifBuilder::new()
        .id(Uuid::from_u128(7))
        .time(T0)
        .object(ObjectInput::definition_file(&b"Bootstrap: scratch\n"[..]))
        .object(ObjectInput::labels(&br#"{"a":"1"}"#[..]))
        .object(ObjectInput::primary_squashfs(&[1u8; 3000][..], Arch::AMD64).name("rootfs"))
        .write(&mut out)
        .unwrap();
    out.into_inner()
}

#[test]
fn opening_a_10_gib_image_reads_only_header_and_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.sif");
    fs::write(&path, small_image()).unwrap();
    // Grow the partition (object 3, slot 2) to 10 GiB, sparsely.
    let big: i64 = 10 << 30;
    let mut f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let slot = 4096 + 2 * 585;
    let mut off = [0u8; 8];
    f.seek(SeekFrom::Start(slot + 17)).unwrap();
    f.read_exact(&mut off).unwrap();
    let part_off = i64::from_le_bytes(off);
    f.seek(SeekFrom::Start(slot + 25)).unwrap();
    f.write_all(&big.to_le_bytes()).unwrap();
    f.write_all(&big.to_le_bytes()).unwrap(); // size_with_padding (no padding needed)
    let data_off = 4096 + 48 * 585;
    f.seek(SeekFrom::Start(120)).unwrap();
    f.write_all(&(part_off + big - data_off).to_le_bytes())
        .unwrap();
    f.set_len((part_off + big) as u64).unwrap();
    drop(f);

    let sif = Sif::from_reader(Counting {
        inner: File::open(&path).unwrap(),
        read: 0,
    })
    .unwrap();
    sif.verify().unwrap();
    let prim = sif.primary_partition().unwrap();
    assert_eq!(prim.size(), big);
    assert_eq!(sif.primary_arch(), Arch::AMD64);
    let read_at_open = sif.into_inner().read;
    assert!(
        read_at_open <= 128 + 48 * 585,
        "open read {read_at_open} bytes"
    );

    let mut sif = Sif::from_reader(Counting {
        inner: File::open(&path).unwrap(),
        read: 0,
    })
    .unwrap();
    assert_eq!(
        sif.definition_file().unwrap().unwrap(),
        "Bootstrap: scratch\n"
    );
    assert!(matches!(
        sif.read_object_limited(3, 1 << 20),
        Err(SifError::ObjectTooLarge { id: 3, .. })
    ));
    let mut r = sif.object_reader(3).unwrap();
    assert_eq!(r.len(), big as u64);
    r.seek(SeekFrom::End(-16)).unwrap();
    let mut tail = Vec::new();
    r.read_to_end(&mut tail).unwrap();
    assert_eq!(tail, vec![0u8; 16]);
    let total = sif.into_inner().read;
    assert!(
        total < 64 * 1024 + 128 + 48 * 585,
        "read {total} bytes in all"
    );
}

#[test]
fn partition_is_streamed_from_a_reader() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stream.sif");
    let len = 20u64 << 20;
    let mut f = File::create(&path).unwrap();
    let s = SifBuilder::new()
        .time(T0)
        .object(ObjectInput::primary_squashfs(
            io::repeat(0x5a).take(len),
            Arch::ARM64,
        ))
        .write(&mut f)
        .unwrap();
    drop(f);
    assert_eq!(s.descriptors[0].size() as u64, len);
    let mut sif = Sif::open(&path).unwrap();
    sif.verify().unwrap();
    let mut r = sif.object_reader(1).unwrap();
    r.seek(SeekFrom::Start(len - 1)).unwrap();
    let mut b = [0u8; 1];
    r.read_exact(&mut b).unwrap();
    assert_eq!(b[0], 0x5a);
}

#[test]
fn output_is_deterministic_and_json_is_stable() {
    let a = small_image();
    assert_eq!(a, small_image());
    let sif = Sif::from_reader(Cursor::new(a)).unwrap();
    let h = serde_json::to_value(sif.header()).unwrap();
    assert_eq!(h["arch"], "amd64");
    assert_eq!(h["arch_code"], "02");
    assert_eq!(h["launch_script"], "#!/usr/bin/env run-singularity\n");
    assert_eq!(h["id"], "00000000-0000-0000-0000-000000000007");
    assert_eq!(h["descriptors_free"], 45);
    let d = serde_json::to_value(sif.descriptor(3).unwrap()).unwrap();
    assert_eq!(
        d,
        serde_json::json!({
            "id": 3, "kind": "partition", "kind_code": 0x4004, "name": "rootfs",
            "group_id": 1, "link": null, "offset": 32768, "size": 3000,
            "size_with_padding": 3000 + 32768 - (32176 + 19 + 9),
            "created_at": T0, "modified_at": T0,
            "partition": {
                "fs_type": "squashfs", "fs_type_code": 1,
                "part_type": "primary-system", "part_type_code": 2,
                "arch": "amd64", "arch_code": "02"
            }
        })
    );
    let d1 = serde_json::to_value(sif.descriptor(1).unwrap()).unwrap();
    assert_eq!(d1["kind"], "deffile");
    assert!(d1.get("partition").is_none());
}

#[test]
fn writer_rejects_bad_input() {
    let w = |b: SifBuilder<'_>| b.write(&mut Cursor::new(Vec::new())).unwrap_err();
    let e = w(SifBuilder::new().object(ObjectInput::generic(&b"abc"[..]).with_len(5)));
    assert!(
        matches!(
            e,
            SifError::InputLengthMismatch {
                index: 0,
                declared: 5,
                actual: 3
            }
        ),
        "{e}"
    );
    let e = w(SifBuilder::new().object(ObjectInput::generic(&b"abcdef"[..]).with_len(2)));
    assert!(
        matches!(e, SifError::InputLengthMismatch { declared: 2, .. }),
        "{e}"
    );
    let e = w(SifBuilder::new().object(ObjectInput::generic(&b""[..]).name("n".repeat(129))));
    assert!(matches!(e, SifError::InvalidInput { index: 0, .. }), "{e}");
    let e = w(SifBuilder::new().launch_script("#".repeat(32)));
    assert!(matches!(e, SifError::InvalidInput { .. }), "{e}");
    let e = w(SifBuilder::new()
        .object(ObjectInput::primary_squashfs(&b""[..], Arch::AMD64))
        .object(ObjectInput::primary_squashfs(&b""[..], Arch::AMD64)));
    assert!(
        matches!(e, SifError::PrimaryPartitionExists { existing: 1 }),
        "{e}"
    );
    let e = w(SifBuilder::new().object(ObjectInput::generic(&b""[..]).link(Link::Object(5))));
    assert!(matches!(e, SifError::InvalidInput { .. }), "{e}");
    let e = w(
        SifBuilder::new().object(ObjectInput::generic(&b""[..]).extra(Extra::Partition(
            sreg_sif::PartitionMeta {
                fs_type: FsType::Raw,
                part_type: PartType::Data,
                arch: Arch::AMD64,
            },
        ))),
    );
    assert!(matches!(e, SifError::InvalidInput { .. }), "{e}");
    let e = w(SifBuilder::new().object(ObjectInput::new(DataType::Partition, &b""[..])));
    assert!(matches!(e, SifError::InvalidInput { .. }), "{e}");
    let e = w(SifBuilder::new()
        .descriptor_capacity(1)
        .object(ObjectInput::generic(&b""[..]))
        .object(ObjectInput::generic(&b""[..])));
    assert!(
        matches!(e, SifError::DescriptorTableFull { total: 1 }),
        "{e}"
    );
    let e = SifBuilder::new()
        .object(ObjectInput::generic(&b"x"[..]))
        .write_sequential(&mut Vec::new())
        .unwrap_err();
    assert!(matches!(e, SifError::InvalidInput { index: 0, .. }), "{e}");
}

#[test]
fn editor_in_place() {
    let mut sif = Sif::from_reader(Cursor::new(small_image())).unwrap();
    assert!(matches!(
        sif.remove_object(9, RemoveOptions::default()),
        Err(SifError::ObjectNotFound { id: 9 })
    ));
    assert!(matches!(
        sif.set_primary_partition(1, None),
        Err(SifError::WrongKind {
            id: 1,
            expected: "partition",
            ..
        })
    ));
    // Remove the primary partition (last object): file shrinks, arch resets.
    let before = sif.file_len();
    sif.remove_object(
        3,
        RemoveOptions {
            time: Some(T0 + 1),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(sif.header().arch, Arch::UNKNOWN);
    let after = sif.file_len();
    assert_eq!(before - after, 32768 - (32176 + 19 + 9) + 3000);
    let mut sif = Sif::from_reader(sif.into_inner()).unwrap();
    sif.verify().unwrap();
    assert_eq!(sif.header().data_size, 19 + 9);
    assert_eq!(sif.file_len(), 32176 + 28);
    // Re-add into the freed slot: same id, aligned again.
    let id = sif
        .add_object(ObjectInput::partition(
            &[2u8; 10][..],
            FsType::Squashfs,
            PartType::System,
            Arch::ARM64,
        ))
        .unwrap();
    assert_eq!(id, 3);
    sif.set_primary_partition(3, Some(T0 + 2)).unwrap();
    let mut sif = Sif::from_reader(sif.into_inner()).unwrap();
    sif.verify().unwrap();
    assert_eq!(sif.primary_arch(), Arch::ARM64);
    assert_eq!(sif.header().arch, Arch::ARM64);
    assert_eq!(sif.descriptor(3).unwrap().offset() % 4096, 0);
    assert_eq!(sif.read_object_limited(3, 100).unwrap(), vec![2u8; 10]);

    // Full table.
    let mut out = Cursor::new(Vec::new());
    SifBuilder::new()
        .descriptor_capacity(1)
        .object(ObjectInput::generic(&b"a"[..]))
        .write(&mut out)
        .unwrap();
    let mut sif = Sif::from_reader(out).unwrap();
    assert!(matches!(
        sif.add_object(ObjectInput::generic(&b"b"[..])),
        Err(SifError::DescriptorTableFull { total: 1 })
    ));

    // A broken image is not edited.
    let mut bytes = small_image();
    bytes[120] = 0xff; // data_size becomes huge
    let mut sif = Sif::from_reader(Cursor::new(bytes)).unwrap();
    assert!(matches!(
        sif.add_object(ObjectInput::generic(&b"b"[..])),
        Err(SifError::DataSectionOutOfFile { .. })
    ));
}

/// The handmade fixture has one object of every kind with extra metadata.
#[test]
fn typed_accessors_for_every_kind() {
    use sreg_sif::{FormatType, HashType, MessageType, SbomFormat};
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/valid_all_kinds.sif"
    );
    let sif = Sif::open(path).unwrap();
    sif.verify().unwrap();
    let by_kind = |k| sif.first_of(k).unwrap();
    let sig = by_kind(DataType::Signature).signature().unwrap();
    assert_eq!(sig.hash_type, HashType::Sha256);
    assert_eq!(sig.fingerprint().unwrap()[..3], [1, 2, 3]);
    assert_eq!(by_kind(DataType::Signature).link(), Some(Link::Object(3)));
    let cm = by_kind(DataType::CryptoMessage).crypto_message().unwrap();
    assert_eq!(
        (cm.format, cm.message),
        (FormatType::OpenPgp, MessageType::ClearSignature)
    );
    assert_eq!(
        by_kind(DataType::Sbom).sbom().unwrap().format,
        SbomFormat::SpdxJson
    );
    assert_eq!(
        by_kind(DataType::OciBlob).oci_blob().unwrap().digest,
        "sha256:abcd"
    );
    let p = by_kind(DataType::Partition).partition().unwrap();
    assert_eq!(
        (p.fs_type, p.part_type, p.arch),
        (FsType::Squashfs, PartType::PrimarySystem, Arch::AMD64)
    );
    assert!(by_kind(DataType::Deffile).partition().is_none());
    assert_eq!(by_kind(DataType::Deffile).name(), "obj0");
    let json = serde_json::to_value(sif.descriptors()).unwrap();
    let kinds: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "deffile",
            "labels",
            "partition",
            "signature",
            "crypto-message",
            "sbom",
            "oci-blob"
        ]
    );
    assert_eq!(
        json[3]["signature"]["fingerprint"],
        "0102030405060708090A0B0C0D0E0F1011121314"
    );
    assert_eq!(json[4]["crypto_message"]["message_type_code"], 0x100);
    assert_eq!(json[6]["oci_blob"]["digest"], "sha256:abcd");
}
