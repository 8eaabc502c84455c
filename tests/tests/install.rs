//! Getting sreg onto CI runners and fresh machines: a real sreg-server serves
//! the client (`/install.sh`, `/downloads/sreg/linux-ARCH[.sha256]`), and
//! `scripts/install.sh` runs in dash (POSIX sh) against it, against archives
//! made by `scripts/package.sh`, and against the source tree with cargo.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use sha2::{Digest, Sha256};
use sreg_tests::{Server, bin, workspace_root};

const ARCH: &str = std::env::consts::ARCH;

fn install_script() -> PathBuf {
    workspace_root().join("scripts/install.sh")
}

/// `dash scripts/install.sh ARGS` with HOME in `home`, no SREG_REGISTRY.
fn install(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new("dash")
        .arg(install_script())
        .args(args)
        .current_dir(home)
        .env("HOME", home)
        .env_remove("SREG_REGISTRY")
        .envs(env.iter().copied())
        .output()
        .expect("run dash")
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn sha256_file(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

fn version_of(binary: &Path) -> String {
    let out = Command::new(binary).arg("--version").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Files in `dir` (none when it does not exist).
fn entries(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// A registry whose downloads folder holds a copy of the workspace's sreg
/// for this machine.
fn registry_with_downloads(tmp: &Path) -> (Server, PathBuf) {
    let downloads = tmp.join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let served = downloads.join(format!("sreg-linux-{ARCH}"));
    std::fs::copy(bin("sreg"), &served).unwrap();
    let data = tmp.join("data");
    let server = Server::start_with_env(
        tmp,
        &["--data-dir", data.to_str().unwrap()],
        &[("SREG_DOWNLOADS_DIR", downloads.display().to_string())],
    );
    (server, served)
}

#[test]
fn installs_sreg_from_the_registry_checked_against_its_sha256() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, served) = registry_with_downloads(tmp.path());
    let want = sha256_file(&served);

    // What install.sh reads: sha256sum format, and the binary with its
    // length and ETag.
    let url = format!("{}/downloads/sreg/linux-{ARCH}", server.url);
    let sums = reqwest::blocking::get(format!("{url}.sha256")).unwrap();
    assert_eq!(sums.status(), 200);
    assert_eq!(sums.text().unwrap(), format!("{want}  sreg\n"));
    let resp = reqwest::blocking::get(&url).unwrap();
    assert_eq!(resp.status(), 200);
    let len = std::fs::metadata(&served).unwrap().len();
    assert_eq!(resp.content_length(), Some(len));
    let etag = resp.headers()["etag"].to_str().unwrap().to_string();
    assert_eq!(etag, format!("\"{want}\""));
    assert_eq!(hex::encode(Sha256::digest(resp.bytes().unwrap())), want);
    let again = reqwest::blocking::Client::new()
        .get(&url)
        .header("If-None-Match", &etag)
        .send()
        .unwrap();
    assert_eq!(again.status(), 304);

    let bin_dir = tmp.path().join("bin");
    let out = install(
        tmp.path(),
        &[
            "--registry",
            &server.url,
            "--bin-dir",
            bin_dir.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    let installed = bin_dir.join("sreg");
    assert_eq!(sha256_file(&installed), want);
    assert_eq!(version_of(&installed), version_of(&bin("sreg")));
    // Only the binary: no temporary file left beside it.
    assert_eq!(entries(&bin_dir), vec!["sreg".to_string()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is not on your PATH"), "{stderr}");

    // SREG_REGISTRY is the default registry too.
    let other = tmp.path().join("bin2");
    let out = install(
        tmp.path(),
        &["--bin-dir", other.to_str().unwrap()],
        &[("SREG_REGISTRY", &server.url)],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(sha256_file(&other.join("sreg")), want);
}

#[test]
fn served_install_script_needs_no_registry_argument_and_serves_the_sreg_beside_the_server() {
    // No downloads folder: the registry serves the sreg next to its own
    // executable (the workspace's target folder holds both).
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Server::start(tmp.path(), &["--data-dir", data.to_str().unwrap()]);

    let resp = reqwest::blocking::get(format!("{}/install.sh", server.url)).unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "text/x-shellscript; charset=utf-8"
    );
    let script = resp.text().unwrap();
    let line = script
        .lines()
        .find(|l| l.starts_with("DEFAULT_REGISTRY="))
        .unwrap();
    assert!(line.contains(&server.url), "{line}");

    // curl URL/install.sh | sh: only --bin-dir is given, since as root the
    // default would be /usr/local/bin of the machine running the tests.
    let bin_dir = tmp.path().join("bin");
    let out = Command::new("sh")
        .arg("-c")
        .arg(r#"curl -fsSL "$URL/install.sh" | sh -s -- --bin-dir "$BIN""#)
        .env("URL", &server.url)
        .env("BIN", &bin_dir)
        .env("HOME", tmp.path())
        .env_remove("SREG_REGISTRY")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        sha256_file(&bin_dir.join("sreg")),
        sha256_file(&bin("sreg"))
    );
    assert_eq!(version_of(&bin_dir.join("sreg")), version_of(&bin("sreg")));

    // The script from the repository has no default: it says what to do.
    let out = install(tmp.path(), &["--bin-dir", bin_dir.to_str().unwrap()], &[]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("no registry given: pass --registry URL or set SREG_REGISTRY"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_checksum_that_does_not_match_installs_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, served) = registry_with_downloads(tmp.path());
    let bin_dir = tmp.path().join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    std::fs::write(bin_dir.join("sreg"), "the sreg installed before").unwrap();

    // A runner reads the checksum (as setup-sreg does, for its cache key),
    // then the registry's client is replaced before the download.
    let url = format!("{}/downloads/sreg/linux-{ARCH}", server.url);
    let read = reqwest::blocking::get(format!("{url}.sha256"))
        .unwrap()
        .text()
        .unwrap();
    let pinned = read.split_whitespace().next().unwrap().to_string();
    let mut changed = std::fs::read(&served).unwrap();
    changed.extend_from_slice(b"appended");
    let tmp_file = served.with_extension("new");
    std::fs::write(&tmp_file, &changed).unwrap();
    std::fs::rename(&tmp_file, &served).unwrap();

    let out = install(
        tmp.path(),
        &[
            "--registry",
            &server.url,
            "--bin-dir",
            bin_dir.to_str().unwrap(),
            "--sha256",
            &pinned,
        ],
        &[],
    );
    assert!(!out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("checksum mismatch"), "{stderr}");
    assert!(stderr.contains("nothing was installed"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(bin_dir.join("sreg")).unwrap(),
        "the sreg installed before"
    );
    assert_eq!(entries(&bin_dir), vec!["sreg".to_string()]);

    // The registry noticed the new file (size and mtime): its checksum now
    // is the new one, and an unpinned install takes it.
    let now = reqwest::blocking::get(format!("{url}.sha256"))
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(
        now,
        format!("{}  sreg\n", hex::encode(Sha256::digest(&changed)))
    );

    // A release archive whose .sha256 was tampered with.
    let dist = tmp.path().join("dist");
    let archive = package(&snapshot_bins(&tmp.path().join("built")), &dist);
    let sums = PathBuf::from(format!("{}.sha256", archive.display()));
    let line = std::fs::read_to_string(&sums).unwrap();
    let flipped = if line.starts_with('0') { "1" } else { "0" };
    std::fs::write(&sums, format!("{flipped}{}", &line[1..])).unwrap();
    let fresh = tmp.path().join("fresh");
    let out = install(
        tmp.path(),
        &[
            "--archive",
            archive.to_str().unwrap(),
            "--bin-dir",
            fresh.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("checksum mismatch"), "{stderr}");
    assert!(stderr.contains("nothing was installed"), "{stderr}");
    assert!(entries(&fresh).is_empty(), "{:?}", entries(&fresh));
}

#[test]
fn unknown_or_unavailable_platforms_get_a_clear_404() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, _) = registry_with_downloads(tmp.path());
    let get = |path: &str| {
        let r = reqwest::blocking::get(format!("{}{path}", server.url)).unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    let (status, body) = get("/downloads/sreg/linux-mips");
    assert_eq!(status, 404);
    assert!(body.contains("linux-x86_64, linux-aarch64"), "{body}");
    let (status, _) = get("/downloads/sreg/..%2F..%2Fdata%2Fsecret.key");
    assert_eq!(status, 404);

    // The other architecture: no file for it, and the server's sibling is
    // never offered for a foreign machine.
    let other = if ARCH == "x86_64" {
        "aarch64"
    } else {
        "x86_64"
    };
    let (status, body) = get(&format!("/downloads/sreg/linux-{other}.sha256"));
    assert_eq!(status, 404);
    assert!(body.contains(&format!("sreg-linux-{other}")), "{body}");
    assert!(body.contains("SREG_DOWNLOADS_DIR"), "{body}");

    // install.sh on such a machine (uname -m answered by a shim) shows the
    // registry's message and installs nothing.
    let shim = tmp.path().join("shim");
    std::fs::create_dir_all(&shim).unwrap();
    std::fs::write(
        shim.join("uname"),
        format!(
            "#!/bin/sh\n[ \"$1\" = -m ] && echo {other} && exit 0\nexec /usr/bin/uname \"$@\"\n"
        ),
    )
    .unwrap();
    Command::new("chmod")
        .args(["+x", shim.join("uname").to_str().unwrap()])
        .status()
        .unwrap();
    let path = format!("{}:{}", shim.display(), std::env::var("PATH").unwrap());
    let bin_dir = tmp.path().join("bin");
    let out = install(
        tmp.path(),
        &[
            "--registry",
            &server.url,
            "--bin-dir",
            bin_dir.to_str().unwrap(),
        ],
        &[("PATH", &path)],
    );
    assert!(!out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("answered HTTP 404"), "{stderr}");
    assert!(stderr.contains(&format!("sreg-linux-{other}")), "{stderr}");
    assert!(entries(&bin_dir).is_empty());
}

/// A copy of the workspace's sreg and sreg-server in `dir`, so that what a
/// test compares with cannot change under it (a rebuild re-links them).
fn snapshot_bins(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    for name in ["sreg", "sreg-server"] {
        std::fs::copy(bin(name), dir.join(name)).unwrap();
    }
    dir.to_path_buf()
}

/// `scripts/package.sh --bin-dir BIN_DIR --out OUT`; the archive.
fn package(bin_dir: &Path, out: &Path) -> PathBuf {
    let started = Instant::now();
    let run = Command::new("sh")
        .arg(workspace_root().join("scripts/package.sh"))
        .args(["--bin-dir", bin_dir.to_str().unwrap()])
        .args(["--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", text(&run));
    eprintln!("package.sh took {:?}", started.elapsed());
    PathBuf::from(String::from_utf8(run.stdout).unwrap().trim())
}

#[test]
fn installs_both_binaries_and_the_systemd_units_from_a_package_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let built = snapshot_bins(&tmp.path().join("built"));
    let archive = package(&built, &tmp.path().join("dist"));
    let version = version_of(&built.join("sreg"));
    let name = archive.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(
        name,
        format!(
            "sreg-{}-linux-{ARCH}.tar.gz",
            version.trim_start_matches("sreg ")
        )
    );
    let sums = std::fs::read_to_string(format!("{}.sha256", archive.display())).unwrap();
    assert_eq!(sums, format!("{}  {name}\n", sha256_file(&archive)));

    let bin_dir = tmp.path().join("bin");
    let root = tmp.path().join("root");
    let out = install(
        tmp.path(),
        &[
            "--archive",
            archive.to_str().unwrap(),
            "--bin-dir",
            bin_dir.to_str().unwrap(),
            "--systemd",
        ],
        &[("DESTDIR", root.to_str().unwrap())],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(version_of(&bin_dir.join("sreg")), version);
    assert!(version_of(&bin_dir.join("sreg-server")).starts_with("sreg-server "));
    assert_eq!(
        sha256_file(&bin_dir.join("sreg-server")),
        sha256_file(&built.join("sreg-server"))
    );

    // The units start the binaries where they were installed.
    let units = root.join("etc/systemd/system");
    let server_unit = std::fs::read_to_string(units.join("sreg-server.service")).unwrap();
    assert!(
        server_unit.contains(&format!(
            "ExecStart={}/sreg-server serve",
            bin_dir.display()
        )),
        "{server_unit}"
    );
    let agent_unit = std::fs::read_to_string(units.join("sreg-agent.service")).unwrap();
    assert!(
        agent_unit.contains(&format!("ExecStart={}/sreg agent", bin_dir.display())),
        "{agent_unit}"
    );
    let dropin = std::fs::read_to_string(units.join("sreg-server.service.d/10-user.conf")).unwrap();
    assert!(dropin.contains("User=sreg"), "{dropin}");
    assert!(root.join("var/lib/sreg").is_dir());
    assert!(root.join("etc/sreg/agent.env.example").is_file());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("systemctl daemon-reload && systemctl enable --now sreg-server"),
        "{stderr}"
    );

    // The same archive from a web server, its .sha256 fetched beside it.
    let web = StaticFiles::serve(archive.parent().unwrap());
    let url = format!("{}/{name}", web.url);
    let from_url = tmp.path().join("from-url");
    let out = install(
        tmp.path(),
        &["--archive", &url, "--bin-dir", from_url.to_str().unwrap()],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(version_of(&from_url.join("sreg")), version);
    assert_eq!(
        sha256_file(&from_url.join("sreg-server")),
        sha256_file(&built.join("sreg-server"))
    );
}

/// A plain static web server (Python's http.server) over a folder, stopped
/// on drop.
struct StaticFiles {
    child: std::process::Child,
    url: String,
}

impl StaticFiles {
    fn serve(dir: &Path) -> Self {
        let port = sreg_tests::free_port();
        let mut child = Command::new("python3")
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .arg("--directory")
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 -m http.server");
        let url = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Self { child, url };
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("python3 -m http.server did not start on port {port}");
    }
}

impl Drop for StaticFiles {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn source_mode_without_cargo_says_so_and_installs_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let bin_dir = tmp.path().join("bin");
    let root = workspace_root();
    let out = install(
        tmp.path(),
        &[
            "--source",
            root.to_str().unwrap(),
            "--bin-dir",
            bin_dir.to_str().unwrap(),
        ],
        &[("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cargo is not installed"),
        "{}",
        text(&out)
    );
    assert!(entries(&bin_dir).is_empty());
}

/// Ignored by default: cargo, building in the workspace's target folder,
/// re-links target/debug/sreg and sreg-server, which the other tests run
/// meanwhile; and on a fresh clone, `cargo install` of each crate alone
/// resolves features per crate and may rebuild dependencies that
/// `cargo build --workspace` built with other features (minutes). Measured
/// 4.8 s on a warm target folder. Run it alone:
/// `cargo test -p sreg-tests --test install -- --ignored`.
#[test]
#[ignore = "runs cargo in the shared target folder (re-links the binaries other tests use); run alone with --ignored"]
fn source_mode_builds_and_installs_both_binaries_with_cargo() {
    let tmp = tempfile::tempdir().unwrap();
    let bin_dir = tmp.path().join("bin");
    // The test binaries' target folder, so cargo reuses what is built.
    let target = bin("sreg")
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .to_path_buf();
    let started = Instant::now();
    let out = install(
        tmp.path(),
        &[
            "--source",
            workspace_root().to_str().unwrap(),
            "--debug",
            "--bin-dir",
            bin_dir.to_str().unwrap(),
        ],
        &[("CARGO_TARGET_DIR", target.to_str().unwrap())],
    );
    eprintln!("install.sh --source took {:?}", started.elapsed());
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(version_of(&bin_dir.join("sreg")), version_of(&bin("sreg")));
    assert!(version_of(&bin_dir.join("sreg-server")).starts_with("sreg-server "));
    let mut names = entries(&bin_dir);
    names.sort();
    assert_eq!(names, ["sreg", "sreg-server"]);
}
