//! `sreg build --backend docker` against a real Docker-API engine: podman's
//! `podman system service`, started by each test on its own socket and
//! storage, with a builder image imported from a debootstrap root
//! filesystem (test-components.md §6, §7).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sreg_tests::bin;
use sreg_tests::podman::{BUILDER_IMAGE, Podman};

/// `sreg build --backend docker` with DOCKER_HOST pointing at `podman`.
fn sreg_build(podman: Option<&Podman>, dir: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(bin("sreg"));
    cmd.current_dir(dir)
        .args(["build", "--backend", "docker"])
        .args(args)
        .env_remove("SREG_DOCKER_IMAGE")
        .env_remove("SREG_DOCKER_NETWORK")
        .env_remove("SREG_BUILD_BACKEND");
    match podman {
        Some(p) => cmd.env("DOCKER_HOST", p.docker_host()),
        None => cmd.env(
            "DOCKER_HOST",
            format!("unix://{}/no-engine.sock", dir.display()),
        ),
    };
    cmd.output().expect("run sreg")
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A recipe folder with `recipe` as `Singularity` and `files` beside it.
fn recipe_dir(recipe: &str, files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("sreg-docker-test")
        .tempdir()
        .expect("tempdir");
    std::fs::write(dir.path().join("Singularity"), recipe).unwrap();
    for (name, body) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }
    dir
}

fn assert_no_containers(podman: &Podman) {
    let left = podman.containers();
    assert!(left.is_empty(), "containers left behind: {left:#?}");
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    out.sort();
    out
}

const SCRATCH_RECIPE: &str = "Bootstrap: scratch\n\n%files\n    hello.txt /hello.txt\n";

#[test]
fn no_engine_gives_an_error_that_says_how_to_start_one() {
    let dir = recipe_dir(SCRATCH_RECIPE, &[("hello.txt", "hi\n")]);
    let out = sreg_build(None, dir.path(), &["Singularity", "-o", "out.sif"]);
    let shown = text(&out);
    assert!(!out.status.success(), "{shown}");
    assert!(
        shown.contains("no Docker-API engine answers at unix://"),
        "{shown}"
    );
    assert!(shown.contains("podman system service"), "{shown}");
    assert!(!dir.path().join("out.sif").exists());
}

#[test]
fn missing_images_get_errors_that_say_how_to_get_them() {
    let podman = Podman::start();
    let dir = recipe_dir(SCRATCH_RECIPE, &[("hello.txt", "hi\n")]);

    // The default image is built locally, never pulled.
    let out = sreg_build(Some(&podman), dir.path(), &["Singularity", "-o", "out.sif"]);
    let shown = text(&out);
    assert!(!out.status.success(), "{shown}");
    assert!(
        shown.contains("default image localhost/sreg-builder:latest is not in the engine"),
        "{shown}"
    );
    assert!(
        shown.contains("docker build -t localhost/sreg-builder:latest scripts/docker"),
        "{shown}"
    );

    // Another image is pulled; one no registry has says so.
    let out = sreg_build(
        Some(&podman),
        dir.path(),
        &[
            "Singularity",
            "-o",
            "out.sif",
            "--docker-image",
            "localhost/sreg-no-such-image:1",
        ],
    );
    let shown = text(&out);
    assert!(!out.status.success(), "{shown}");
    assert!(
        shown.contains("localhost/sreg-no-such-image:1 is not in the engine")
            && shown.contains("pulling it failed"),
        "{shown}"
    );
    assert!(!dir.path().join("out.sif").exists());
    assert_no_containers(&podman);
}

#[test]
fn a_failing_build_in_the_container_leaves_no_image_and_no_container() {
    let podman = Podman::with_builder_image();
    let dir = recipe_dir(
        "Bootstrap: scratch\n\n%files\n    hello.txt /hello.txt\n\n%post\n    echo about to fail\n    exit 3\n",
        &[("hello.txt", "hi\n")],
    );
    let out = sreg_build(
        Some(&podman),
        dir.path(),
        &[
            "Singularity",
            "-o",
            "out.sif",
            "--docker-image",
            BUILDER_IMAGE,
            "--docker-network",
            "none",
        ],
    );
    let shown = text(&out);
    assert!(!out.status.success(), "{shown}");
    assert!(
        shown.contains("the build inside the container failed (exit code"),
        "{shown}"
    );
    assert!(shown.contains("out.build.log"), "{shown}");
    let log = std::fs::read_to_string(dir.path().join("out.build.log")).unwrap();
    assert!(log.contains("docker: container "), "{log}");
    assert!(log.contains("docker: removed container"), "{log}");
    assert!(!dir.path().join("out.sif").exists());
    assert_eq!(
        files_in(dir.path()),
        [
            dir.path().join("Singularity"),
            dir.path().join("hello.txt"),
            dir.path().join("out.build.log"),
        ]
    );
    assert_no_containers(&podman);
}
