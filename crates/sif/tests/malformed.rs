//! Hand-crafted malformed images, each asserting the specific error, plus
//! the fuzz regression corpus under tests/data/.

use sreg_sif::{Sif, SifError, fuzz};
use std::io::{Cursor, Read, Seek, SeekFrom};

const H_FREE: usize = 80;
const H_TOTAL: usize = 88;
const H_DOFF: usize = 96;
const H_DSIZE: usize = 104;
const H_DATAOFF: usize = 112;
const H_DATASIZE: usize = 120;
const DESC: usize = 585;
const TABLE: usize = 128;

/// Object field offsets inside a descriptor.
const D_ID: usize = 5;
const D_GROUP: usize = 9;
const D_LINK: usize = 13;
const D_OFF: usize = 17;
const D_SIZE: usize = 25;
const D_SWP: usize = 33;
const D_EXTRA: usize = 201;

struct Obj {
    kind: i32,
    data: &'static [u8],
    extra: Vec<u8>,
}

/// A compact valid image: table right after the header, no padding.
/// Objects: 1 deffile, 2 labels, 3 primary squashfs partition (amd64),
/// 4 signature linked to 3.
fn base() -> Vec<u8> {
    let mut part = Vec::new();
    part.extend_from_slice(&1i32.to_le_bytes());
    part.extend_from_slice(&2i32.to_le_bytes());
    part.extend_from_slice(b"02\0");
    let mut sig = 1i32.to_le_bytes().to_vec();
    sig.extend_from_slice(&[0x11; 20]);
    let objs = [
        Obj {
            kind: 0x4001,
            data: b"Bootstrap: scratch\n",
            extra: vec![],
        },
        Obj {
            kind: 0x4003,
            data: br#"{"k":"v"}"#,
            extra: vec![],
        },
        Obj {
            kind: 0x4004,
            data: b"hsqs-fake-partition-bytes",
            extra: part,
        },
        Obj {
            kind: 0x4005,
            data: b"sig",
            extra: sig,
        },
    ];
    let n = objs.len();
    let data_off = TABLE + n * DESC;
    let mut out = vec![0u8; data_off];
    out[..31].copy_from_slice(b"#!/usr/bin/env run-singularity\n");
    out[32..42].copy_from_slice(b"SIF_MAGIC\0");
    out[42..45].copy_from_slice(b"01\0");
    out[45..48].copy_from_slice(b"02\0");
    out[48..64].copy_from_slice(&[0xab; 16]);
    let mut cur = data_off;
    for (i, o) in objs.iter().enumerate() {
        let d = TABLE + i * DESC;
        out[d..d + 4].copy_from_slice(&o.kind.to_le_bytes());
        out[d + 4] = 1;
        out[d + D_ID..d + D_ID + 4].copy_from_slice(&(i as u32 + 1).to_le_bytes());
        out[d + D_GROUP..d + D_GROUP + 4].copy_from_slice(&0xf000_0001u32.to_le_bytes());
        if o.kind == 0x4005 {
            out[d + D_LINK..d + D_LINK + 4].copy_from_slice(&3u32.to_le_bytes());
        }
        put(&mut out, d + D_OFF, cur as i64);
        put(&mut out, d + D_SIZE, o.data.len() as i64);
        put(&mut out, d + D_SWP, o.data.len() as i64);
        out[d + D_EXTRA..d + D_EXTRA + o.extra.len()].copy_from_slice(&o.extra);
        cur += o.data.len();
    }
    for o in &objs {
        out.extend_from_slice(o.data);
    }
    put(&mut out, H_FREE, 0);
    put(&mut out, H_TOTAL, n as i64);
    put(&mut out, H_DOFF, TABLE as i64);
    put(&mut out, H_DSIZE, (n * DESC) as i64);
    put(&mut out, H_DATAOFF, data_off as i64);
    put(&mut out, H_DATASIZE, (cur - data_off) as i64);
    out
}

fn put(b: &mut [u8], at: usize, v: i64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn get(b: &[u8], at: usize) -> i64 {
    i64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// Byte position of descriptor `i` (0-based) field `f`.
fn dfield(i: usize, f: usize) -> usize {
    TABLE + i * DESC + f
}

fn open(b: &[u8]) -> Result<Sif<Cursor<Vec<u8>>>, SifError> {
    Sif::from_reader(Cursor::new(b.to_vec()))
}

fn open_err(b: &[u8]) -> SifError {
    open(b).expect_err("open should fail")
}

/// Opens fine, then returns all verification problems.
fn problems(b: &[u8]) -> Vec<SifError> {
    open(b).expect("open should succeed").problems()
}

#[test]
fn base_image_is_valid() {
    let b = base();
    let mut sif = open(&b).unwrap();
    sif.verify().unwrap();
    assert_eq!(sif.descriptors().len(), 4);
    assert_eq!(
        sif.definition_file().unwrap().unwrap(),
        "Bootstrap: scratch\n"
    );
    assert_eq!(sif.labels().unwrap().unwrap()["k"], "v");
    assert_eq!(sif.primary_partition().unwrap().id(), 3);
    let out = fuzz::read_all(&b);
    assert_eq!(
        out,
        fuzz::Outcome {
            opened: true,
            problems: 0,
            objects_read: 4
        }
    );
}

#[test]
fn short_header() {
    for len in [0, 1, 64, 127] {
        let e = open_err(&base()[..len]);
        assert!(
            matches!(e, SifError::Truncated { what: "global header", file_len, .. } if file_len == len as u64),
            "{len}: {e}"
        );
    }
}

#[test]
fn bad_magic_and_version() {
    let mut b = base();
    b[32] = b'X';
    assert!(matches!(open_err(&b), SifError::BadMagic { found } if &found[..] == b"XIF_MAGIC\0"));
    let mut b = base();
    b[43] = b'2';
    assert!(matches!(open_err(&b), SifError::UnsupportedVersion { found } if &found == b"02\0"));
}

fn table_err(b: &[u8], want: &str) {
    match open_err(b) {
        SifError::BadDescriptorTable { reason, .. } => assert!(reason.contains(want), "{reason}"),
        e => panic!("expected BadDescriptorTable({want}), got {e}"),
    }
}

#[test]
fn absurd_descriptor_counts() {
    for count in [i64::MAX, 1 << 62, 1 << 40, 65_537] {
        let mut b = base();
        put(&mut b, H_TOTAL, count);
        put(&mut b, H_DSIZE, i64::MAX);
        table_err(&b, "above limit");
    }
    let mut b = base();
    put(&mut b, H_TOTAL, -1);
    table_err(&b, "negative descriptor count");
    // Within the cap but far more than the file holds: no table read.
    let mut b = base();
    put(&mut b, H_TOTAL, 65_536);
    put(&mut b, H_DSIZE, 65_536 * DESC as i64);
    assert!(matches!(
        open_err(&b),
        SifError::Truncated {
            what: "descriptor table",
            offset: 128,
            ..
        }
    ));
}

#[test]
fn descriptor_table_out_of_range() {
    let mut b = base();
    put(&mut b, H_DOFF, -4096);
    table_err(&b, "negative offset");
    let mut b = base();
    put(&mut b, H_DOFF, i64::MAX);
    assert!(matches!(
        open_err(&b),
        SifError::Truncated {
            what: "descriptor table",
            ..
        }
    ));
    let mut b = base();
    put(&mut b, H_DSIZE, -1);
    table_err(&b, "negative size");
    let mut b = base();
    put(&mut b, H_DSIZE, 100);
    table_err(&b, "smaller than");
    let mut b = base();
    put(&mut b, H_DOFF, 64);
    table_err(&b, "overlaps the global header");
    // Larger than needed opens, but verify flags the mismatch.
    let mut b = base();
    put(&mut b, H_DSIZE, 4 * DESC as i64 + 1);
    let p = problems(&b);
    assert!(
        matches!(&p[0], SifError::BadDescriptorTable { reason, .. } if reason.contains("not descriptors_total")),
        "{p:?}"
    );
}

#[test]
fn table_overlapping_data() {
    let mut b = base();
    let data_off = get(&b, H_DATAOFF);
    let data_size = get(&b, H_DATASIZE);
    put(&mut b, H_DATAOFF, data_off - 100);
    put(&mut b, H_DATASIZE, data_size + 100);
    let p = problems(&b);
    assert!(
        p.iter().any(
            |e| matches!(e, SifError::TableOverlapsData { table_end, data_start, .. }
            if *table_end == data_off as u64 && *data_start == data_off as u64 - 100)
        ),
        "{p:?}"
    );
}

#[test]
fn data_section_problems() {
    let mut b = base();
    let len = b.len() as i64;
    put(&mut b, H_DATASIZE, len);
    let p = problems(&b);
    assert!(
        matches!(p[0], SifError::DataSectionOutOfFile { file_len, .. } if file_len == len as u64),
        "{p:?}"
    );
    let mut b = base();
    put(&mut b, H_DATAOFF, -1);
    assert!(matches!(
        problems(&b)[0],
        SifError::BadHeaderField {
            field: "data_offset",
            value: -1,
            ..
        }
    ));
    let mut b = base();
    put(&mut b, H_DATASIZE, i64::MIN);
    assert!(matches!(
        problems(&b)[0],
        SifError::BadHeaderField {
            field: "data_size",
            ..
        }
    ));
    let mut b = base();
    put(&mut b, H_DATAOFF, 0);
    put(&mut b, H_DATASIZE, 10);
    assert!(problems(&b).iter().any(|e| matches!(e, SifError::BadHeaderField { field: "data_offset", reason, .. } if reason.contains("global header"))));
}

#[test]
fn object_offsets_and_sizes() {
    // Negative offset.
    let mut b = base();
    put(&mut b, dfield(1, D_OFF), -5);
    let p = problems(&b);
    assert!(
        matches!(
            p[0],
            SifError::BadDescriptorField {
                id: 2,
                index: 1,
                field: "offset",
                value: -5,
                ..
            }
        ),
        "{p:?}"
    );
    let mut sif = open(&b).unwrap();
    assert!(matches!(
        sif.object_reader(2),
        Err(SifError::BadDescriptorField { id: 2, .. })
    ));
    assert!(matches!(
        sif.labels(),
        Err(SifError::BadDescriptorField { id: 2, .. })
    ));

    // 2^62 size: reported, and never allocated.
    let mut b = base();
    put(&mut b, dfield(0, D_SIZE), 1 << 62);
    put(&mut b, dfield(0, D_SWP), 1 << 62);
    let p = problems(&b);
    assert!(
        matches!(p[0], SifError::ObjectOutOfFile { id: 1, .. }),
        "{p:?}"
    );
    let mut sif = open(&b).unwrap();
    assert!(matches!(
        sif.read_object_limited(1, u64::MAX),
        Err(SifError::ObjectOutOfFile { id: 1, .. })
    ));
    assert!(matches!(
        sif.definition_file(),
        Err(SifError::ObjectOutOfFile { id: 1, .. })
    ));

    // offset + size near the top of the range.
    let mut b = base();
    put(&mut b, dfield(0, D_OFF), i64::MAX);
    put(&mut b, dfield(0, D_SIZE), i64::MAX);
    put(&mut b, dfield(0, D_SWP), i64::MAX);
    let p = problems(&b);
    assert!(
        matches!(p[0], SifError::ObjectOutOfFile { id: 1, offset, .. } if offset == i64::MAX as u64),
        "{p:?}"
    );

    // Negative size.
    let mut b = base();
    put(&mut b, dfield(2, D_SIZE), -1);
    assert!(matches!(
        problems(&b)[0],
        SifError::BadDescriptorField {
            id: 3,
            field: "size",
            value: -1,
            ..
        }
    ));

    // Padding smaller than size.
    let mut b = base();
    put(&mut b, dfield(2, D_SWP), 1);
    assert!(matches!(
        problems(&b)[0],
        SifError::BadPadding {
            id: 3,
            size_with_padding: 1,
            ..
        }
    ));

    // Id 0.
    let mut b = base();
    b[dfield(1, D_ID)..dfield(1, D_ID) + 4].copy_from_slice(&0u32.to_le_bytes());
    assert!(problems(&b).iter().any(|e| matches!(
        e,
        SifError::BadDescriptorField {
            id: 0,
            field: "id",
            ..
        }
    )));
}

#[test]
fn object_outside_data_section() {
    // Point object 1 into the descriptor table: inside the file, outside data.
    let mut b = base();
    put(&mut b, dfield(0, D_OFF), 200);
    let p = problems(&b);
    assert!(
        p.iter().any(|e| matches!(
            e,
            SifError::ObjectOutsideData {
                id: 1,
                offset: 200,
                ..
            }
        )),
        "{p:?}"
    );
    // Shrink the data section so the last object falls past its end.
    let mut b = base();
    let ds = get(&b, H_DATASIZE);
    put(&mut b, H_DATASIZE, ds - 1);
    let p = problems(&b);
    assert!(
        matches!(p[0], SifError::ObjectOutsideData { id: 4, .. }),
        "{p:?}"
    );
}

#[test]
fn overlapping_objects() {
    let mut b = base();
    let off2 = get(&b, dfield(1, D_OFF));
    put(&mut b, dfield(1, D_OFF), off2 - 3);
    let p = problems(&b);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        matches!(
            p[0],
            SifError::ObjectsOverlap {
                first: 1,
                second: 2,
                ..
            }
        ),
        "{p:?}"
    );
    // Containment (object 4 inside object 3) is an overlap too.
    let mut b = base();
    let off3 = get(&b, dfield(2, D_OFF));
    put(&mut b, dfield(3, D_OFF), off3 + 1);
    let p = problems(&b);
    assert!(
        matches!(
            p[0],
            SifError::ObjectsOverlap {
                first: 3,
                second: 4,
                ..
            }
        ),
        "{p:?}"
    );
}

#[test]
fn used_count_duplicates_links_primaries() {
    let mut b = base();
    put(&mut b, H_FREE, 1);
    assert!(matches!(
        problems(&b)[0],
        SifError::UsedCountMismatch {
            declared: 3,
            found: 4,
            ..
        }
    ));
    let mut b = base();
    put(&mut b, H_FREE, 5);
    assert!(matches!(
        problems(&b)[0],
        SifError::BadHeaderField {
            field: "descriptors_free",
            ..
        }
    ));

    let mut b = base();
    b[dfield(1, D_ID)..dfield(1, D_ID) + 4].copy_from_slice(&1u32.to_le_bytes());
    let p = problems(&b);
    assert!(
        matches!(
            p[0],
            SifError::DuplicateId {
                id: 1,
                first_index: 0,
                second_index: 1
            }
        ),
        "{p:?}"
    );

    let mut b = base();
    b[dfield(3, D_LINK)..dfield(3, D_LINK) + 4].copy_from_slice(&9u32.to_le_bytes());
    assert!(matches!(
        problems(&b)[0],
        SifError::DanglingLink {
            id: 4,
            target: 9,
            is_group: false
        }
    ));
    let mut b = base();
    b[dfield(3, D_LINK)..dfield(3, D_LINK) + 4].copy_from_slice(&0xf000_0007u32.to_le_bytes());
    assert!(matches!(
        problems(&b)[0],
        SifError::DanglingLink {
            id: 4,
            target: 7,
            is_group: true
        }
    ));
    // A link to group 1 exists.
    let mut b = base();
    b[dfield(3, D_LINK)..dfield(3, D_LINK) + 4].copy_from_slice(&0xf000_0001u32.to_le_bytes());
    assert!(problems(&b).is_empty());

    // Make the signature a second primary partition.
    let mut b = base();
    let e = dfield(3, D_EXTRA);
    b[dfield(3, 0)..dfield(3, 0) + 4].copy_from_slice(&0x4004i32.to_le_bytes());
    b[e..e + 4].copy_from_slice(&1i32.to_le_bytes());
    b[e + 4..e + 8].copy_from_slice(&2i32.to_le_bytes());
    let p = problems(&b);
    assert!(
        matches!(
            p[0],
            SifError::MultiplePrimaryPartitions {
                first: 3,
                second: 4
            }
        ),
        "{p:?}"
    );
}

#[test]
fn truncation_at_each_boundary() {
    let b = base();
    let table_end = TABLE + 4 * DESC;
    let data_off = get(&b, H_DATAOFF) as usize;
    assert_eq!(table_end, data_off);
    for cut in 0..b.len() {
        let r = open(&b[..cut]);
        match r {
            Err(SifError::Truncated {
                what: "global header",
                ..
            }) => assert!(cut < 128),
            Err(SifError::Truncated {
                what: "descriptor table",
                ..
            }) => {
                assert!((128..table_end).contains(&cut))
            }
            Err(e) => panic!("cut {cut}: unexpected {e}"),
            Ok(sif) => {
                assert!(cut >= table_end, "cut {cut} opened");
                let p = sif.problems();
                assert!(
                    matches!(p[0], SifError::DataSectionOutOfFile { file_len, .. } if file_len == cut as u64),
                    "cut {cut}: {p:?}"
                );
                assert!(
                    p.iter()
                        .any(|e| matches!(e, SifError::ObjectOutOfFile { .. }))
                );
            }
        }
    }
    // Cut in the middle of object 2's bytes: object 1 still reads, object 2 does not.
    let off2 = get(&b, dfield(1, D_OFF)) as usize;
    let mut sif = open(&b[..off2 + 2]).unwrap();
    assert!(sif.read_object_limited(1, 100).is_ok());
    assert!(matches!(
        sif.object_reader(2),
        Err(SifError::ObjectOutOfFile { id: 2, .. })
    ));
    assert!(sif.verify().is_err());
    open(&b).unwrap().verify().unwrap();
}

#[test]
fn content_and_limit_errors() {
    let mut b = base();
    let off = get(&b, dfield(0, D_OFF)) as usize;
    b[off] = 0xff;
    let off2 = get(&b, dfield(1, D_OFF)) as usize;
    b[off2] = b'[';
    let mut sif = open(&b).unwrap();
    assert!(matches!(
        sif.definition_file(),
        Err(SifError::BadContent {
            id: 1,
            expected: "UTF-8",
            ..
        })
    ));
    assert!(matches!(
        sif.labels(),
        Err(SifError::BadContent {
            id: 2,
            expected: "JSON",
            ..
        })
    ));
    assert!(matches!(
        sif.read_object_limited(3, 4),
        Err(SifError::ObjectTooLarge {
            id: 3,
            limit: 4,
            ..
        })
    ));
    assert!(matches!(
        sif.object_reader(77),
        Err(SifError::ObjectNotFound { id: 77 })
    ));
}

#[test]
fn object_reader_is_bounded() {
    let b = base();
    let mut sif = open(&b).unwrap();
    let mut r = sif.object_reader(2).unwrap();
    assert_eq!(r.len(), 9);
    let mut s = String::new();
    r.read_to_string(&mut s).unwrap();
    assert_eq!(s, r#"{"k":"v"}"#);
    assert_eq!(r.seek(SeekFrom::End(-3)).unwrap(), 6);
    let mut t = Vec::new();
    r.read_to_end(&mut t).unwrap();
    assert_eq!(t, br#"v"}"#.to_vec());
    assert!(r.seek(SeekFrom::Current(-100)).is_err());
    r.seek(SeekFrom::Start(1000)).unwrap();
    assert_eq!(r.read(&mut [0u8; 4]).unwrap(), 0);
}

/// Every file in tests/data: fuzz crashes and handmade inputs. None may
/// panic; the expectation is encoded in the file name prefix.
#[test]
fn regression_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let (mut valid, mut noopen, mut invalid) = (0, 0, 0);
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let out = fuzz::read_all(&data);
        if name.starts_with("valid_") {
            assert!(out.opened && out.problems == 0, "{name}: {out:?}");
            valid += 1;
        } else if name.starts_with("noopen_") {
            assert!(!out.opened, "{name}: {out:?}");
            noopen += 1;
        } else if name.starts_with("invalid_") {
            assert!(!out.opened || out.problems > 0, "{name}: {out:?}");
            invalid += 1;
        } else {
            panic!("{name}: name it valid_*, noopen_* or invalid_* to say what it expects");
        }
    }
    // Every kind of expectation is exercised (a missing fixture folder or an
    // ignore rule that drops *.sif files fails here).
    assert!(
        valid > 0 && noopen > 0 && invalid > 0,
        "regression inputs in {}: {valid} valid, {noopen} noopen, {invalid} invalid",
        dir.display()
    );
}
