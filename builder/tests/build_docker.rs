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
        "Bootstrap: localimage\nFrom: bb\n\n%post\n    echo about to fail\n    exit 3\n",
        &[],
    );
    busybox_sandbox(dir.path());
    let out = sreg_build(
        Some(&podman),
        dir.path(),
        &[
            "Singularity",
            "-o",
            "out.sif",
            "--quiet",
            "--docker-image",
            BUILDER_IMAGE,
            "--docker-network",
            "none",
        ],
    );
    let shown = text(&out);
    assert!(!out.status.success(), "{shown}");
    assert!(
        shown.contains("the build inside the container failed (exit code 1)"),
        "{shown}"
    );
    // --quiet: the log's tail is on stderr, with the recipe's own output.
    assert!(shown.contains("--- last lines of"), "{shown}");
    assert!(shown.contains("about to fail"), "{shown}");
    assert!(shown.contains("out.build.log"), "{shown}");
    let log = std::fs::read_to_string(dir.path().join("out.build.log")).unwrap();
    assert!(log.contains("docker: container "), "{log}");
    assert!(log.contains("docker: removed container"), "{log}");
    assert_eq!(
        files_in(dir.path()),
        [
            dir.path().join("Singularity"),
            dir.path().join("bb"),
            dir.path().join("out.build.log"),
        ]
    );
    assert_no_containers(&podman);
}

/// A busybox root filesystem at `dir/bb`, for `Bootstrap: localimage`.
fn busybox_sandbox(dir: &Path) {
    let bin = dir.join("bb/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox"))
        .expect("/bin/busybox is missing: install busybox-static (scripts/setup)");
    for applet in ["sh", "echo", "cat", "hostname", "mkdir", "sleep"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
    }
}

/// Unpacks the primary partition of `sif` into `dest` with unsquashfs.
fn unpack(sif: &Path, dest: &Path) {
    let offset = sreg_sif::Sif::open(sif)
        .expect("a SIF")
        .primary_partition()
        .expect("a primary partition")
        .offset();
    let out = Command::new("unsquashfs")
        .args(["-no-progress", "-o", &offset.to_string(), "-d"])
        .arg(dest)
        .arg(sif)
        .output()
        .expect("unsquashfs (squashfs-tools)");
    assert!(out.status.success(), "unsquashfs: {}", text(&out));
}

/// The compression of the primary partition, as `unsquashfs -s` says it.
fn squashfs_compression(sif: &Path) -> String {
    let offset = sreg_sif::Sif::open(sif)
        .expect("a SIF")
        .primary_partition()
        .expect("a primary partition")
        .offset();
    let out = Command::new("unsquashfs")
        .args(["-s", "-o", &offset.to_string()])
        .arg(sif)
        .output()
        .expect("unsquashfs (squashfs-tools)");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("Compression "))
        .unwrap_or_default()
        .to_string()
}

fn read(root: &Path, rel: &str) -> String {
    std::fs::read_to_string(root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// %setup runs where the inner sreg runs, so it can look at what was
/// uploaded: the recipe's folder at its own path, without `.git`.
const FULL_RECIPE: &str = r#"Bootstrap: localimage
From: bb

%setup
    hostname > "$APPTAINER_ROOTFS/setup-host"
    if [ -e {{ CTX }}/.git ]; then echo yes; else echo no; fi > "$APPTAINER_ROOTFS/git-uploaded"

%files
    data/hello.txt /opt/hello.txt

%labels
    Maintainer sreg-tests

%runscript
    exec cat /opt/hello.txt

%post
    hostname > /post-host
    echo {{ GREETING }} > /greeting
    mkdir -p /tmp
    echo in-container > /tmp/{{ MARKER }}
"#;

#[test]
fn builds_in_a_fresh_container_and_fetches_a_sound_image() {
    let podman = Podman::with_builder_image();
    let top = recipe_dir("", &[]);
    // A nested folder: its parents do not exist in the image.
    let dir = top.path().join("recipes/demo");
    std::fs::create_dir_all(dir.join(".git")).unwrap();
    std::fs::write(dir.join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(dir.join("data/hello.txt"), "hello from the recipe folder\n").unwrap();
    std::fs::write(dir.join("Singularity"), FULL_RECIPE).unwrap();
    busybox_sandbox(&dir);
    let marker = format!("sreg-docker-marker-{}", std::process::id());
    let ctx = format!("CTX={}", dir.display());
    let marker_arg = format!("MARKER={marker}");

    let out = sreg_build(
        Some(&podman),
        &dir,
        &[
            "Singularity",
            "-o",
            "demo.sif",
            "--docker-image",
            BUILDER_IMAGE,
            "--docker-network",
            "none",
            "--squashfs-comp",
            "xz",
            "--build-arg",
            "GREETING=hallo",
            "--build-arg",
            &ctx,
            "--build-arg",
            &marker_arg,
        ],
    );
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    let sif = dir.join("demo.sif");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        sif.display().to_string()
    );

    // A sound SIF, as Debian's siftool reads it.
    let list = Command::new("siftool")
        .arg("list")
        .arg(&sif)
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(list.status.success(), "{}", text(&list));
    for kind in ["Def.FILE", "JSON.Labels", "FS (Squashfs/*System/amd64)"] {
        assert!(listed.contains(kind), "{listed}");
    }

    let record: serde_json::Value = serde_json::from_str(&read(&dir, "demo.build.json")).unwrap();
    assert_eq!(record["backend"], "docker");
    assert_eq!(record["backend_version"], podman.version().as_str());
    let details = &record["backend_details"];
    assert_eq!(details["engine"], "Podman Engine");
    assert_eq!(details["image"], BUILDER_IMAGE);
    assert!(details["image_id"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(details["inner_backend"], "native");
    let container = details["container"].as_str().unwrap().to_string();
    assert_eq!(container.len(), 64, "{details}");

    let root = tempfile::tempdir().unwrap();
    let unpacked = root.path().join("r");
    unpack(&sif, &unpacked);
    assert_eq!(squashfs_compression(&sif), "xz");
    assert_eq!(
        read(&unpacked, "opt/hello.txt"),
        "hello from the recipe folder\n"
    );
    assert_eq!(read(&unpacked, "greeting"), "hallo\n");
    let labels: serde_json::Value =
        serde_json::from_str(&read(&unpacked, ".singularity.d/labels.json")).unwrap();
    assert_eq!(labels["Maintainer"], "sreg-tests", "{labels}");
    assert!(read(&unpacked, ".singularity.d/runscript").contains("exec cat /opt/hello.txt"));
    // %setup and %post ran in the container: its hostname is the short
    // container id, and the marker is in the image, not on this host.
    let short = &container[..12];
    assert_eq!(read(&unpacked, "setup-host").trim(), short);
    assert_eq!(read(&unpacked, "post-host").trim(), short);
    assert_eq!(read(&unpacked, &format!("tmp/{marker}")), "in-container\n");
    assert!(!Path::new("/tmp").join(&marker).exists());
    // The recipe's folder went up without .git.
    assert_eq!(read(&unpacked, "git-uploaded"), "no\n");

    let log = read(&dir, "demo.build.log");
    assert!(log.contains("with the native backend"), "{log}");
    assert!(
        log.contains(&format!("docker: removed container {container}")),
        "{log}"
    );
    assert_no_containers(&podman);
    // Nothing of the build stays beside the image.
    let names: Vec<String> = files_in(&dir)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            ".git",
            "Singularity",
            "bb",
            "data",
            "demo.build.json",
            "demo.build.log",
            "demo.sif"
        ]
    );
}

#[test]
fn a_timeout_kills_and_removes_the_build_container() {
    let podman = Podman::with_builder_image();
    let dir = recipe_dir(
        "Bootstrap: localimage\nFrom: bb\n\n%post\n    echo sleeping\n    sleep 300\n",
        &[],
    );
    busybox_sandbox(dir.path());
    let started = std::time::Instant::now();
    let out = sreg_build(
        Some(&podman),
        dir.path(),
        &[
            "Singularity",
            "-o",
            "slow.sif",
            "--docker-image",
            BUILDER_IMAGE,
            "--docker-network",
            "none",
            "--timeout",
            "8s",
        ],
    );
    let shown = text(&out);
    assert!(!out.status.success(), "{shown}");
    assert!(shown.contains("longer than --timeout 8s"), "{shown}");
    assert!(started.elapsed().as_secs() < 60, "{shown}");
    let log = read(dir.path(), "slow.build.log");
    assert!(log.contains("sleeping"), "{log}");
    assert!(log.contains("docker: removed container"), "{log}");
    assert!(!dir.path().join("slow.sif").exists());
    assert_no_containers(&podman);
}

#[test]
fn files_outside_the_recipe_folder_are_refused_before_any_container() {
    let dir = recipe_dir(
        "Bootstrap: scratch\n\n%files\n    /etc/hostname /hostname\n",
        &[],
    );
    // No engine: the check comes first.
    let out = sreg_build(None, dir.path(), &["Singularity", "-o", "out.sif"]);
    let shown = text(&out);
    assert!(!out.status.success(), "{shown}");
    assert!(
        shown.contains("line 4: the %files source /etc/hostname lies outside the recipe's folder"),
        "{shown}"
    );
    let dir = recipe_dir("Bootstrap: localimage\nFrom: ../base.sif\n", &[]);
    let out = sreg_build(None, dir.path(), &["Singularity", "-o", "out.sif"]);
    let shown = text(&out);
    assert!(!out.status.success(), "{shown}");
    assert!(
        shown.contains("`From: ../base.sif` lies outside the recipe's folder"),
        "{shown}"
    );
}

/// scripts/docker/Dockerfile, built on the test engine from the imported
/// Debian (its packages come from the Debian mirror), is the default image.
#[test]
fn the_shipped_dockerfile_makes_the_default_image() {
    let podman = Podman::with_builder_image();
    let out = podman
        .cli()
        .args(["build", "--build-arg"])
        .arg(format!("BASE={BUILDER_IMAGE}"))
        .args(["-t", "localhost/sreg-builder:latest"])
        .arg(sreg_tests::workspace_root().join("scripts/docker"))
        .output()
        .expect("podman build");
    assert!(out.status.success(), "{}", text(&out));

    let dir = recipe_dir(
        "Bootstrap: localimage\nFrom: bb\n\n%post\n    echo built > /built\n",
        &[],
    );
    busybox_sandbox(dir.path());
    // The engine's default network this time.
    let out = sreg_build(Some(&podman), dir.path(), &["Singularity", "-o", "d.sif"]);
    assert!(out.status.success(), "{}", text(&out));
    let record: serde_json::Value =
        serde_json::from_str(&read(dir.path(), "d.build.json")).unwrap();
    assert_eq!(
        record["backend_details"]["image"],
        "localhost/sreg-builder:latest"
    );
    assert_no_containers(&podman);
}

#[test]
fn an_image_that_cannot_run_sreg_gets_a_hint() {
    let podman = Podman::start();
    // busybox alone: no glibc, no dynamic loader for sreg's executable.
    let tiny = tempfile::tempdir().unwrap();
    busybox_sandbox(tiny.path());
    let tarball = tiny.path().join("tiny.tar");
    let out = Command::new("tar")
        .arg("-C")
        .arg(tiny.path().join("bb"))
        .arg("-cf")
        .arg(&tarball)
        .arg(".")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    podman.import(&tarball, "localhost/sreg-test-tiny:1");

    let dir = recipe_dir(SCRATCH_RECIPE, &[("hello.txt", "hi\n")]);
    let out = sreg_build(
        Some(&podman),
        dir.path(),
        &[
            "Singularity",
            "-o",
            "out.sif",
            "--docker-image",
            "localhost/sreg-test-tiny:1",
            "--docker-network",
            "none",
        ],
    );
    let shown = text(&out);
    assert!(!out.status.success(), "{shown}");
    assert!(
        shown.contains("the image cannot run this sreg")
            && shown.contains("Debian bookworm or newer"),
        "{shown}"
    );
    assert!(!dir.path().join("out.sif").exists());
    assert_no_containers(&podman);
}
