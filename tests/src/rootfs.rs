//! A Debian root filesystem made by debootstrap, as a tarball cached under
//! `/var/tmp/sreg-test-cache` (keyed by suite and extra packages), so only
//! the first test run on a machine pays for debootstrap (~40 s).

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// Where expensive fixtures live between test runs.
pub const CACHE_DIR: &str = "/var/tmp/sreg-test-cache";

/// The Debian mirror debootstrap fetches from (`SREG_TEST_DEBIAN_MIRROR`
/// overrides it).
fn mirror() -> String {
    std::env::var("SREG_TEST_DEBIAN_MIRROR")
        .unwrap_or_else(|_| "http://deb.debian.org/debian".into())
}

/// A tarball (uncompressed, paths `./...`) of `debootstrap --variant=minbase
/// SUITE` with `include` packages added. Built once, atomically: concurrent
/// callers (other test threads or processes) wait on a lock and then find
/// the finished tarball.
pub fn debootstrap_minbase_tarball(suite: &str, include: &[&str]) -> PathBuf {
    let mut packages: Vec<&str> = include.to_vec();
    packages.sort_unstable();
    packages.dedup();
    let key = hex::encode(&Sha256::digest(packages.join(",").as_bytes())[..6]);
    let dir = Path::new(CACHE_DIR).join("debootstrap");
    std::fs::create_dir_all(&dir).expect("create the test cache folder");
    let tarball = dir.join(format!("{suite}-minbase-{key}.tar"));
    if tarball.is_file() {
        return tarball;
    }
    let _lock = machine_lock(&format!("sreg-test-debootstrap-{suite}-{key}"));
    if tarball.is_file() {
        return tarball;
    }
    let tmp = tempfile::Builder::new()
        .prefix(".building-")
        .tempdir_in(&dir)
        .expect("temp dir in the cache");
    let rootfs = tmp.path().join("rootfs");
    let mut debootstrap = Command::new("debootstrap");
    debootstrap.arg("--variant=minbase");
    if !packages.is_empty() {
        debootstrap.arg(format!("--include={}", packages.join(",")));
    }
    run(debootstrap.arg(suite).arg(&rootfs).arg(mirror()));
    let partial = tmp.path().join("rootfs.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&partial)
        .arg("."));
    std::fs::rename(&partial, &tarball).expect("move the tarball into the cache");
    tarball
}

/// An abstract unix socket as a machine-wide lock: the kernel frees it when
/// its holder exits, however it exits. Waits up to 10 minutes.
fn machine_lock(name: &str) -> UnixListener {
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("abstract socket name");
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        match UnixListener::bind_addr(&addr) {
            Ok(l) => return l,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("cannot take the lock {name}: {e}"),
        }
    }
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (run scripts/setup)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
