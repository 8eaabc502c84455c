//! `sreg ci init` writing into real folders: what it creates, that a second
//! run changes nothing, that it never overwrites without --force, and the
//! values it refuses. The rendered files themselves are validated with
//! check-jsonschema and actionlint in tests/tests/ci_templates.rs.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn sreg(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sreg"))
        .args(args)
        .current_dir(dir)
        .env_remove("SREG_REGISTRY")
        .env_remove("SREG_COLLECTION")
        // No saved login either.
        .env("XDG_CONFIG_HOME", dir.join(".no-config"))
        .output()
        .expect("run sreg")
}

fn stdout(out: &Output) -> String {
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn git_repo(name: &str) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let r = t.path().join(name);
    std::fs::create_dir(&r).unwrap();
    let ok = Command::new("git")
        .args(["init", "-q", "-b", "science"])
        .current_dir(&r)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    t
}

const REG: &str = "https://registry.example.org/";

#[test]
fn github_files_are_created_once_and_then_left_alone() {
    let t = git_repo("Lab-Recipes");
    let r = t.path().join("Lab-Recipes");
    let init = ["ci", "init", "--provider", "github", "--registry", REG];

    let text = stdout(&sreg(&r, &init));
    for f in [
        ".github/workflows/sreg.yml",
        ".github/actions/setup-sreg/action.yml",
        ".github/actions/build-push/action.yml",
    ] {
        assert!(text.contains(&format!("created {f}")), "{text}");
        let mode = std::fs::metadata(r.join(f)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644, "{f}");
    }
    assert!(
        text.contains("named SREG_TOKEN"),
        "says which secret: {text}"
    );
    let workflow = std::fs::read_to_string(r.join(".github/workflows/sreg.yml")).unwrap();
    // Defaults: the folder's name (sanitised) and the checked-out branch.
    assert!(
        workflow.contains("SREG_COLLECTION: lab-recipes\n"),
        "{workflow}"
    );
    assert!(workflow.contains("      - science\n"), "{workflow}");
    assert!(workflow.contains("SREG_REGISTRY: https://registry.example.org\n"));
    assert!(workflow.contains("${{ secrets.SREG_TOKEN }}"));
    // The actions are copied as they are in actions/.
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../actions/build-push/action.yml"),
    )
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(r.join(".github/actions/build-push/action.yml")).unwrap(),
        shipped
    );

    // Again: nothing changes.
    let text = stdout(&sreg(&r, &init));
    assert_eq!(text.matches("unchanged ").count(), 3, "{text}");

    // An edited file is never overwritten without --force, and nothing else is written.
    std::fs::write(r.join(".github/workflows/sreg.yml"), "# mine\n").unwrap();
    std::fs::remove_file(r.join(".github/actions/setup-sreg/action.yml")).unwrap();
    let out = sreg(&r, &init);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(".github/workflows/sreg.yml") && err.contains("--force"),
        "{err}"
    );
    assert!(!r.join(".github/actions/setup-sreg/action.yml").exists());
    assert_eq!(
        std::fs::read_to_string(r.join(".github/workflows/sreg.yml")).unwrap(),
        "# mine\n"
    );

    // --dry-run shows what would be written and writes nothing.
    let text = stdout(&sreg(&r, &[&init[..], &["--dry-run"]].concat()));
    assert!(
        text.contains("==> .github/workflows/sreg.yml (differs"),
        "{text}"
    );
    assert!(text.contains("==> .github/actions/setup-sreg/action.yml (would create)"));
    assert!(!r.join(".github/actions/setup-sreg/action.yml").exists());

    let text = stdout(&sreg(&r, &[&init[..], &["--force"]].concat()));
    assert!(
        text.contains("replaced .github/workflows/sreg.yml"),
        "{text}"
    );
    assert!(text.contains("created .github/actions/setup-sreg/action.yml"));
    assert_eq!(
        std::fs::read_to_string(r.join(".github/workflows/sreg.yml")).unwrap(),
        workflow
    );
}

#[test]
fn gitlab_pipeline_is_included_from_the_root_file() {
    let t = git_repo("recipes");
    let r = t.path().join("recipes");
    let init = [
        "ci",
        "init",
        "--provider",
        "gitlab",
        "--registry",
        REG,
        "--collection",
        "team/lab",
    ];
    let text = stdout(&sreg(&r, &init));
    assert!(
        text.contains("created .gitlab/sreg.gitlab-ci.yml"),
        "{text}"
    );
    assert!(text.contains("created .gitlab-ci.yml"), "{text}");
    let root = std::fs::read_to_string(r.join(".gitlab-ci.yml")).unwrap();
    assert!(
        root.contains("- local: .gitlab/sreg.gitlab-ci.yml"),
        "{root}"
    );
    assert!(stdout(&sreg(&r, &init)).contains("unchanged .gitlab/sreg.gitlab-ci.yml"));

    // A repository with its own .gitlab-ci.yml keeps it, and is told what to add.
    let t = git_repo("other");
    let r = t.path().join("other");
    std::fs::write(r.join(".gitlab-ci.yml"), "test:\n  script: [make]\n").unwrap();
    let text = stdout(&sreg(&r, &init));
    assert!(text.contains("add to it"), "{text}");
    assert_eq!(
        std::fs::read_to_string(r.join(".gitlab-ci.yml")).unwrap(),
        "test:\n  script: [make]\n"
    );
}

#[test]
fn every_provider_writes_its_file_and_names_its_secret_store() {
    for (provider, file, store) in [
        ("circleci", ".circleci/config.yml", "Environment Variables"),
        ("travis", ".travis.yml", "Environment Variables"),
        ("jenkins", "Jenkinsfile", "Secret text"),
    ] {
        let t = git_repo("r");
        let r = t.path().join("r");
        let text = stdout(&sreg(
            &r,
            &[
                "ci",
                "init",
                "--provider",
                provider,
                "--registry",
                REG,
                "--collection",
                "lab",
            ],
        ));
        assert!(
            text.contains(&format!("created {file}")),
            "{provider}: {text}"
        );
        assert!(text.contains(store), "{provider}: {text}");
        let rendered = std::fs::read_to_string(r.join(file)).unwrap();
        assert!(
            rendered.contains("https://registry.example.org"),
            "{provider}"
        );
        assert!(rendered.contains("sreg recipes"), "{provider}");
    }
}

#[test]
fn bad_values_are_refused_before_anything_is_written() {
    let t = git_repo("r");
    let r = t.path().join("r");
    for (args, says) in [
        (&["--registry", "registry.example.org"][..], "not a URL"),
        (
            &["--registry", "https://r.example.org/x'; rm -rf /"][..],
            "not allowed",
        ),
        (
            &["--registry", REG, "--collection", "Lab Stuff"][..],
            "--collection",
        ),
        (&["--registry", REG, "--branch=-x"][..], "--branch"),
        (
            &["--registry", REG, "--apptainer-version", "latest"][..],
            "--apptainer-version",
        ),
        (&[][..], "--registry URL"),
    ] {
        let out = sreg(
            &r,
            &[&["ci", "init", "--provider", "github"][..], args].concat(),
        );
        assert!(!out.status.success(), "{args:?} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!r.join(".github").exists(), "{args:?} wrote files");
    }
}
