//! Interoperability with Debian's siftool (Go reference implementation),
//! both ways, object by object. These tests fail (never skip) when siftool
//! is missing: run `scripts/setup`.

mod common;

use common::*;
use sreg_sif::{
    Arch, DataType, FormatType, FsType, HashType, Link, MessageType, ObjectInput, PartType,
    RemoveOptions, SbomFormat, Sif, SifBuilder, SifError,
};
use std::fs;
use std::path::Path;
use uuid::Uuid;

const T0: i64 = 1_700_000_000;

/// Checks every siftool view of `path` against what we parse from it.
fn assert_siftool_agrees(path: &Path) {
    let p = path.to_str().unwrap();
    let mut sif = Sif::open(path).unwrap();
    let h = sif.header().clone();

    let hdr = parse_kv(&siftool_text(&["header", p]));
    assert_eq!(hdr["Version"], h.version_text());
    assert_eq!(hdr["ID"], h.id.hyphenated().to_string());
    assert_eq!(hdr["Created At"], go_time(h.created_at));
    assert_eq!(hdr["Modified At"], go_time(h.modified_at));
    assert_eq!(hdr["Descriptors Free"], h.descriptors_free.to_string());
    assert_eq!(hdr["Descriptors Total"], h.descriptors_total.to_string());
    assert_eq!(hdr["Descriptors Offset"], h.descriptors_offset.to_string());
    assert_eq!(hdr["Data Offset"], h.data_offset.to_string());
    match hdr.get("Primary Architecture") {
        Some(a) => assert_eq!(a, h.arch.name()),
        None => assert_eq!(h.arch, Arch::UNKNOWN),
    }

    let rows = parse_list(&siftool_text(&["list", p]));
    let ours: Vec<_> = sif.descriptors().iter().map(expected_row).collect();
    assert_eq!(rows, ours, "siftool list disagrees");

    let descriptors = sif.descriptors().to_vec();
    for d in &descriptors {
        let id = d.id().to_string();
        let info = parse_kv(&siftool_text(&["info", &id, p]));
        assert_info_matches(d, &info);
        let dumped = siftool(&["dump", &id, p]);
        let ours = sif.read_object_limited(d.id(), 1 << 30).unwrap();
        assert_eq!(dumped, ours, "dump of object {id} differs");
    }
}

#[test]
fn siftool_reads_what_we_write() {
    let dir = tempfile::tempdir().unwrap();
    let squash = make_squashfs(
        dir.path(),
        &[("hello", b"hello world\n"), ("x", &[7u8; 5000])],
    );
    let squash_len = fs::metadata(&squash).unwrap().len();
    let deffile = b"Bootstrap: docker\nFrom: alpine\n".to_vec();
    let labels = br#"{"org.label-schema.schema-version":"1.0","maintainer":"sreg"}"#.to_vec();
    let env = b"export PATH=/bin\n".to_vec();
    let id = Uuid::parse_str("de170c43-36ab-44a8-bca9-1ea1a070a274").unwrap();

    let out = dir.path().join("ours.sif");
    let mut f = fs::File::create(&out).unwrap();
    let summary = SifBuilder::new()
        .id(id)
        .time(T0)
        .object(ObjectInput::definition_file(&deffile[..]))
        .object(ObjectInput::labels(&labels[..]).name("labels.json"))
        .object(ObjectInput::environment(&env[..]))
        .object(ObjectInput::primary_squashfs(
            fs::File::open(&squash).unwrap(),
            Arch::AMD64,
        ))
        .object(ObjectInput::sbom(&b"{}"[..], SbomFormat::SpdxJson).no_group())
        .object(
            ObjectInput::crypto_message(&b"msg"[..], FormatType::Pem, MessageType::RsaOaep)
                .link(Link::Object(4)),
        )
        .object(
            ObjectInput::generic(&b"raw"[..])
                .link(Link::Group(1))
                .time(T0 + 5),
        )
        .write(&mut f)
        .unwrap();
    drop(f);
    assert_eq!(summary.header.arch, Arch::AMD64);
    assert_eq!(summary.total_len, fs::metadata(&out).unwrap().len());

    // Our own reading first.
    let mut sif = Sif::open(&out).unwrap();
    sif.verify().unwrap();
    assert_eq!(
        sif.header().launch_script_text(),
        "#!/usr/bin/env run-singularity\n"
    );
    assert_eq!(sif.header().id, id);
    assert_eq!(sif.definition_file().unwrap().unwrap().as_bytes(), deffile);
    assert_eq!(sif.labels().unwrap().unwrap()["maintainer"], "sreg");
    assert_eq!(sif.environment().unwrap().unwrap().as_bytes(), env);
    let prim = sif.primary_partition().unwrap().clone();
    assert_eq!(prim.id(), 4);
    assert_eq!(prim.offset() % 4096, 0);
    assert_eq!(prim.size() as u64, squash_len);
    assert_eq!(sif.primary_arch(), Arch::AMD64);
    assert_eq!(
        sif.read_object_limited(4, u64::MAX).unwrap(),
        fs::read(&squash).unwrap()
    );

    assert_siftool_agrees(&out);
}

#[test]
fn sequential_and_seekable_writers_produce_identical_bytes() {
    let make = |seq: bool| {
        let data = vec![9u8; 10_000];
        let b = SifBuilder::new()
            .id(Uuid::from_u128(42))
            .time(T0)
            .object(ObjectInput::definition_file(&b"Bootstrap: scratch\n"[..]).with_len(19))
            .object(ObjectInput::primary_squashfs(&data[..], Arch::ARM64).with_len(10_000));
        let mut out = std::io::Cursor::new(Vec::new());
        if seq {
            b.write_sequential(&mut out).unwrap();
        } else {
            b.write(&mut out).unwrap();
        }
        out.into_inner()
    };
    let seq = make(true);
    assert_eq!(seq, make(false));
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("seq.sif");
    fs::write(&p, &seq).unwrap();
    assert_siftool_agrees(&p);
}

/// Adds every data type siftool knows, with each partition option.
#[test]
fn we_read_what_siftool_writes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let img = d.join("s.sif");
    let p = img.to_str().unwrap();
    siftool(&["new", p]);
    let sq = make_squashfs(d, &[("a", b"a")]);
    let sq = sq.to_str().unwrap();
    let small = d.join("small.bin");
    fs::write(&small, b"some bytes\n").unwrap();
    let s = small.to_str().unwrap();

    // (siftool args, expected kind) in order; ids follow.
    siftool(&["add", p, s, "--datatype", "1"]);
    siftool(&["add", p, s, "--datatype", "2", "--groupid", "1"]);
    siftool(&[
        "add",
        p,
        s,
        "--datatype",
        "3",
        "--groupid",
        "1",
        "--filename",
        "labels",
    ]);
    siftool(&[
        "add",
        p,
        sq,
        "--datatype",
        "4",
        "--parttype",
        "2",
        "--partfs",
        "1",
        "--partarch",
        "2",
    ]);
    siftool(&[
        "add",
        p,
        s,
        "--datatype",
        "5",
        "--signentity",
        "433FE984155206BD962725E20E8713472A879943",
        "--signhash",
        "2",
        "--link",
        "4",
    ]);
    siftool(&["add", p, s, "--datatype", "6"]);
    siftool(&["add", p, s, "--datatype", "7", "--alignment", "512"]);
    siftool(&["add", p, s, "--datatype", "8"]);
    siftool(&[
        "add",
        p,
        s,
        "--datatype",
        "9",
        "--sbomformat",
        "cyclonedx-xml",
    ]);
    for (pt, fs_, arch) in [
        ("1", "2", "4"),
        ("3", "4", "12"),
        ("4", "3", "11"),
        ("1", "1", "1"),
    ] {
        siftool(&[
            "add",
            p,
            s,
            "--datatype",
            "4",
            "--parttype",
            pt,
            "--partfs",
            fs_,
            "--partarch",
            arch,
        ]);
    }

    let mut sif = Sif::open(&img).unwrap();
    sif.verify().unwrap();
    let kinds: Vec<DataType> = sif.descriptors().iter().map(|d| d.data_type()).collect();
    assert_eq!(
        kinds,
        [
            DataType::Deffile,
            DataType::EnvVar,
            DataType::Labels,
            DataType::Partition,
            DataType::Signature,
            DataType::GenericJson,
            DataType::Generic,
            DataType::CryptoMessage,
            DataType::Sbom,
            DataType::Partition,
            DataType::Partition,
            DataType::Partition,
            DataType::Partition,
        ]
    );
    assert_eq!(sif.header().arch, Arch::AMD64);
    assert_eq!(sif.header().launch_script_text(), "");
    let ds = sif.descriptors().to_vec();
    assert_eq!(ds[0].group_id(), None);
    assert_eq!(ds[1].group_id(), Some(1));
    assert_eq!(ds[2].name(), "labels");
    let p4 = ds[3].partition().unwrap();
    assert_eq!(
        (p4.fs_type, p4.part_type, p4.arch),
        (FsType::Squashfs, PartType::PrimarySystem, Arch::AMD64)
    );
    assert_eq!(ds[3].offset() % 4096, 0);
    let sig = ds[4].signature().unwrap();
    assert_eq!(sig.hash_type, HashType::Sha384);
    assert_eq!(
        sig.fingerprint_hex().unwrap(),
        "433FE984155206BD962725E20E8713472A879943"
    );
    assert_eq!(ds[4].link(), Some(Link::Object(4)));
    assert_eq!(ds[6].offset() % 512, 0);
    assert_eq!(ds[8].sbom().unwrap().format, SbomFormat::CycloneDxXml);
    let cm = ds[7].crypto_message().unwrap();
    assert_eq!(cm.format, FormatType::Unknown(0));
    let want = [
        (FsType::Ext3, PartType::System, "arm64"),
        (FsType::Raw, PartType::Data, "riscv64"),
        (FsType::ImmutableArchive, PartType::Overlay, "s390x"),
        (FsType::Squashfs, PartType::System, "386"),
    ];
    for (d, (f, t, a)) in ds[9..].iter().zip(want) {
        let m = d.partition().unwrap();
        assert_eq!((m.fs_type, m.part_type, m.arch.name()), (f, t, a));
    }
    assert_eq!(sif.definition_file().unwrap().unwrap(), "some bytes\n");
    assert_siftool_agrees(&img);

    // Delete an object in the middle and the last one, then set a new primary.
    siftool(&["del", "2", p]);
    siftool(&["del", "13", p]);
    let sif = Sif::open(&img).unwrap();
    sif.verify().unwrap();
    assert!(sif.descriptor(2).is_err());
    assert_eq!(sif.descriptors().len(), 11);
    assert_eq!(sif.header().descriptors_free, 48 - 11);
    assert_siftool_agrees(&img);

    siftool(&["setprim", "10", p]);
    let sif = Sif::open(&img).unwrap();
    sif.verify().unwrap();
    let prim = sif.primary_partition().unwrap();
    assert_eq!(prim.id(), 10);
    assert_eq!(
        sif.descriptor(4).unwrap().partition().unwrap().part_type,
        PartType::System
    );
    assert_siftool_agrees(&img);
    // JSON names are stable.
    let json = serde_json::to_value(sif.descriptors()).unwrap();
    assert_eq!(json[0]["kind"], "deffile");
    assert_eq!(json[2]["partition"]["fs_type"], "squashfs");
}

#[test]
fn siftool_reads_our_in_place_edits_and_we_read_its() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("e.sif");
    let p = img.to_str().unwrap();
    let squash = make_squashfs(dir.path(), &[("f", b"file")]);
    let mut f = fs::File::create(&img).unwrap();
    SifBuilder::new()
        .time(T0)
        .object(ObjectInput::definition_file(&b"Bootstrap: scratch\n"[..]))
        .object(ObjectInput::primary_squashfs(
            fs::File::open(&squash).unwrap(),
            Arch::AMD64,
        ))
        .write(&mut f)
        .unwrap();
    drop(f);

    // Add two objects, remove the middle-of-file deffile, then the last one.
    let mut sif = Sif::open_rw(&img).unwrap();
    let sig_id = sif
        .add_object(
            ObjectInput::new(DataType::Signature, &b"-----BEGIN PGP SIGNATURE-----"[..])
                .extra(sreg_sif::Extra::Signature(sreg_sif::SignatureMeta {
                    hash_type: HashType::Sha256,
                    entity: {
                        let mut e = [0u8; 256];
                        e[..20].copy_from_slice(&[0xAB; 20]);
                        e
                    },
                }))
                .link(Link::Object(2))
                .no_group()
                .time(T0 + 10),
        )
        .unwrap();
    assert_eq!(sig_id, 3);
    let gen_id = sif
        .add_object(ObjectInput::generic(&b"to be removed"[..]).time(T0 + 11))
        .unwrap();
    sif.verify().unwrap();
    drop(sif);
    assert_siftool_agrees(&img);
    let len_before = fs::metadata(&img).unwrap().len();

    let mut sif = Sif::open_rw(&img).unwrap();
    sif.remove_object(
        1,
        RemoveOptions {
            zero_data: true,
            compact: true,
            time: Some(T0 + 20),
        },
    )
    .unwrap();
    sif.remove_object(
        gen_id,
        RemoveOptions {
            time: Some(T0 + 21),
            ..Default::default()
        },
    )
    .unwrap();
    sif.verify().unwrap();
    assert_eq!(sif.header().modified_at, T0 + 21);
    assert_eq!(
        sif.descriptors().iter().map(|d| d.id()).collect::<Vec<_>>(),
        [2, 3]
    );
    drop(sif);
    let len_after = fs::metadata(&img).unwrap().len();
    assert_eq!(len_after, len_before - b"to be removed".len() as u64);
    assert_siftool_agrees(&img);

    // siftool keeps editing our edited image; we read its result.
    siftool(&[
        "add",
        p,
        squash.to_str().unwrap(),
        "--datatype",
        "4",
        "--parttype",
        "1",
        "--partfs",
        "1",
        "--partarch",
        "4",
    ]);
    let mut sif = Sif::open_rw(&img).unwrap();
    sif.verify().unwrap();
    let new = sif.descriptor(1).unwrap().clone();
    assert_eq!(new.partition().unwrap().arch, Arch::ARM64);
    // A second primary partition is refused.
    let err = sif
        .add_object(ObjectInput::primary_squashfs(&b"x"[..], Arch::AMD64))
        .unwrap_err();
    assert!(
        matches!(err, SifError::PrimaryPartitionExists { existing: 2 }),
        "{err}"
    );
    sif.set_primary_partition(1, Some(T0 + 30)).unwrap();
    assert_eq!(sif.header().arch, Arch::ARM64);
    drop(sif);
    assert_siftool_agrees(&img);
}
