//! `sreg build --backend native` from remote sources, end to end with the
//! real binary: `Bootstrap: docker` from Debian's `docker-registry` holding
//! an image made in the test (whiteouts, an opaque folder, a link), `oras`
//! from the same registry after a push with the Python ORAS client, and
//! `library` and `shub` from a real sreg-server after `sreg push`. Each
//! image is unpacked with `unsquashfs` and looked at.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use sreg_sif::{Arch, ObjectInput, Sif, SifBuilder};
use sreg_tests::oci_registry::{OciRegistry, host_arch, sample_image, sample_image_with};
use sreg_tests::{Server, workspace_root};

/// A test folder with a clean environment for `sreg` (its own HOME, so no
/// `sreg login` of the machine leaks in).
struct Dir {
    dir: tempfile::TempDir,
}

impl Dir {
    fn new() -> Dir {
        Dir {
            dir: tempfile::Builder::new()
                .prefix("sreg-sources-")
                .tempdir()
                .unwrap(),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `sreg ARGS` in this folder with only `env` set besides PATH and HOME.
    fn sreg(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_sreg"))
            .args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("CI", "true")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .expect("run sreg")
    }

    /// Writes `recipe` as NAME.def and builds NAME.sif with the native backend.
    fn build(&self, name: &str, recipe: &str, env: &[(&str, &str)], extra: &[&str]) -> Output {
        fs::write(self.path(&format!("{name}.def")), recipe).unwrap();
        let mut args = vec![
            "build".to_string(),
            format!("{name}.def"),
            "-o".to_string(),
            format!("{name}.sif"),
            "--backend".to_string(),
            "native".to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.sreg(&args, env)
    }

    /// Unpacks NAME.sif's primary partition into NAME.root/.
    fn unpack(&self, name: &str) -> PathBuf {
        let sif = self.path(&format!("{name}.sif"));
        let dest = self.path(&format!("{name}.root"));
        let offset = Sif::open(&sif)
            .unwrap()
            .primary_partition()
            .expect("a primary partition")
            .offset();
        let out = Command::new("unsquashfs")
            .args(["-no-progress", "-o"])
            .arg(offset.to_string())
            .arg("-d")
            .arg(&dest)
            .arg(&sif)
            .output()
            .expect("unsquashfs is missing: install squashfs-tools");
        assert!(out.status.success(), "unsquashfs: {out:?}");
        dest
    }
}

fn ok(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "sreg failed:\n{err}");
    err
}

fn failed(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "sreg should have failed:\n{err}");
    err
}

fn read(root: &Path, rel: &str) -> String {
    fs::read_to_string(root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// A real SIF: a squashfs (made by mksquashfs) of a folder holding
/// `/etc/marker` with `marker` and a static busybox, for this machine.
fn real_sif(dir: &Dir, name: &str, marker: &str) -> PathBuf {
    let tree = dir.path(&format!("{name}.tree"));
    fs::create_dir_all(tree.join("etc")).unwrap();
    fs::create_dir_all(tree.join("bin")).unwrap();
    fs::write(tree.join("etc/marker"), marker).unwrap();
    fs::copy("/bin/busybox", tree.join("bin/busybox"))
        .expect("/bin/busybox is missing: install busybox-static");
    std::os::unix::fs::symlink("busybox", tree.join("bin/sh")).unwrap();
    let squash = dir.path(&format!("{name}.squashfs"));
    let out = Command::new("mksquashfs")
        .arg(&tree)
        .arg(&squash)
        .args(["-noappend", "-no-progress", "-quiet", "-all-root"])
        .output()
        .expect("mksquashfs is missing: install squashfs-tools");
    assert!(out.status.success(), "mksquashfs: {out:?}");
    let partition = fs::read(&squash).unwrap();
    let arch = Arch::from_name(host_arch()).expect("a SIF architecture");
    let sif = dir.path(&format!("{name}.sif"));
    let mut file = fs::File::create(&sif).unwrap();
    SifBuilder::new()
        .object(ObjectInput::definition_file(&b"Bootstrap: scratch\n"[..]))
        .object(ObjectInput::primary_squashfs(partition.as_slice(), arch))
        .write(&mut file)
        .unwrap();
    sif
}

#[test]
fn docker_source_applies_layers_with_whiteouts_and_takes_env_and_runscript_from_the_config() {
    let registry = OciRegistry::start();
    registry.push_image("sreg/sample", "1", &sample_image(host_arch()));
    let dir = Dir::new();
    let recipe = format!(
        "Bootstrap: docker\nFrom: {}/sreg/sample:1\n\n%labels\n    Recipe yes\n",
        registry.host
    );
    let log = ok(&dir.build("docker", &recipe, &[], &["--nohttps"]));
    assert!(log.contains("digest verified"), "{log}");
    let root = dir.unpack("docker");

    assert_eq!(read(&root, "etc/sreg-test"), "layer two");
    assert!(!root.join("etc/doomed").exists(), "whiteout ignored");
    assert!(!root.join("etc/.wh.doomed").exists());
    assert!(!root.join("opt/app/old").exists(), "opaque folder ignored");
    assert!(!root.join("opt/app/sub").exists(), "opaque folder ignored");
    assert!(!root.join("opt/app/.wh..wh..opq").exists());
    assert_eq!(read(&root, "opt/app/new"), "new");
    assert_eq!(read(&root, "usr/lib/added"), "through the link");
    assert_eq!(
        fs::read_link(root.join("lib")).unwrap(),
        Path::new("/usr/lib")
    );
    let busybox = fs::metadata(root.join("bin/busybox")).unwrap();
    assert_eq!(
        busybox.ino(),
        fs::metadata(root.join("bin/ls")).unwrap().ino()
    );

    let env = read(&root, ".singularity.d/env/10-docker2singularity.sh");
    assert!(env.contains("SREG_TEST_VAR"), "{env}");
    assert!(env.contains("from the image config"), "{env}");
    let runscript = read(&root, ".singularity.d/runscript");
    assert!(
        runscript.contains("echo hello from the image"),
        "{runscript}"
    );
    let labels = read(&root, ".singularity.d/labels.json");
    assert!(labels.contains("org.example.source"), "{labels}");
    assert!(labels.contains("Recipe"), "{labels}");
}

#[test]
fn docker_source_without_nohttps_or_with_a_missing_tag_fails_clearly() {
    let registry = OciRegistry::start();
    registry.push_image("sreg/sample", "1", &sample_image(host_arch()));
    let dir = Dir::new();
    let recipe = format!("Bootstrap: docker\nFrom: {}/sreg/sample:1\n", registry.host);
    let err = failed(&dir.build("tls", &recipe, &[], &[]));
    assert!(err.contains("--nohttps"), "{err}");
    let recipe = format!("Bootstrap: docker\nFrom: {}/sreg/sample:2\n", registry.host);
    let err = failed(&dir.build("missing", &recipe, &[("SREG_NOHTTPS", "true")], &[]));
    assert!(err.contains("was not found on"), "{err}");
    assert!(!dir.path("missing.sif").exists());
}

#[test]
fn oras_source_takes_a_sif_pushed_with_the_python_oras_client() {
    let registry = OciRegistry::start();
    let dir = Dir::new();
    let sif = real_sif(&dir, "base", "pushed with oras");
    let target = format!("{}/sreg/sif:1", registry.host);
    let script = format!(
        "import oras.client\n\
         c = oras.client.OrasClient(hostname={host:?}, insecure=True)\n\
         c.push(files=[{file:?}], target={target:?})\n",
        host = registry.host,
        file = "base.sif:application/vnd.sylabs.sif.layer.v1.sif",
    );
    let out = Command::new(workspace_root().join(".venv/bin/python"))
        .args(["-c", &script])
        .current_dir(sif.parent().unwrap())
        .output()
        .expect("the Python venv is missing: run scripts/setup");
    assert!(
        out.status.success(),
        "oras push: {out:?}\n{}",
        registry.log()
    );

    let recipe = format!("Bootstrap: oras\nFrom: oras://{target}\n");
    ok(&dir.build("fromoras", &recipe, &[], &["--nohttps"]));
    let root = dir.unpack("fromoras");
    assert_eq!(read(&root, "etc/marker"), "pushed with oras");

    // A container image is not a SIF: the error says which agent to use.
    registry.push_image("sreg/sample", "1", &sample_image(host_arch()));
    let recipe = format!(
        "Bootstrap: oras\nFrom: oras://{}/sreg/sample:1\n",
        registry.host
    );
    let err = failed(&dir.build("notsif", &recipe, &[], &["--nohttps"]));
    assert!(err.contains("Bootstrap: docker"), "{err}");
}

#[test]
fn library_and_shub_sources_pull_from_sreg_server_with_its_token() {
    let dir = Dir::new();
    // Private collections: an image reached without the token is refused.
    fs::write(dir.path("sreg.toml"), "[registry]\nprivate_only = true\n").unwrap();
    let server = Server::start(
        dir.dir.path(),
        &["--data-dir", "data", "--config", "sreg.toml"],
    );
    let token = server.user_with_token("alice", false);
    let env = [
        ("SREG_REGISTRY", server.url.as_str()),
        ("SREG_TOKEN", token.as_str()),
    ];
    real_sif(&dir, "base", "from the library");
    ok(&dir.sreg(&["push", "base.sif", "alice/tools/base:1"], &env));

    ok(&dir.build(
        "fromlib",
        "Bootstrap: library\nFrom: library://alice/tools/base:1\n",
        &env,
        &[],
    ));
    assert_eq!(
        read(&dir.unpack("fromlib"), "etc/marker"),
        "from the library"
    );

    ok(&dir.build(
        "fromshub",
        "Bootstrap: shub\nFrom: tools/base:1\n",
        &env,
        &[],
    ));
    assert_eq!(
        read(&dir.unpack("fromshub"), "etc/marker"),
        "from the library"
    );

    // A missing image, and a `Library:` URL that gets no token.
    let err = failed(&dir.build(
        "nolib",
        "Bootstrap: library\nFrom: alice/tools/base:2\n",
        &env,
        &[],
    ));
    assert!(err.contains("was not found"), "{err}");
    let recipe = format!(
        "Bootstrap: library\nLibrary: {}\nFrom: alice/tools/base:1\n",
        server.url
    );
    let err = failed(&dir.build("anonymous", &recipe, &[], &[]));
    assert!(err.contains("sreg sends no token"), "{err}");
}

/// Podman's CLI with its storage (vfs: no mounts to clean up) in
/// `dir/podman`, run in `dir`.
fn podman(dir: &Path, args: &[&str]) -> Output {
    let store = dir.join("podman");
    let out = Command::new("podman")
        .current_dir(dir)
        .arg(format!("--root={}", store.join("root").display()))
        .arg(format!("--runroot={}", store.join("run").display()))
        .arg(format!("--tmpdir={}", store.join("tmp").display()))
        .args(["--storage-driver=vfs", "--events-backend=file"])
        .args(args)
        .output()
        .expect("podman is missing: install podman (scripts/setup)");
    assert!(out.status.success(), "podman {args:?}: {out:?}");
    out
}

#[test]
fn oci_layout_oci_archive_and_docker_archive_saved_by_podman_are_built_from() {
    let registry = OciRegistry::start();
    registry.push_image("sreg/sample", "1", &sample_image_with(host_arch(), false));
    let dir = Dir::new();
    let store = dir.dir.path();
    let image = format!("{}/sreg/sample:1", registry.host);
    podman(store, &["pull", "-q", "--tls-verify=false", &image]);
    podman(
        store,
        &["save", "-q", "--format", "oci-dir", "-o", "layout", &image],
    );
    podman(
        store,
        &[
            "save",
            "-q",
            "--format",
            "oci-archive",
            "-o",
            "oci.tar",
            &image,
        ],
    );
    podman(
        store,
        &[
            "save",
            "-q",
            "--format",
            "docker-archive",
            "-o",
            "docker.tar",
            &image,
        ],
    );
    let _ = fs::remove_dir_all(dir.path("podman"));

    for (name, recipe) in [
        (
            "fromlayout",
            format!("Bootstrap: oci\nFrom: layout:{image}\n"),
        ),
        (
            "fromociarchive",
            "Bootstrap: oci-archive\nFrom: oci.tar\n".to_string(),
        ),
        (
            "fromdockerarchive",
            format!("Bootstrap: docker-archive\nFrom: docker.tar:{image}\n"),
        ),
    ] {
        ok(&dir.build(name, &recipe, &[], &[]));
        let root = dir.unpack(name);
        assert_eq!(read(&root, "etc/sreg-test"), "layer two", "{name}");
        assert!(
            !root.join("etc/doomed").exists(),
            "{name}: whiteout ignored"
        );
        assert!(
            !root.join("opt/app/old").exists(),
            "{name}: opaque folder ignored"
        );
        assert_eq!(read(&root, "opt/app/new"), "new", "{name}");
        let env = read(&root, ".singularity.d/env/10-docker2singularity.sh");
        assert!(env.contains("SREG_TEST_VAR"), "{name}: {env}");
    }
    // The layout the user gave is left as it was.
    assert!(dir.path("layout/index.json").is_file());

    let err = failed(&dir.build("notag", "Bootstrap: oci\nFrom: layout:nope\n", &[], &[]));
    assert!(err.contains("has no image tagged `nope`"), "{err}");
}

#[test]
fn docker_source_logs_in_with_credentials_from_the_environment() {
    let registry = OciRegistry::start_with_login("alice", "s3cret");
    registry.push_image("sreg/private", "1", &sample_image(host_arch()));
    let dir = Dir::new();
    let recipe = format!(
        "Bootstrap: docker\nFrom: {}/sreg/private:1\n",
        registry.host
    );

    let err = failed(&dir.build("anonymous", &recipe, &[], &["--nohttps"]));
    assert!(err.contains("refused access"), "{err}");
    assert!(err.contains("SREG_DOCKER_USERNAME"), "{err}");

    let wrong = [
        ("SREG_DOCKER_USERNAME", "alice"),
        ("SREG_DOCKER_PASSWORD", "guess"),
    ];
    let err = failed(&dir.build("wrong", &recipe, &wrong, &["--nohttps"]));
    assert!(
        err.contains("refused the credentials in SREG_DOCKER_USERNAME"),
        "{err}"
    );

    // Apptainer's variables work too, so CI set up for it needs no change.
    let apptainer = [
        ("APPTAINER_DOCKER_USERNAME", "alice"),
        ("APPTAINER_DOCKER_PASSWORD", "s3cret"),
    ];
    ok(&dir.build("loggedin", &recipe, &apptainer, &["--nohttps"]));
    assert_eq!(read(&dir.unpack("loggedin"), "etc/sreg-test"), "layer two");
    let log = fs::read_to_string(dir.path("loggedin.build.log")).unwrap();
    assert!(!log.contains("s3cret"), "the password is in the log");
}
