//! Discovery on real directory trees: which files are recipes, their names
//! and tags, conflicts, rejections, frozen markers, options.

use std::fs;
use std::path::Path;

use sreg_recipe::{DiscoverOptions, RecipeError, discover};

const OK: &str = "Bootstrap: docker\nFrom: alpine:3.20\n";

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    fs::write(p, text).expect("write");
}

fn listing(root: &Path, opts: &DiscoverOptions) -> Vec<String> {
    let d = discover(root, opts).expect("discover");
    d.recipes
        .iter()
        .map(|r| format!("{} {}:{}", r.path, r.name, r.tag))
        .collect()
}

fn opts(root_name: &str) -> DiscoverOptions {
    DiscoverOptions {
        root_name: Some(root_name.to_owned()),
        ..DiscoverOptions::default()
    }
}

#[test]
fn finds_and_names_recipes() {
    let t = tempfile::tempdir().expect("tempdir");
    let r = t.path();
    for f in [
        "Singularity",
        "Singularity.v1.0",
        "envs/Singularity.gpu",
        "envs/Apptainer",
        "tools/samtools.def",
        "bio/blast/Singularity.2.14",
        "Apptainer.def",
        // Not recipes:
        "Singularity.md",
        "README.md",
        "img.sif",
        "old.simg",
        "envs/Singularity.gpu.frozen",
        "scripts/build.sh",
        ".git/Singularity",
        ".hidden/Singularity",
        "sub/.Singularity",
        "Singularity.sh",
        "notes.txt",
    ] {
        write(r, f, OK);
    }
    let d = discover(r, &opts("repo")).expect("discover");
    let got: Vec<String> = d
        .recipes
        .iter()
        .map(|r| format!("{} {}:{} frozen={}", r.path, r.name, r.tag, r.frozen))
        .collect();
    assert_eq!(
        got,
        vec![
            "Apptainer.def repo:latest frozen=false",
            "Singularity repo:latest frozen=false",
            "Singularity.v1.0 repo:v1.0 frozen=false",
            "bio/blast/Singularity.2.14 blast:2.14 frozen=false",
            "envs/Apptainer envs:latest frozen=false",
            "envs/Singularity.gpu envs:gpu frozen=true",
            "tools/samtools.def tools:samtools frozen=false",
        ]
    );
    assert_eq!(d.recipes[3].collection.as_deref(), Some("bio"));
    // `Singularity` and `Apptainer.def` at the root are both repo:latest.
    assert_eq!(d.conflicts.len(), 1);
    assert_eq!(d.conflicts[0].paths, vec!["Apptainer.def", "Singularity"]);
    assert!(
        d.recipes
            .iter()
            .all(|r| r.bootstrap.as_deref() == Some("docker"))
    );
    assert!(
        d.recipes
            .iter()
            .all(|r| r.from.as_deref() == Some("alpine:3.20"))
    );
    assert!(d.rejected.is_empty());
}

#[test]
fn root_name_defaults_to_the_directory_name() {
    let t = tempfile::tempdir().expect("tempdir");
    let root = t.path().join("My_Recipes");
    write(&root, "Singularity", OK);
    assert_eq!(
        listing(&root, &DiscoverOptions::default()),
        vec!["Singularity my_recipes:latest"]
    );
}

#[test]
fn parse_errors_and_bad_names_are_reported() {
    let t = tempfile::tempdir().expect("tempdir");
    let r = t.path();
    write(r, "bad/Singularity", "From: alpine\n");
    write(r, "x/Singularity.", OK);
    write(r, "x/Singularity.%%%", OK);
    fs::write(r.join("x/bin.def"), [0xff, 0xfe, 0x00]).expect("write");
    let d = discover(r, &opts("r")).expect("discover");
    let bad = d
        .recipes
        .iter()
        .find(|x| x.path == "bad/Singularity")
        .expect("bad");
    match &bad.error {
        Some(RecipeError::Parse(e)) => assert_eq!(e.line, 1),
        other => panic!("{other:?}"),
    }
    assert!(bad.bootstrap.is_none());
    let bin = d
        .recipes
        .iter()
        .find(|x| x.path == "x/bin.def")
        .expect("bin");
    assert_eq!(bin.error, Some(RecipeError::NotUtf8));
    let rejected: Vec<&str> = d.rejected.iter().map(|x| x.path.as_str()).collect();
    assert_eq!(rejected, vec!["x/Singularity.", "x/Singularity.%%%"]);
    assert!(d.rejected[0].reason.contains("tag"));
}

#[test]
fn include_exclude_and_hidden_options() {
    let t = tempfile::tempdir().expect("tempdir");
    let r = t.path();
    write(r, "a/Singularity", OK);
    write(r, "vendor/b/Singularity", OK);
    write(r, "recipes/c.recipe", OK);
    write(r, ".ci/Singularity", OK);
    let mut o = opts("r");
    o.include.push("recipes/*.recipe".to_owned());
    o.exclude.push("vendor".to_owned());
    assert_eq!(
        listing(r, &o),
        vec!["a/Singularity a:latest", "recipes/c.recipe recipes:c"]
    );
    o.hidden = true;
    assert_eq!(listing(r, &o).len(), 3);
    let only = DiscoverOptions {
        include: vec!["*.recipe".to_owned()],
        ..opts("r")
    };
    assert_eq!(listing(r, &only), vec!["recipes/c.recipe recipes:c"]);
}

#[test]
fn invalid_glob_is_an_error() {
    let t = tempfile::tempdir().expect("tempdir");
    let o = DiscoverOptions {
        include: vec!["[".to_owned()],
        ..opts("r")
    };
    let err = discover(t.path(), &o).expect_err("bad glob");
    assert!(err.to_string().starts_with("invalid glob `[`"));
}

#[test]
fn missing_root_is_an_error() {
    let t = tempfile::tempdir().expect("tempdir");
    assert!(discover(&t.path().join("nope"), &DiscoverOptions::default()).is_err());
}

#[test]
fn too_large_files_are_not_parsed() {
    let t = tempfile::tempdir().expect("tempdir");
    write(
        t.path(),
        "Singularity",
        &format!("{OK}%post\n{}", "  echo\n".repeat(100)),
    );
    let o = DiscoverOptions {
        max_file_size: 64,
        ..opts("r")
    };
    let d = discover(t.path(), &o).expect("discover");
    assert!(matches!(
        d.recipes[0].error,
        Some(RecipeError::TooLarge { .. })
    ));
}

#[test]
fn json_field_names_are_stable() {
    let t = tempfile::tempdir().expect("tempdir");
    write(t.path(), "envs/Singularity.gpu", OK);
    let d = discover(t.path(), &opts("r")).expect("discover");
    let v = serde_json::to_value(&d.recipes[0]).expect("json");
    let keys: Vec<&String> = v.as_object().expect("object").keys().collect();
    assert_eq!(
        keys,
        // serde_json's map is sorted by key.
        vec![
            "bootstrap",
            "collection",
            "error",
            "from",
            "frozen",
            "name",
            "path",
            "tag"
        ]
    );
}

#[test]
fn parse_errors_serialize_with_one_kind_and_a_message() {
    let t = tempfile::tempdir().expect("tempdir");
    write(t.path(), "bad.def", "Bootstrap: nope\n");
    let d = discover(t.path(), &opts("r")).expect("discover");
    let text = serde_json::to_string(&d.recipes[0].error).expect("json");
    // A duplicated key would be invalid JSON for many readers: count them in the text.
    assert_eq!(text.matches("\"kind\":\"parse\"").count(), 1, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).expect("parse back");
    assert_eq!(v["line"], 1);
    assert_eq!(v["column"], 12);
    assert_eq!(v["error"]["kind"], "unknown_agent");
    let message = v["message"].as_str().expect("message");
    assert!(
        message.starts_with("line 1, column 12: unknown bootstrap agent `nope`"),
        "{message}"
    );
}
