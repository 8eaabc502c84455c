//! Change detection: the pure "which recipes do these paths affect" logic,
//! and `changed_recipes` against real git repositories made here.

use std::fs;
use std::path::Path;
use std::process::Command;

use sreg_recipe::{
    ChangeStatus, ChangesError, DiscoverOptions, PathChange, Reason, RecipeMatcher, RecipeSources,
    affected_recipes, changed_recipes,
};

fn matcher() -> RecipeMatcher {
    RecipeMatcher::new(&DiscoverOptions::default()).expect("matcher")
}

fn sources(path: &str, srcs: &[&str]) -> RecipeSources {
    RecipeSources {
        path: path.to_owned(),
        sources: srcs.iter().map(|s| (*s).to_owned()).collect(),
    }
}

#[test]
fn pure_recipe_changes() {
    let recipes = [
        sources("a/Singularity", &[]),
        sources("b/Singularity.v2", &[]),
        sources("c/x.def", &[]),
    ];
    let changes = [
        PathChange::new(ChangeStatus::Added, "a/Singularity"),
        PathChange::new(ChangeStatus::Modified, "c/x.def"),
        PathChange::renamed("old/Singularity.v2", "b/Singularity.v2"),
        PathChange::new(ChangeStatus::Deleted, "d/Singularity"),
        PathChange::new(ChangeStatus::Deleted, "d/Singularity.md"),
        PathChange::new(ChangeStatus::Modified, "README.md"),
    ];
    let a = affected_recipes(&recipes, &changes, &matcher());
    assert_eq!(a.rebuild["a/Singularity"], vec![Reason::Added]);
    assert_eq!(a.rebuild["c/x.def"], vec![Reason::Modified]);
    assert_eq!(
        a.rebuild["b/Singularity.v2"],
        vec![Reason::Renamed {
            from: "old/Singularity.v2".into()
        }]
    );
    assert_eq!(a.rebuild.len(), 3);
    // A renamed recipe's old path is gone too: callers see both sides.
    assert_eq!(a.deleted, vec!["d/Singularity", "old/Singularity.v2"]);
}

#[test]
fn pure_rename_to_a_non_recipe_deletes() {
    let changes = [PathChange::renamed("x/Singularity", "x/Singularity.md")];
    let a = affected_recipes(&[], &changes, &matcher());
    assert!(a.rebuild.is_empty());
    assert_eq!(a.deleted, vec!["x/Singularity"]);
}

#[test]
fn pure_files_sources() {
    let recipes = [
        sources(
            "tools/Singularity",
            &["src", "../shared/*.sh", "/etc/hosts", "../../escape"],
        ),
        sources("envs/Singularity.gpu", &["./gpu.yml", "conf/*"]),
        sources("Singularity", &["data/"]),
    ];
    let changes = [
        PathChange::new(ChangeStatus::Modified, "tools/src/deep/a.c"),
        PathChange::new(ChangeStatus::Added, "shared/x.sh"),
        PathChange::new(ChangeStatus::Added, "shared/sub/y.sh"),
        PathChange::new(ChangeStatus::Deleted, "envs/gpu.yml"),
        PathChange::new(ChangeStatus::Modified, "envs/conf/dir/file"),
        PathChange::renamed("data/old.csv", "elsewhere/new.csv"),
        PathChange::new(ChangeStatus::Modified, "tools/srcs/not-it.c"),
        PathChange::new(ChangeStatus::Modified, "etc/hosts"),
    ];
    let a = affected_recipes(&recipes, &changes, &matcher());
    let paths = |p: &str| -> Vec<String> {
        a.rebuild[p]
            .iter()
            .map(|r| match r {
                Reason::FilesChanged { path, .. } => path.clone(),
                other => format!("{other:?}"),
            })
            .collect()
    };
    assert_eq!(
        paths("tools/Singularity"),
        vec!["shared/x.sh", "tools/src/deep/a.c"]
    );
    // Reasons are sorted by source as written.
    assert_eq!(
        paths("envs/Singularity.gpu"),
        vec!["envs/gpu.yml", "envs/conf/dir/file"]
    );
    assert_eq!(paths("Singularity"), vec!["data/old.csv"]);
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.org")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.org")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    fs::write(p, text).expect("write");
}

fn recipe(files: &[&str]) -> String {
    let mut s = String::from("Bootstrap: docker\nFrom: alpine\n");
    if !files.is_empty() {
        s.push_str("\n%files\n");
        for f in files {
            s.push_str(&format!("    {f}\n"));
        }
    }
    s
}

/// A repository with a main branch and a feature branch covering each kind of change.
fn make_repo() -> (tempfile::TempDir, std::path::PathBuf) {
    let t = tempfile::tempdir().expect("tempdir");
    let r = t.path().join("lab");
    fs::create_dir(&r).expect("mkdir");
    git(&r, &["init", "-q"]);
    write(
        &r,
        "envs/Singularity.gpu",
        &recipe(&["gpu.yml /opt/gpu.yml"]),
    );
    write(&r, "envs/gpu.yml", "cuda: 12\n");
    write(
        &r,
        "tools/Singularity",
        &recipe(&["src/ /opt/src", "../shared/*.sh /opt/"]),
    );
    write(&r, "tools/src/a.c", "int main(){}\n");
    write(&r, "shared/x.sh", "echo x\n");
    write(&r, "old/Singularity", &recipe(&[]));
    write(
        &r,
        "gone/Singularity",
        "Bootstrap: docker\nFrom: debian:12\n%post\n    echo gone\n",
    );
    write(&r, "static/Singularity", &recipe(&[]));
    write(
        &r,
        "odd name/Singularity",
        &recipe(&["\"data file.txt\" /data.txt"]),
    );
    write(&r, "odd name/data file.txt", "1\n");
    write(&r, "README.md", "# lab\n");
    git(&r, &["add", "-A"]);
    git(&r, &["commit", "-q", "-m", "one"]);
    git(&r, &["checkout", "-q", "-b", "feature"]);
    git(&r, &["mv", "old", "renamed"]);
    git(&r, &["rm", "-q", "gone/Singularity"]);
    write(&r, "envs/gpu.yml", "cuda: 12.4\n");
    write(
        &r,
        "new/Apptainer",
        "Bootstrap: oras\nFrom: ghcr.io/lab/base:1\n",
    );
    write(&r, "odd name/data file.txt", "2\n");
    write(&r, "README.md", "# lab, changed\n");
    git(&r, &["add", "-A"]);
    git(&r, &["commit", "-q", "-m", "two"]);
    (t, r)
}

fn summary(set: &sreg_recipe::ChangeSet) -> Vec<String> {
    set.rebuild
        .iter()
        .map(|c| {
            let reasons: Vec<String> = c
                .reasons
                .iter()
                .map(|r| match r {
                    Reason::Added => "added".to_owned(),
                    Reason::Modified => "modified".to_owned(),
                    Reason::Renamed { from } => format!("renamed from {from}"),
                    Reason::FilesChanged { source, path } => format!("{path} via {source}"),
                })
                .collect();
            format!(
                "{} {}:{} [{}]",
                c.recipe.path,
                c.recipe.name,
                c.recipe.tag,
                reasons.join("; ")
            )
        })
        .collect()
}

#[test]
fn changes_between_branches() {
    let (_t, r) = make_repo();
    let set = changed_recipes(&r, "main", "feature", &DiscoverOptions::default()).expect("changes");
    assert_eq!(
        summary(&set),
        vec![
            "envs/Singularity.gpu envs:gpu [envs/gpu.yml via gpu.yml]",
            "new/Apptainer new:latest [added]",
            "odd name/Singularity odd-name:latest [odd name/data file.txt via data file.txt]",
            "renamed/Singularity renamed:latest [renamed from old/Singularity]",
        ]
    );
    let deleted: Vec<String> = set
        .deleted
        .iter()
        .map(|d| format!("{} {:?}:{:?} {:?}", d.path, d.name, d.tag, d.replaced_by))
        .collect();
    assert_eq!(
        deleted,
        vec![
            r#"gone/Singularity Some("gone"):Some("latest") None"#,
            r#"old/Singularity Some("old"):Some("latest") None"#,
        ]
    );
    assert_eq!(set.to, git(&r, &["rev-parse", "feature"]));
    assert!(set.conflicts.is_empty());
    assert_eq!(set.rebuild[0].recipe.bootstrap.as_deref(), Some("docker"));
}

#[test]
fn files_source_changes_through_globs_and_directories() {
    let (_t, r) = make_repo();
    write(&r, "tools/src/a.c", "int main(){return 1;}\n");
    write(&r, "shared/x.sh", "echo y\n");
    git(&r, &["commit", "-q", "-am", "three"]);
    let set = changed_recipes(&r, "HEAD~1", "HEAD", &DiscoverOptions::default()).expect("changes");
    assert_eq!(
        summary(&set),
        vec![
            "tools/Singularity tools:latest [shared/x.sh via ../shared/*.sh; tools/src/a.c via src/]"
        ]
    );
    assert!(set.deleted.is_empty());
}

#[test]
fn new_branch_rebuilds_everything_and_subdirectories_work() {
    let (_t, r) = make_repo();
    let zero = "0".repeat(40);
    let set = changed_recipes(
        &r.join("envs"),
        &zero,
        "feature",
        &DiscoverOptions::default(),
    )
    .expect("changes");
    assert!(set.from.is_none());
    let paths: Vec<&str> = set.rebuild.iter().map(|c| c.recipe.path.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "envs/Singularity.gpu",
            "new/Apptainer",
            "odd name/Singularity",
            "renamed/Singularity",
            "static/Singularity",
            "tools/Singularity",
        ]
    );
    assert!(set.rebuild.iter().all(|c| c.reasons == vec![Reason::Added]));
}

#[test]
fn moved_recipe_with_the_same_image_is_replaced_not_gone() {
    let (_t, r) = make_repo();
    git(&r, &["mv", "static/Singularity", "static/Apptainer"]);
    git(&r, &["commit", "-q", "-m", "rename within the directory"]);
    let set = changed_recipes(&r, "HEAD~1", "HEAD", &DiscoverOptions::default()).expect("changes");
    assert_eq!(
        summary(&set),
        vec!["static/Apptainer static:latest [renamed from static/Singularity]"]
    );
    assert_eq!(set.deleted.len(), 1);
    assert_eq!(
        set.deleted[0].replaced_by.as_deref(),
        Some("static/Apptainer")
    );
}

#[test]
fn bad_revisions_are_reported() {
    let (_t, r) = make_repo();
    let err = changed_recipes(&r, "no-such-branch", "main", &DiscoverOptions::default())
        .expect_err("bad rev");
    assert!(matches!(err, ChangesError::BadRevision { ref rev, .. } if rev == "no-such-branch"));
    let err = changed_recipes(&r, "--output=/tmp/x", "main", &DiscoverOptions::default())
        .expect_err("option-like rev");
    assert!(matches!(err, ChangesError::BadRevision { .. }));
}

#[test]
fn not_a_repository_is_an_error() {
    let t = tempfile::tempdir().expect("tempdir");
    let err =
        changed_recipes(t.path(), "a", "b", &DiscoverOptions::default()).expect_err("no repo");
    assert!(matches!(err, ChangesError::Git { .. }), "{err}");
}
