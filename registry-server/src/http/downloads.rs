//! The registry serves the `sreg` client itself, so that CI runners and
//! offline sites install the client that matches their registry from it:
//!
//! - `GET /install.sh`: `scripts/install.sh` with its default registry set
//!   to this server's public URL (`curl -fsSL URL/install.sh | sh`).
//! - `GET /downloads/sreg/linux-ARCH`: the binary, streamed.
//! - `GET /downloads/sreg/linux-ARCH.sha256`: `HEX  sreg` (sha256sum format).
//!
//! The binaries are `sreg-linux-ARCH` files in the downloads folder; for the
//! host's own architecture, a `sreg` beside the running `sreg-server` (where
//! install.sh puts both) serves when that folder has none.

use std::collections::HashMap;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use tokio_util::io::ReaderStream;

use crate::serve::AppState;

/// Architectures a client may ask for (`uname -m` names; `amd64` and
/// `arm64` are accepted for them). The request's arch is matched against
/// this list, so it never reaches a file path as is.
pub const ARCHES: [&str; 2] = ["x86_64", "aarch64"];

/// The install script, with the line that `default_registry_line` replaces.
const INSTALL_SH: &str = include_str!("../../../scripts/install.sh");
const DEFAULT_REGISTRY_PREFIX: &str = "DEFAULT_REGISTRY=";

/// Read size while hashing and streaming.
const BLOCK: usize = 256 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/install.sh", axum::routing::get(install_sh))
        .route("/downloads/sreg/{file}", axum::routing::get(download))
}

async fn install_sh(State(state): State<AppState>) -> Response {
    let script = render_install_sh(state.config.public_url.as_str());
    (
        [(header::CONTENT_TYPE, "text/x-shellscript; charset=utf-8")],
        script,
    )
        .into_response()
}

/// The install script with `DEFAULT_REGISTRY='URL'`, the URL shell-quoted.
pub fn render_install_sh(public_url: &str) -> String {
    let url = public_url.trim_end_matches('/');
    // A URL never holds a NUL, the one thing that cannot be quoted.
    let quoted = shlex::try_quote(url).unwrap_or_default();
    let mut out = String::with_capacity(INSTALL_SH.len() + url.len());
    let mut done = false;
    for line in INSTALL_SH.split_inclusive('\n') {
        if !done && line.starts_with(DEFAULT_REGISTRY_PREFIX) {
            out.push_str(DEFAULT_REGISTRY_PREFIX);
            out.push_str(&quoted);
            out.push('\n');
            done = true;
        } else {
            out.push_str(line);
        }
    }
    out
}

/// What `/downloads/sreg/{file}` asks for.
#[derive(Debug, PartialEq, Eq)]
pub struct Wanted {
    pub arch: &'static str,
    pub checksum: bool,
}

/// Parses `linux-ARCH` or `linux-ARCH.sha256`; `Err` says what exists.
pub fn parse_file_name(file: &str) -> Result<Wanted, String> {
    let (name, checksum) = match file.strip_suffix(".sha256") {
        Some(name) => (name, true),
        None => (file, false),
    };
    name.strip_prefix("linux-")
        .map(|arch| match arch {
            // Debian's and Go's names for the same machines.
            "amd64" => "x86_64",
            "arm64" => "aarch64",
            other => other,
        })
        .and_then(|arch| ARCHES.iter().find(|a| **a == arch))
        .map(|arch| Wanted { arch, checksum })
        .ok_or_else(|| {
            let known: Vec<String> = ARCHES.iter().map(|a| format!("linux-{a}")).collect();
            format!(
                "unknown platform {name:?}: sreg clients exist for {}\n",
                known.join(", ")
            )
        })
}

/// Where the client for `arch` is: the downloads folder's
/// `sreg-linux-ARCH`, else (host arch only) `sreg` beside this executable.
pub fn locate(downloads_dir: &Path, arch: &str, exe: Option<&Path>) -> Option<PathBuf> {
    let file = downloads_dir.join(format!("sreg-linux-{arch}"));
    if file.is_file() {
        return Some(file);
    }
    if arch != std::env::consts::ARCH || !cfg!(target_os = "linux") {
        return None;
    }
    let sibling = exe?.parent()?.join("sreg");
    sibling.is_file().then_some(sibling)
}

/// Hashes of served files, keyed by path and checked against size and
/// modification time, so that each version of a file is read whole once.
#[derive(Debug, Default)]
pub struct Sha256Cache {
    entries: Mutex<HashMap<PathBuf, Hashed>>,
}

/// A file's size and mtime when it was hashed, and its hex sha256.
#[derive(Debug)]
struct Hashed {
    len: u64,
    mtime: Option<SystemTime>,
    hex: String,
}

impl Sha256Cache {
    /// The hex sha256 of `file` (open at `path`, positioned anywhere),
    /// which is left positioned at its start.
    pub fn hash(&self, path: &Path, file: &mut std::fs::File) -> std::io::Result<String> {
        let meta = file.metadata()?;
        let (len, mtime) = (meta.len(), meta.modified().ok());
        if let Some(h) = self.entries.lock().unwrap().get(path)
            && (h.len, h.mtime) == (len, mtime)
        {
            return Ok(h.hex.clone());
        }
        // Hashed without the lock held: a second first request hashes too,
        // which costs time but nothing else.
        file.rewind()?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; BLOCK];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        file.rewind()?;
        let hex = hex::encode(hasher.finalize());
        self.entries.lock().unwrap().insert(
            path.to_path_buf(),
            Hashed {
                len,
                mtime,
                hex: hex.clone(),
            },
        );
        Ok(hex)
    }
}

fn cache() -> &'static Sha256Cache {
    static CACHE: OnceLock<Sha256Cache> = OnceLock::new();
    CACHE.get_or_init(Sha256Cache::default)
}

fn not_found(message: String) -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message,
    )
        .into_response()
}

async fn download(
    State(state): State<AppState>,
    UrlPath(file): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let wanted = match parse_file_name(&file) {
        Ok(w) => w,
        Err(message) => return not_found(message),
    };
    let exe = std::env::current_exe().ok();
    let Some(path) = locate(&state.config.downloads_dir, wanted.arch, exe.as_deref()) else {
        // The folder's path goes to the log only: clients need not know it.
        tracing::warn!(
            downloads_dir = %state.config.downloads_dir.display(),
            "no sreg client for linux-{} to serve", wanted.arch
        );
        return not_found(format!(
            "this registry has no sreg client for linux-{arch}: its administrator can put \
             one, named sreg-linux-{arch}, in the registry's downloads folder (setting \
             downloads_dir, env SREG_DOWNLOADS_DIR; default <data-dir>/downloads)\n",
            arch = wanted.arch
        ));
    };
    let opened = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || {
            let mut file = std::fs::File::open(&path)?;
            let hex = cache().hash(&path, &mut file)?;
            let len = file.metadata()?.len();
            Ok::<_, std::io::Error>((file, hex, len))
        })
        .await
    };
    let (file, hex, len) = match opened {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            tracing::error!(path = %path.display(), "cannot read sreg client: {e}");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot read the sreg client\n",
            )
                .into_response();
        }
        Err(e) => {
            tracing::error!("hashing task failed: {e}");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let etag = HeaderValue::from_str(&format!("\"{hex}\"")).expect("hex is a valid header");
    // A new client may replace the file at any time: caches must ask again.
    let common = [
        (header::ETAG, etag.clone()),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    if wanted.checksum {
        return (
            common,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{hex}  sreg\n"),
        )
            .into_response();
    }
    if headers.get(header::IF_NONE_MATCH) == Some(&etag) {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    // Only the bytes that were hashed: a file that grows meanwhile must not
    // break Content-Length.
    let reader = tokio::io::AsyncReadExt::take(tokio::fs::File::from_std(file), len);
    (
        common,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (header::CONTENT_LENGTH, HeaderValue::from(len)),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"sreg\""),
            ),
        ],
        Body::from_stream(ReaderStream::with_capacity(reader, BLOCK)),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_arches_are_accepted() {
        assert_eq!(
            parse_file_name("linux-x86_64"),
            Ok(Wanted {
                arch: "x86_64",
                checksum: false
            })
        );
        assert_eq!(
            parse_file_name("linux-aarch64.sha256"),
            Ok(Wanted {
                arch: "aarch64",
                checksum: true
            })
        );
        assert_eq!(
            parse_file_name("linux-amd64.sha256").unwrap().arch,
            "x86_64"
        );
        assert_eq!(parse_file_name("linux-arm64").unwrap().arch, "aarch64");
        for bad in [
            "linux-mips",
            "linux-x86_64.sig",
            "darwin-x86_64",
            "linux-..",
            "linux-x86_64/../../etc/passwd",
            "",
        ] {
            let err = parse_file_name(bad).unwrap_err();
            assert!(err.contains("linux-x86_64, linux-aarch64"), "{bad}: {err}");
        }
    }

    #[test]
    fn downloads_folder_first_then_sibling_of_the_server_for_the_host_arch() {
        let tmp = tempfile::tempdir().unwrap();
        let downloads = tmp.path().join("downloads");
        let bin = tmp.path().join("bin");
        std::fs::create_dir_all(&downloads).unwrap();
        std::fs::create_dir_all(&bin).unwrap();
        let server = bin.join("sreg-server");
        let host = std::env::consts::ARCH;
        let other = ARCHES.iter().find(|a| **a != host).unwrap();

        assert_eq!(locate(&downloads, host, Some(&server)), None);
        std::fs::write(bin.join("sreg"), "sibling").unwrap();
        assert_eq!(
            locate(&downloads, host, Some(&server)),
            Some(bin.join("sreg"))
        );
        // The sibling runs on the host only: never offered for another arch.
        assert_eq!(locate(&downloads, other, Some(&server)), None);

        std::fs::write(downloads.join(format!("sreg-linux-{host}")), "x").unwrap();
        std::fs::write(downloads.join(format!("sreg-linux-{other}")), "y").unwrap();
        assert_eq!(
            locate(&downloads, host, Some(&server)),
            Some(downloads.join(format!("sreg-linux-{host}")))
        );
        assert_eq!(
            locate(&downloads, other, None),
            Some(downloads.join(format!("sreg-linux-{other}")))
        );
    }

    #[test]
    fn hash_is_cached_until_size_or_mtime_change() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("sreg-linux-x86_64");
        std::fs::write(&path, "abc").unwrap();
        let cache = Sha256Cache::default();
        let sha_abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let mut f = std::fs::File::open(&path).unwrap();
        assert_eq!(cache.hash(&path, &mut f).unwrap(), sha_abc);

        // Same size, same mtime: the cached hash, even though the bytes
        // differ (which shows the file was not read again).
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::fs::write(&path, "xyz").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        let mut f = std::fs::File::open(&path).unwrap();
        assert_eq!(cache.hash(&path, &mut f).unwrap(), sha_abc);

        // A new mtime: hashed again.
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(mtime + std::time::Duration::from_secs(5))
            .unwrap();
        let mut f = std::fs::File::open(&path).unwrap();
        let hex = cache.hash(&path, &mut f).unwrap();
        assert_eq!(hex, hex::encode(Sha256::digest(b"xyz")));
        // The file is left at its start, ready to stream.
        let mut rest = String::new();
        f.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "xyz");
    }

    #[test]
    fn install_script_gets_the_registry_shell_quoted() {
        let s = render_install_sh("https://reg.example.org/");
        assert!(
            s.lines()
                .any(|l| l == "DEFAULT_REGISTRY=https://reg.example.org"
                    || l == "DEFAULT_REGISTRY='https://reg.example.org'"),
            "{s}"
        );
        let s = render_install_sh("http://h/it's;$(rm -rf x)");
        let line = s
            .lines()
            .find(|l| l.starts_with(DEFAULT_REGISTRY_PREFIX))
            .unwrap();
        // The shell reads the value back unchanged.
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{line}\nprintf %s \"$DEFAULT_REGISTRY\""))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "http://h/it's;$(rm -rf x)"
        );
        assert_eq!(
            s.lines()
                .filter(|l| l.starts_with(DEFAULT_REGISTRY_PREFIX))
                .count(),
            1
        );
    }
}
