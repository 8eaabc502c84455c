//! sregistry-cli 0.2.39 (PyPI `sregistry[registry]`, installed into `.venv`
//! by scripts/setup), the "registry" client of Singularity Registry, driven
//! from Rust tests.
//!
//! [`SregistryCli::new`] makes a private temporary folder holding everything
//! the client reads or writes: the secrets file (legacy form
//! `{"registry":{"token","username","base"}}`, mode 0600), its SQLite
//! database, its image storage and credential cache, `HOME`, and one working
//! folder per pull. The client finds its default folders through the passwd
//! entry, not `$HOME`, so each is set explicitly; otherwise a pull would leave
//! files in the real home.
//!
//! ```no_run
//! # use sreg_tests::sregistry_cli::SregistryCli;
//! # let (url, file) = ("http://127.0.0.1:1", std::path::Path::new("x.sif"));
//! let cli = SregistryCli::new(url, "alice", "TOKEN");
//! assert!(cli.push(file, "tools/samtools:1.17").pushed());
//! let pulled = cli.pull("tools/samtools:1.17");
//! assert_eq!(std::fs::read(pulled.path.unwrap()).unwrap(), std::fs::read(file).unwrap());
//! ```
//!
//! Exit statuses alone say little: `push` exits 0 when the upload step fails
//! and `pull` exits 0 when the download URL does not answer, so the results
//! below also parse what the client printed. Wire format:
//! shared/docs/ci-and-clients.md §1.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::workspace_root;

/// A configured sregistry-cli for one registry and user.
pub struct SregistryCli {
    dir: tempfile::TempDir,
    base_url: String,
    pulls: AtomicUsize,
}

/// What one run of `sregistry` did.
#[derive(Debug, Clone)]
pub struct CliRun {
    pub args: Vec<String>,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CliRun {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Panics with the whole output unless the exit status is 0.
    pub fn assert_success(&self) -> &Self {
        assert!(self.success(), "{self}");
        self
    }
}

impl std::fmt::Display for CliRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sregistry {:?}: {}\n--- stdout\n{}\n--- stderr\n{}",
            self.args, self.status, self.stdout, self.stderr
        )
    }
}

/// `sregistry push` result.
#[derive(Debug, Clone)]
pub struct PushResult {
    pub run: CliRun,
    /// Status of `POST /api/upload/chunked_upload`, as printed.
    pub collection_status: Option<u16>,
    /// Status of the multipart `POST /upload`, as printed.
    pub upload_status: Option<u16>,
}

impl PushResult {
    /// Both steps answered 200 (the exit status alone ignores the upload).
    pub fn pushed(&self) -> bool {
        self.run.success() && self.collection_status == Some(200) && self.upload_status == Some(200)
    }
}

/// `sregistry pull --no-cache` result.
#[derive(Debug, Clone)]
pub struct PullResult {
    pub run: CliRun,
    /// The file the client wrote, when it says it succeeded and the file exists.
    pub path: Option<PathBuf>,
}

/// `sregistry delete -f` result.
#[derive(Debug, Clone)]
pub struct DeleteResult {
    pub run: CliRun,
    /// The DELETE's status, as printed (the client exits 0 on a 403 too).
    pub status: Option<u16>,
}

impl SregistryCli {
    /// Writes the secrets file for `username`/`token` at `base_url` (without
    /// `/api`: the client appends it).
    pub fn new(base_url: &str, username: &str, token: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("sreg-sregistry-cli")
            .tempdir()
            .expect("tempdir");
        // Private like a home folder: it ends up holding the token in several places.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
            .expect("chmod 0700");
        for sub in ["home", "db", "tmp"] {
            std::fs::create_dir(dir.path().join(sub)).expect("create sregistry folder");
        }
        let secrets = serde_json::json!({
            "registry": {"token": token, "username": username, "base": base_url}
        });
        // Created 0600 from the start: it holds the token.
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dir.path().join("secrets.json"))
            .expect("write secrets file");
        f.write_all(secrets.to_string().as_bytes())
            .expect("write secrets file");
        Self {
            dir,
            base_url: base_url.to_string(),
            pulls: AtomicUsize::new(0),
        }
    }

    /// The private folder holding everything this client touches.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `$SREGISTRY_CLIENT_SECRETS` (the client rewrites it, adding keys).
    pub fn secrets_path(&self) -> PathBuf {
        self.dir().join("secrets.json")
    }

    /// `$HOME` for the client.
    pub fn home(&self) -> PathBuf {
        self.dir().join("home")
    }

    /// `.venv/bin/sregistry` with this client's environment, in `cwd`.
    pub fn command(&self, cwd: &Path) -> Command {
        let exe = workspace_root().join(".venv/bin/sregistry");
        assert!(
            exe.is_file(),
            "{} is missing: run scripts/setup",
            exe.display()
        );
        let mut cmd = Command::new(exe);
        // Nothing from the developer's own sregistry set-up may leak in.
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            if k.starts_with("SREGISTRY_") || k.starts_with("SINGULARITY_") {
                cmd.env_remove(&*k);
            }
        }
        let db = self.dir().join("db");
        cmd.current_dir(cwd)
            .env("HOME", self.home())
            .env("SREGISTRY_CLIENT", "registry")
            .env("SREGISTRY_CLIENT_SECRETS", self.secrets_path())
            .env("SREGISTRY_DATABASE", &db)
            // These two default to ~/.singularity of the passwd entry, whatever
            // SREGISTRY_DATABASE and HOME say.
            .env("SREGISTRY_STORAGE", db.join("shub"))
            .env("SREGISTRY_CREDENTIALS_CACHE", &db)
            .env("SINGULARITY_CACHEDIR", self.dir().join("tmp"))
            .env("SREGISTRY_TMPDIR", self.dir().join("tmp"))
            .env("PYTHONDONTWRITEBYTECODE", "1");
        if self.base_url.starts_with("http://") {
            cmd.env("SREGISTRY_REGISTRY_NOHTTPS", "1");
        }
        cmd
    }

    /// Runs `sregistry ARGS...` in the private folder.
    pub fn run(&self, args: &[&str]) -> CliRun {
        self.run_in(self.dir(), args)
    }

    fn run_in(&self, cwd: &Path, args: &[&str]) -> CliRun {
        let out = self
            .command(cwd)
            .args(args)
            .output()
            .expect("run sregistry");
        CliRun {
            args: args.iter().map(|s| s.to_string()).collect(),
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `sregistry version`.
    pub fn version(&self) -> CliRun {
        self.run(&["version"])
    }

    /// `sregistry push --name NAME FILE` (NAME = `collection/image[:tag]`).
    pub fn push(&self, file: &Path, name: &str) -> PushResult {
        let file = std::path::absolute(file).expect("absolute path");
        let run = self.run(&["push", "--name", name, file.to_str().expect("UTF-8 path")]);
        // "[1. Collection return status 200 OK]", then "[Return status 200 Upload
        // Complete]" or "Upload failed: 403 Client Error: ...".
        let collection_status = status_after(&run.stdout, "[1. Collection return status ");
        let upload_status = status_after(&run.stdout, "[Return status ")
            .or_else(|| status_after(&run.stdout, "Upload failed: "));
        PushResult {
            run,
            collection_status,
            upload_status,
        }
    }

    /// `sregistry pull --no-cache NAME` in a fresh working folder: the image
    /// stays there (as `collection-image:tag.sif`) instead of moving into the
    /// client's storage.
    pub fn pull(&self, name: &str) -> PullResult {
        let n = self.pulls.fetch_add(1, Ordering::SeqCst);
        let work = self.dir().join(format!("pull-{n}"));
        std::fs::create_dir(&work).expect("create pull folder");
        let run = self.run_in(&work, &["pull", "--no-cache", name]);
        let path = run
            .stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("Success! "))
            .map(|p| work.join(p.trim()))
            .filter(|p| p.is_file());
        PullResult { run, path }
    }

    /// `sregistry search [QUERY]`.
    pub fn search(&self, query: Option<&str>) -> CliRun {
        match query {
            Some(q) => self.run(&["search", q]),
            None => self.run(&["search"]),
        }
    }

    /// `sregistry delete -f NAME` (no confirmation prompt).
    pub fn delete(&self, name: &str) -> DeleteResult {
        let run = self.run(&["delete", "-f", name]);
        // "Response 204, No Content"
        let status = status_after(&run.stdout, "Response ");
        DeleteResult { run, status }
    }
}

/// The number right after `marker` in `text`.
fn status_after(text: &str, marker: &str) -> Option<u16> {
    let rest = &text[text.find(marker)? + marker.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The `Authorization` value sregistry-cli sends:
/// `SREGISTRY-HMAC-SHA256 Credential=<kind>/<base64 user>/<ts>,Signature=<hex>`,
/// the signature being HMAC-SHA256(token, `<kind>|<collection>|<ts>|<image>|<tag>|`).
pub fn sregistry_auth_header(
    kind: &str,
    username: &str,
    token: &str,
    timestamp: &str,
    (collection, image, tag): (&str, &str, &str),
) -> String {
    let user = base64::engine::general_purpose::STANDARD.encode(username);
    let payload = format!("{kind}|{collection}|{timestamp}|{image}|{tag}|");
    let signature = hex::encode(hmac_sha256(token.as_bytes(), payload.as_bytes()));
    format!("SREGISTRY-HMAC-SHA256 Credential={kind}/{user}/{timestamp},Signature={signature}")
}

/// sregistry's timestamp: UTC to the hour, `%Y%m%dT%HZ`.
pub fn sregistry_timestamp(at: SystemTime) -> String {
    let secs = at.duration_since(UNIX_EPOCH).expect("after 1970").as_secs();
    let (days, hour) = (secs / 86_400, secs % 86_400 / 3600);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}{month:02}{day:02}T{hour:02}Z")
}

/// HMAC-SHA256 (RFC 2104), on top of the `sha2` the workspace already uses.
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |b: u8| k.map(|x| x ^ b);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(msg)
        .finalize();
    let outer = Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize();
    outer.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // A key longer than the block is hashed first (RFC 4231 case 6).
        assert_eq!(
            hex::encode(hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn auth_header_matches_the_verified_vector() {
        // shared/docs/ci-and-clients.md §1, checked against the real client.
        let h = sregistry_auth_header(
            "push",
            "vsoch",
            "abc123",
            "20240101T12Z",
            ("dinosaur", "hello", "latest"),
        );
        assert_eq!(
            h,
            "SREGISTRY-HMAC-SHA256 Credential=push/dnNvY2g=/20240101T12Z,\
             Signature=6289420768749d5647f8c20703d467a5598d0f8ca4f9c8cecf5006ae774eeae2"
        );
    }

    #[test]
    fn timestamp_is_utc_to_the_hour() {
        let at = |s| UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(
            sregistry_timestamp(at(1_704_110_400 + 59 * 60)),
            "20240101T12Z"
        );
        assert_eq!(sregistry_timestamp(at(0)), "19700101T00Z");
        // 2024-02-29 23:xx, a leap day.
        assert_eq!(sregistry_timestamp(at(1_709_251_199)), "20240229T23Z");
    }

    #[test]
    fn status_parsing() {
        let out = "\n[1. Collection return status 403 Forbidden]\n";
        assert_eq!(
            status_after(out, "[1. Collection return status "),
            Some(403)
        );
        assert_eq!(status_after(out, "[Return status "), None);
        assert_eq!(
            status_after("Upload failed: 413 Client Error: x.", "Upload failed: "),
            Some(413)
        );
    }
}
