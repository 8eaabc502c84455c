//! Helpers shared by the integration tests: running siftool and parsing
//! its text output, and making small squashfs images.
#![allow(dead_code)]

use sreg_sif::{DataType, Descriptor, FormatType, FsType, HashType, Link, MessageType, PartType};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Path to siftool; panics (never skips) when it is missing.
pub fn siftool_path() -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join("siftool");
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "siftool is not installed: run scripts/setup (it installs Debian's siftool) before running the sreg-sif interop tests"
    );
}

/// Runs siftool with `args`, in UTC so printed times are predictable.
pub fn siftool(args: &[&str]) -> Vec<u8> {
    let out = Command::new(siftool_path())
        .args(args)
        .env("TZ", "UTC")
        .output()
        .expect("running siftool");
    assert!(
        out.status.success(),
        "siftool {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

pub fn siftool_text(args: &[&str]) -> String {
    String::from_utf8(siftool(args)).expect("siftool output is UTF-8")
}

/// Parses "  Key:   value" lines into a map.
pub fn parse_kv(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| {
            let v = v.split_whitespace().collect::<Vec<_>>().join(" ");
            (k.trim().to_string(), v)
        })
        .collect()
}

/// One row of `siftool list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListRow {
    pub id: String,
    pub group: String,
    pub link: String,
    pub position: String,
    pub kind: String,
}

pub fn parse_list(text: &str) -> Vec<ListRow> {
    text.lines()
        .filter(|l| l.contains('|') && !l.starts_with("ID"))
        .map(|l| {
            // siftool pads inside cells ("1   (G)"): compare with single spaces.
            let cols: Vec<String> = l
                .split('|')
                .map(|c| c.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect();
            assert_eq!(cols.len(), 5, "unexpected list row {l:?}");
            ListRow {
                id: cols[0].clone(),
                group: cols[1].clone(),
                link: cols[2].clone(),
                position: cols[3].clone(),
                kind: cols[4].clone(),
            }
        })
        .collect()
}

/// Formats Unix seconds as Go's `time.Time.String()` in UTC.
pub fn go_time(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // Civil-from-days (proleptic Gregorian), days since 1970-01-01.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} +0000 UTC",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// siftool's names for data types.
pub fn go_data_type(t: DataType) -> &'static str {
    match t {
        DataType::Deffile => "Def.FILE",
        DataType::EnvVar => "Env.Vars",
        DataType::Labels => "JSON.Labels",
        DataType::Partition => "FS",
        DataType::Signature => "Signature",
        DataType::GenericJson => "JSON.Generic",
        DataType::Generic => "Generic/Raw",
        DataType::CryptoMessage => "Cryptographic Message",
        DataType::Sbom => "SBOM",
        _ => "Unknown",
    }
}

pub fn go_fs(t: FsType) -> &'static str {
    match t {
        FsType::Squashfs => "Squashfs",
        FsType::Ext3 => "Ext3",
        FsType::ImmutableArchive => "Archive",
        FsType::Raw => "Raw",
        FsType::EncryptedSquashfs => "Encrypted squashfs",
        FsType::Unknown(_) => "Unknown",
    }
}

pub fn go_part(t: PartType) -> &'static str {
    match t {
        PartType::System => "System",
        PartType::PrimarySystem => "*System",
        PartType::Data => "Data",
        PartType::Overlay => "Overlay",
        PartType::Unknown(_) => "Unknown",
    }
}

pub fn go_hash(t: HashType) -> &'static str {
    match t {
        HashType::Sha256 => "SHA-256",
        HashType::Sha384 => "SHA-384",
        HashType::Sha512 => "SHA-512",
        HashType::Blake2s => "BLAKE2s-256",
        HashType::Blake2b => "BLAKE2b-256",
        HashType::Unknown(_) => "unknown hash value 0",
    }
}

pub fn go_format(t: FormatType) -> &'static str {
    match t {
        FormatType::OpenPgp => "OpenPGP",
        FormatType::Pem => "PEM",
        FormatType::Unknown(_) => "Unknown",
    }
}

pub fn go_message(t: MessageType) -> &'static str {
    match t {
        MessageType::ClearSignature => "Clear Signature",
        MessageType::RsaOaep => "RSA-OAEP",
        MessageType::Unknown(_) => "Unknown",
    }
}

fn opt_num(v: Option<u32>) -> String {
    v.map_or_else(|| "NONE".to_string(), |n| n.to_string())
}

pub fn go_link(l: Option<Link>) -> String {
    match l {
        None => "NONE".into(),
        Some(Link::Object(id)) => id.to_string(),
        Some(Link::Group(g)) => format!("{g} (G)"),
    }
}

/// The `siftool list` row we expect for a descriptor we parsed.
pub fn expected_row(d: &Descriptor) -> ListRow {
    let mut kind = go_data_type(d.data_type()).to_string();
    if let Some(p) = d.partition() {
        kind = format!(
            "{kind} ({}/{}/{})",
            go_fs(p.fs_type),
            go_part(p.part_type),
            p.arch.name()
        );
    } else if let Some(s) = d.signature() {
        kind = format!("{kind} ({})", go_hash(s.hash_type));
    } else if let Some(m) = d.crypto_message() {
        kind = format!("{kind} ({}/{})", go_format(m.format), go_message(m.message));
    } else if let Some(s) = d.sbom() {
        kind = format!("{kind} ({})", s.format.name());
    }
    ListRow {
        id: d.id().to_string(),
        group: opt_num(d.group_id()),
        link: go_link(d.link()),
        position: format!("{}-{}", d.offset(), d.offset() + d.size()),
        kind,
    }
}

/// Compares `siftool info <id>` output with a descriptor we parsed.
pub fn assert_info_matches(d: &Descriptor, info: &BTreeMap<String, String>) {
    let ctx = format!("object {} info {info:?}", d.id());
    assert_eq!(info["Data Type"], go_data_type(d.data_type()), "{ctx}");
    assert_eq!(info["ID"], d.id().to_string(), "{ctx}");
    assert_eq!(info["Group ID"], opt_num(d.group_id()), "{ctx}");
    assert_eq!(info["Linked ID"], go_link(d.link()), "{ctx}");
    assert_eq!(info["Offset"], d.offset().to_string(), "{ctx}");
    assert_eq!(info["Size"], d.size().to_string(), "{ctx}");
    assert_eq!(info["Created At"], go_time(d.created_at()), "{ctx}");
    assert_eq!(info["Modified At"], go_time(d.modified_at()), "{ctx}");
    if !d.name().is_empty() {
        assert_eq!(
            info.get("Name").cloned().unwrap_or_default(),
            d.name(),
            "{ctx}"
        );
    }
    if let Some(p) = d.partition() {
        assert_eq!(info["Filesystem Type"], go_fs(p.fs_type), "{ctx}");
        assert_eq!(info["Partition Type"], go_part(p.part_type), "{ctx}");
        assert_eq!(info["Architecture"], p.arch.name(), "{ctx}");
    }
    if let Some(s) = d.signature() {
        assert_eq!(info["Hash Type"], go_hash(s.hash_type), "{ctx}");
        assert_eq!(
            info["Entity"],
            s.fingerprint_hex().unwrap_or_default(),
            "{ctx}"
        );
    }
    if let Some(m) = d.crypto_message() {
        assert_eq!(info["Format Type"], go_format(m.format), "{ctx}");
        assert_eq!(info["Message Type"], go_message(m.message), "{ctx}");
    }
    if let Some(s) = d.sbom() {
        assert_eq!(info["Format"], s.format.name(), "{ctx}");
    }
}

/// Makes a small squashfs image with mksquashfs; panics if it is missing.
pub fn make_squashfs(dir: &Path, files: &[(&str, &[u8])]) -> PathBuf {
    let root = dir.join("rootfs");
    std::fs::create_dir_all(&root).unwrap();
    for (name, data) in files {
        std::fs::write(root.join(name), data).unwrap();
    }
    let out = dir.join("rootfs.squashfs");
    let status = Command::new("mksquashfs")
        .arg(&root)
        .arg(&out)
        .args(["-noappend", "-quiet", "-no-progress"])
        .status()
        .expect("mksquashfs is not installed: run scripts/setup");
    assert!(status.success(), "mksquashfs failed");
    out
}
