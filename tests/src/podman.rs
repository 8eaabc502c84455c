//! A real Docker-API engine for tests: `podman system service` on a unix
//! socket, with its own storage, run and lock folders in a temp dir (so
//! tests can run side by side and nothing on the host is touched), and the
//! two settings this machine needs (test-components.md §6): the runc runtime
//! and ulimits no higher than the hard limits root has here.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::rootfs;

/// Packages in the builder image the tests import: what `sreg build
/// --backend docker` needs inside (as scripts/docker/Dockerfile installs).
pub const BUILDER_PACKAGES: &[&str] = &[
    "squashfs-tools",
    "ca-certificates",
    "proot",
    "debootstrap",
    "debian-archive-keyring",
];

/// The name the tests give the imported builder image.
pub const BUILDER_IMAGE: &str = "localhost/sreg-test-builder:bookworm";

pub struct Podman {
    child: Child,
    dir: tempfile::TempDir,
    /// The API socket.
    pub socket: PathBuf,
}

impl Podman {
    /// Starts the service and waits until `/_ping` answers.
    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("sreg-podman")
            .tempdir()
            .expect("tempdir");
        let conf = dir.path().join("containers.conf");
        // lock_type "file" keeps the locks in this engine's tmpdir: the default
        // shared-memory locks are one segment per host, which a second engine
        // with a fresh tmpdir would reset under the first one's feet.
        std::fs::write(
            &conf,
            r#"[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
lock_type = "file"
cgroup_manager = "cgroupfs"
events_logger = "file"
"#,
        )
        .expect("write containers.conf");
        let socket = dir.path().join("podman.sock");
        let log = std::fs::File::create(dir.path().join("service.log")).expect("service log");
        let child = Command::new("podman")
            .args(storage_flags(dir.path()))
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", socket.display()))
            .env("CONTAINERS_CONF", &conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start `podman system service` (run scripts/setup to install podman and runc)");
        let podman = Podman { child, dir, socket };
        let deadline = Instant::now() + Duration::from_secs(30);
        while podman.try_request("GET", "/_ping").map(|r| r.0) != Some(200) {
            assert!(
                Instant::now() < deadline,
                "podman system service did not answer /_ping within 30 s:\n{}",
                podman.service_log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        podman
    }

    /// Starts the service with the builder image imported.
    pub fn with_builder_image() -> Self {
        let podman = Podman::start();
        podman.import(
            &rootfs::debootstrap_minbase_tarball("bookworm", BUILDER_PACKAGES),
            BUILDER_IMAGE,
        );
        podman
    }

    /// `DOCKER_HOST` for clients of this engine.
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// The podman CLI as a client of this service.
    pub fn cli(&self) -> Command {
        let mut cmd = Command::new("podman");
        cmd.arg("--url")
            .arg(self.docker_host())
            .env("CONTAINERS_CONF", self.dir.path().join("containers.conf"));
        cmd
    }

    /// Imports a root filesystem tarball as image `name`.
    pub fn import(&self, tarball: &Path, name: &str) {
        let out = self
            .cli()
            .arg("import")
            .arg(tarball)
            .arg(name)
            .output()
            .expect("podman import");
        assert!(
            out.status.success(),
            "podman import {} failed: {}",
            tarball.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Every container the engine has, running or not (Docker API
    /// `GET /containers/json?all=true`).
    pub fn containers(&self) -> Vec<serde_json::Value> {
        let (status, body) = self.request("GET", "/v1.41/containers/json?all=true");
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).expect("container list JSON")
    }

    /// The engine's version, as `GET /version` says it.
    pub fn version(&self) -> String {
        let (status, body) = self.request("GET", "/v1.41/version");
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let v: serde_json::Value = serde_json::from_slice(&body).expect("version JSON");
        v["Version"].as_str().expect("Version").to_string()
    }

    /// Whether the engine has image `name` (Docker API `/images/NAME/json`).
    pub fn has_image(&self, name: &str) -> bool {
        self.request("GET", &format!("/v1.41/images/{name}/json")).0 == 200
    }

    /// One HTTP/1.0 request over the socket: status and body.
    pub fn request(&self, method: &str, path: &str) -> (u16, Vec<u8>) {
        self.try_request(method, path)
            .unwrap_or_else(|| panic!("{method} {path}: no answer from podman"))
    }

    fn try_request(&self, method: &str, path: &str) -> Option<(u16, Vec<u8>)> {
        let mut stream = UnixStream::connect(&self.socket).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .ok()?;
        // HTTP/1.0: the server closes after the answer, so the body is
        // whatever follows the headers (no chunked encoding).
        write!(stream, "{method} {path} HTTP/1.0\r\nHost: podman\r\n\r\n").ok()?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).ok()?;
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&raw[..split]);
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        Some((status, raw[split + 4..].to_vec()))
    }

    pub fn service_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("service.log")).unwrap_or_default()
    }
}

/// Storage, run state and libpod's tmpdir, all inside `dir`.
fn storage_flags(dir: &Path) -> Vec<String> {
    vec![
        format!("--root={}", dir.join("root").display()),
        format!("--runroot={}", dir.join("run").display()),
        format!("--tmpdir={}", dir.join("tmp").display()),
    ]
}

impl Drop for Podman {
    fn drop(&mut self) {
        // Containers a failed test left behind go first, so their layers are
        // unmounted; then the service, then the storage's own mounts.
        let _ = Command::new("podman")
            .args(storage_flags(self.dir.path()))
            .args(["rm", "--all", "--force", "--time=0"])
            .env("CONTAINERS_CONF", self.dir.path().join("containers.conf"))
            .output();
        let _ = self.child.kill();
        let _ = self.child.wait();
        unmount_under(self.dir.path());
    }
}

/// Lazily unmounts every mount point under `dir`, deepest first.
fn unmount_under(dir: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<&str> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| Path::new(p).starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = Command::new("umount").args(["-l", p]).output();
    }
}
