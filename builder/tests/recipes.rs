//! `sreg recipes` on real trees and git repositories.

use std::path::Path;
use std::process::{Command, Output};

fn sreg(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sreg"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run sreg")
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.org"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git");
    assert!(out.status.success(), "git {args:?}: {out:?}");
}

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// A recipe repository as people lay them out: one at the root, variants in
/// folders, a `%files` source beside its recipe, and things that are not recipes.
fn repo() -> tempfile::TempDir {
    let t = tempfile::Builder::new()
        .prefix("sreg-recipes")
        .tempdir()
        .unwrap();
    let r = t.path().join("tools");
    write(
        &r,
        "Singularity",
        "Bootstrap: docker\nFrom: ubuntu:22.04\n\n%files\n    app.py /opt/app.py\n",
    );
    write(&r, "app.py", "print('hi')\n");
    write(
        &r,
        "envs/Singularity.gpu",
        "Bootstrap: docker\nFrom: nvidia/cuda:12.4.0-base-ubuntu22.04\n",
    );
    write(
        &r,
        "bio/blast/Singularity.v2.14.0",
        "Bootstrap: library\nFrom: alpine:3.20\n",
    );
    write(
        &r,
        "samtools.def",
        "Bootstrap: oras\nFrom: ghcr.io/x/samtools:1.19\n",
    );
    write(&r, "Singularity.md", "# not a recipe\n");
    write(&r, "old.sif", "not a recipe either");
    git(&r, &["init", "-q", "-b", "main"]);
    git(&r, &["add", "-A"]);
    git(&r, &["commit", "-qm", "first"]);
    t
}

#[test]
fn lists_every_recipe_with_name_tag_agent_and_base() {
    let t = repo();
    let r = t.path().join("tools");
    let out = sreg(&r, &["recipes", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let v = json(&out);
    assert_eq!(v["schema"], "sreg.recipes/v1");
    let mut rows: Vec<String> = v["recipes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} {}:{} {} {}",
                r["path"].as_str().unwrap(),
                r["name"].as_str().unwrap(),
                r["tag"].as_str().unwrap(),
                r["bootstrap"].as_str().unwrap(),
                r["from"].as_str().unwrap()
            )
        })
        .collect();
    rows.sort();
    assert_eq!(
        rows,
        [
            "Singularity tools:latest docker ubuntu:22.04",
            "bio/blast/Singularity.v2.14.0 blast:v2.14.0 library alpine:3.20",
            "envs/Singularity.gpu envs:gpu docker nvidia/cuda:12.4.0-base-ubuntu22.04",
            "samtools.def tools:samtools oras ghcr.io/x/samtools:1.19",
        ]
    );

    // The table says the same, for people.
    let out = sreg(&r, &["recipes", "."]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("PATH"), "{text}");
    assert!(
        text.contains("bio/blast") && text.contains("v2.14.0"),
        "{text}"
    );
    assert!(!text.contains("Singularity.md"), "{text}");

    // --name renames the root's recipes; --include narrows what is a recipe.
    let v = json(&sreg(
        &r,
        &[
            "recipes",
            "--json",
            "--name",
            "mytools",
            "--include",
            "Singularity",
        ],
    ));
    let names: Vec<&str> = v["recipes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["mytools"]);
}

#[test]
fn changed_since_lists_what_to_rebuild_and_why() {
    let t = repo();
    let r = t.path().join("tools");
    write(&r, "app.py", "print('changed')\n");
    write(
        &r,
        "envs/Singularity.gpu",
        "Bootstrap: docker\nFrom: nvidia/cuda:12.6.0-base-ubuntu22.04\n",
    );
    std::fs::remove_file(r.join("samtools.def")).unwrap();
    git(&r, &["commit", "-qam", "second"]);

    let out = sreg(&r, &["recipes", "--changed-since", "HEAD~1", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let v = json(&out);
    assert_eq!(v["schema"], "sreg.recipes.changes/v1");
    let rebuild: Vec<(String, String)> = v["rebuild"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["path"].as_str().unwrap().into(),
                c["reasons"][0]["kind"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        rebuild,
        [
            ("Singularity".to_string(), "files_changed".to_string()),
            ("envs/Singularity.gpu".to_string(), "modified".to_string()),
        ]
    );
    assert_eq!(v["deleted"][0]["path"], "samtools.def");

    let out = sreg(&r, &["recipes", "--changed-since", "HEAD~1"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("%files source app.py changed"), "{text}");
    assert!(
        text.contains("deleted: samtools.def (tools:samtools)"),
        "{text}"
    );

    // Nothing changed since HEAD: an empty list, and success.
    let v = json(&sreg(&r, &["recipes", "--changed-since", "HEAD", "--json"]));
    assert_eq!(v["rebuild"], serde_json::json!([]));
}

#[test]
fn broken_recipes_conflicts_and_bad_revisions_fail_after_printing() {
    let t = repo();
    let r = t.path().join("tools");
    write(&r, "broken/Singularity", "From: alpine\n");
    write(&r, "tools.def", "Bootstrap: docker\nFrom: alpine\n");
    write(&r, "Singularity.tools", "Bootstrap: docker\nFrom: alpine\n");

    let out = sreg(&r, &["recipes", "--json"]);
    assert!(!out.status.success());
    let v = json(&out);
    let broken = v["recipes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["path"] == "broken/Singularity")
        .unwrap();
    assert_eq!(broken["error"]["kind"], "parse");
    assert_eq!(broken["error"]["line"], 1);
    assert_eq!(v["conflicts"][0]["tag"], "tools");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken/Singularity: line 1"), "{err}");
    assert!(err.contains("would all push tools:tools"), "{err}");

    let out = sreg(&r, &["recipes", "--changed-since", "no-such-rev"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("since no-such-rev"), "{err}");

    let out = sreg(t.path(), &["recipes", "does-not-exist"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does-not-exist"));
}

#[test]
fn ci_formats_list_recipe_and_image_and_fall_back_to_all() {
    let t = repo();
    let r = t.path().join("tools");
    write(
        &r,
        "frozen/Singularity",
        "Bootstrap: docker\nFrom: alpine\n",
    );
    write(&r, "frozen/.frozen", "");
    git(&r, &["add", "-A"]);
    git(&r, &["commit", "-qm", "frozen"]);
    write(
        &r,
        "envs/Singularity.gpu",
        "Bootstrap: docker\nFrom: nvidia/cuda:12.6.0-base-ubuntu22.04\n",
    );
    git(&r, &["commit", "-qam", "gpu"]);

    let out = sreg(
        &r,
        &[
            "recipes",
            "--changed-since",
            "HEAD~1",
            "--format",
            "matrix",
            "--collection",
            "lab",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 1, "one line for a CI output: {text}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&text).unwrap(),
        serde_json::json!([{"recipe": "envs/Singularity.gpu", "image": "lab/envs:gpu"}])
    );

    // No base: every recipe, frozen ones left out.
    let all = |args: &[&str]| {
        let out = sreg(&r, args);
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let every = "Singularity\tlab/tools:latest\n\
                 bio/blast/Singularity.v2.14.0\tlab/blast:v2.14.0\n\
                 envs/Singularity.gpu\tlab/envs:gpu\n\
                 samtools.def\tlab/tools:samtools\n";
    let tsv = ["--format", "tsv", "--collection", "lab"];
    assert_eq!(
        all(&[&["recipes", "--changed-since", ""][..], &tsv].concat()),
        every
    );
    // A base a force-push removed: every recipe with --fallback-all, an error without.
    let gone = "0123456789abcdef0123456789abcdef01234567";
    let out = sreg(
        &r,
        &[&["recipes", "--changed-since", gone][..], &tsv].concat(),
    );
    assert!(!out.status.success());
    let with_fallback = [
        &["recipes", "--changed-since", gone, "--fallback-all"][..],
        &tsv,
    ]
    .concat();
    let out = sreg(&r, &with_fallback);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8(out.stdout).unwrap(), every);
    assert!(String::from_utf8_lossy(&out.stderr).contains("listing every recipe"));

    // The collection comes from SREG_COLLECTION too, and is required.
    let out = sreg(&r, &["recipes", "--format", "tsv"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--collection"));
}
