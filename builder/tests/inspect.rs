//! `sreg inspect` against SIF files written by Debian's `siftool`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn sreg(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sreg"))
        .args(args)
        .output()
        .expect("run sreg")
}

fn siftool(args: &[&str]) -> String {
    let out = Command::new("siftool")
        .args(args)
        .output()
        .expect("siftool is missing: run scripts/setup");
    assert!(out.status.success(), "siftool {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// A SIF with a definition file, labels, a generic object, a signature and
/// a squashfs partition, written by siftool.
fn reference_sif(dir: &Path) -> PathBuf {
    let def = "Bootstrap: docker\nFrom: alpine:3.20\n\n%post\n    apk add curl\n";
    std::fs::write(dir.join("recipe.def"), def).unwrap();
    std::fs::write(
        dir.join("labels.json"),
        r#"{"org.label-schema.build-arch":"amd64","Maintainer":"Ada <ada@example.org>"}"#,
    )
    .unwrap();
    std::fs::write(dir.join("notes.txt"), "free text").unwrap();
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/hostname"), "sreg\n").unwrap();
    let squash = dir.join("root.squashfs");
    let st = Command::new("mksquashfs")
        .arg(&root)
        .arg(&squash)
        .args(["-noappend", "-quiet", "-all-root"])
        .status()
        .expect("mksquashfs is missing: run scripts/setup");
    assert!(st.success());

    let sif = dir.join("x.sif");
    let s = sif.to_str().unwrap();
    let p = |name: &str| dir.join(name).to_str().unwrap().to_string();
    siftool(&["new", s]);
    siftool(&["add", s, &p("recipe.def"), "--datatype", "1"]);
    siftool(&["add", s, &p("labels.json"), "--datatype", "3"]);
    siftool(&["add", s, &p("notes.txt"), "--datatype", "7"]);
    siftool(&[
        "add",
        s,
        &p("notes.txt"),
        "--datatype",
        "5",
        "--signhash",
        "1",
        "--signentity",
        "433FE984155206BD962725E20E8713472A879943",
    ]);
    siftool(&[
        "add",
        s,
        &p("root.squashfs"),
        "--datatype",
        "4",
        "--parttype",
        "2",
        "--partfs",
        "1",
        "--partarch",
        "2",
    ]);
    sif
}

#[test]
fn json_agrees_with_siftool_object_by_object() {
    let dir = tempfile::tempdir().unwrap();
    let sif = reference_sif(dir.path());
    let out = sreg(&["inspect", "--json", sif.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    assert_eq!(v["schema"], "sreg.inspect/v1");
    assert_eq!(v["file_size"], std::fs::metadata(&sif).unwrap().len());
    assert_eq!(v["problems"], serde_json::json!([]));
    assert_eq!(v["labels"]["Maintainer"], "Ada <ada@example.org>");
    assert!(
        v["definition_file"]
            .as_str()
            .unwrap()
            .contains("From: alpine:3.20")
    );

    let header = siftool(&["header", sif.to_str().unwrap()]);
    assert!(
        header.contains(v["header"]["id"].as_str().unwrap()),
        "{header}"
    );
    assert_eq!(v["header"]["arch"], "amd64");

    // `siftool list`: ID |GROUP |LINK |SIF POSITION (start-end) |TYPE
    let list = siftool(&["list", sif.to_str().unwrap()]);
    let rows: Vec<Vec<String>> = list
        .lines()
        .filter(|l| l.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .map(|l| l.split('|').map(|c| c.trim().to_string()).collect())
        .collect();
    let objects = v["objects"].as_array().unwrap();
    assert_eq!(rows.len(), objects.len(), "{list}");
    assert_eq!(objects.len(), 5);
    for (row, obj) in rows.iter().zip(objects) {
        assert_eq!(row[0], obj["id"].to_string());
        let (start, end) = row[3].split_once('-').unwrap();
        let offset = obj["offset"].as_i64().unwrap();
        assert_eq!(start.parse::<i64>().unwrap(), offset);
        assert_eq!(
            end.parse::<i64>().unwrap(),
            offset + obj["size"].as_i64().unwrap()
        );
    }
    let kinds: Vec<&str> = objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["deffile", "labels", "generic", "signature", "partition"]
    );
    let sig = &objects[3]["signature"];
    assert_eq!(sig["hash_type"], "sha256", "{sig}");
    assert_eq!(
        sig["fingerprint"], "433FE984155206BD962725E20E8713472A879943",
        "{sig}"
    );
    let part = &objects[4]["partition"];
    assert_eq!(
        (
            part["fs_type"].as_str(),
            part["part_type"].as_str(),
            part["arch"].as_str()
        ),
        (Some("squashfs"), Some("primary-system"), Some("amd64")),
        "{part}"
    );
    assert!(rows[4][4].contains("Squashfs/*System/amd64"));
}

#[test]
fn text_shows_objects_labels_and_definition() {
    let dir = tempfile::tempdir().unwrap();
    let sif = reference_sif(dir.path());
    let out = sreg(&["inspect", sif.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "Arch:        amd64",
        "squashfs primary-system amd64",
        "Maintainer: Ada <ada@example.org>",
        "  From: alpine:3.20",
        "deffile",
        "generic",
        "hash sha256, entity 433FE984155206BD962725E20E8713472A879943",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
}

#[test]
fn not_a_sif_or_truncated_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let sif = reference_sif(dir.path());
    let bytes = std::fs::read(&sif).unwrap();

    let text = dir.path().join("text.sif");
    std::fs::write(&text, "Bootstrap: docker\n").unwrap();
    let out = sreg(&["inspect", text.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not a readable SIF file"), "{err}");

    let cut = dir.path().join("cut.sif");
    std::fs::write(&cut, &bytes[..1000]).unwrap();
    let out = sreg(&["inspect", cut.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("too short"),
        "{out:?}"
    );

    let missing = sreg(&["inspect", "/nonexistent.sif"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent.sif"));
}

#[test]
fn a_sif_cut_inside_its_partition_is_reported_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let sif = reference_sif(dir.path());
    let bytes = std::fs::read(&sif).unwrap();
    // Header and descriptors survive; the partition's tail is gone.
    let cut = dir.path().join("cut.sif");
    std::fs::write(&cut, &bytes[..bytes.len() - 100]).unwrap();
    let out = sreg(&["inspect", "--json", cut.to_str().unwrap()]);
    assert!(!out.status.success(), "a damaged image must not pass");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let problems = v["problems"].as_array().unwrap();
    assert!(!problems.is_empty());
    assert!(
        problems
            .iter()
            .any(|p| p.as_str().unwrap().contains("object 5")),
        "problems name the object: {problems:?}"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("structural problem"), "{err}");
}
