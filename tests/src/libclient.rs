//! The real Go library client (Debian's `container-library-client` 1.2.2, the
//! code behind `apptainer push/pull library://` in Apptainer 1.0) driven from
//! Rust tests.
//!
//! `tests/clients/libclient/main.go` wraps the client's high-level calls in a
//! small command (`version`, `push`, `pull`, `pull-concurrent`, `image`,
//! `search`, `delete`, `token-status`) that prints JSON. [`LibClient`] builds it
//! once per test process, offline in GOPATH mode against `/usr/share/gocode`
//! (scripts/setup installs Go and the client's sources), caches the binary as
//! `$CARGO_TARGET_DIR/sreg-tests-go/libclient-<hash of main.go>` and runs it:
//!
//! ```no_run
//! # use sreg_tests::libclient::LibClient;
//! # let (url, file) = ("http://127.0.0.1:1", std::path::Path::new("x.sif"));
//! let lib = LibClient::new(url, Some("TOKEN"));
//! lib.push(file, "alice/tools/samtools", &["latest", "1.17"]).unwrap();
//! let pulled = lib.pull("alice/tools/samtools:1.17", &file.with_extension("out")).unwrap();
//! assert_eq!(pulled.hash, pulled.image.hash);
//! ```
//!
//! What the client sends: shared/docs/library-api.md. Note that this client
//! sends `Authorization: BEARER <token>` (upper case), while `token-status`
//! (Apptainer's own code, not the library's) sends `Bearer`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::workspace_root;

/// Exit code of the Go program when the library answered 404.
const EXIT_NOT_FOUND: i32 = 3;

/// A library client bound to one server and token.
#[derive(Debug, Clone)]
pub struct LibClient {
    base_url: String,
    token: Option<String>,
    arch: String,
    concurrency: u32,
    part_size: u64,
    description: String,
    user_agent: Option<String>,
}

/// Why a command failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LibClientError {
    /// The library answered 404 (the client's `ErrNotFound`).
    NotFound { stderr: String },
    /// Any other failure: transport error, non-accepted status, bad checksum.
    Failed { code: Option<i32>, stderr: String },
}

impl LibClientError {
    pub fn stderr(&self) -> &str {
        match self {
            Self::NotFound { stderr } | Self::Failed { stderr, .. } => stderr,
        }
    }
}

impl fmt::Display for LibClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound { stderr } => write!(f, "not found: {}", stderr.trim()),
            Self::Failed { code, stderr } => {
                write!(f, "libclient failed ({code:?}): {}", stderr.trim())
            }
        }
    }
}

impl std::error::Error for LibClientError {}

/// `GET /version` as the client decoded it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct VersionInfo {
    pub version: String,
    #[serde(rename = "apiVersion")]
    pub api_version: String,
}

/// An image as the client decoded it (the client's own `Image` struct,
/// re-encoded by the Go program, so every key is present).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Image {
    pub id: String,
    pub hash: String,
    pub description: String,
    /// Container id.
    pub container: String,
    pub size: i64,
    pub uploaded: bool,
    #[serde(default)]
    pub arch: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub entity_name: String,
    #[serde(default)]
    pub collection_name: String,
    #[serde(default)]
    pub container_name: String,
    #[serde(default)]
    pub fingerprints: Vec<String>,
}

/// `push` result.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Pushed {
    #[serde(rename = "ref")]
    pub reference: String,
    pub arch: String,
    #[serde(deserialize_with = "null_as_empty")]
    pub tags: Vec<String>,
    /// `sha256.<hex>` of the pushed file.
    pub hash: String,
    pub size: u64,
    /// The `_complete` reply, if the server sent one and an upload happened.
    pub complete: Option<UploadComplete>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct UploadComplete {
    pub quota: Quota,
    #[serde(rename = "containerUrl")]
    pub container_url: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Quota {
    #[serde(rename = "quotaTotal")]
    pub total: i64,
    #[serde(rename = "quotaUsage")]
    pub usage: i64,
}

/// `pull` / `pull-concurrent` result. The Go program already checked `hash`
/// against `image.hash` (as Apptainer does) unless the hash is not sha256.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Pulled {
    pub path: PathBuf,
    /// `sha256.<hex>` of the downloaded file.
    pub hash: String,
    pub size: u64,
    /// The image record looked up before the download.
    pub image: Image,
}

/// `search` result; only images are typed (they are all Apptainer prints).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SearchResults {
    #[serde(rename = "entity", default, deserialize_with = "null_as_empty")]
    pub entities: Vec<serde_json::Value>,
    #[serde(rename = "collection", default, deserialize_with = "null_as_empty")]
    pub collections: Vec<serde_json::Value>,
    #[serde(rename = "container", default, deserialize_with = "null_as_empty")]
    pub containers: Vec<serde_json::Value>,
    #[serde(rename = "image", default, deserialize_with = "null_as_empty")]
    pub images: Vec<Image>,
}

/// `token-status` result: 200 means valid, anything else is a rejection.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TokenStatus {
    pub status: u16,
    pub valid: bool,
    /// Apptainer's wording ("Invalid Credentials" for 404, ...).
    pub message: String,
}

// Go encodes a nil slice as `null`.
fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

impl LibClient {
    /// A client for the library API at `base_url` (the `libraryAPI.uri`; a
    /// path prefix is fine). `None` sends no `Authorization` header.
    pub fn new(base_url: &str, token: Option<&str>) -> Self {
        Self {
            base_url: base_url.to_string(),
            token: token.map(str::to_string),
            arch: "amd64".into(),
            concurrency: 3,
            part_size: 256 * 1024,
            description: String::new(),
            user_agent: None,
        }
    }

    /// The architecture sent on image requests and push tags (default amd64).
    pub fn with_arch(mut self, arch: &str) -> Self {
        self.arch = arch.into();
        self
    }

    /// Workers for [`LibClient::pull_concurrent`] (default 3).
    pub fn with_concurrency(mut self, workers: u32) -> Self {
        self.concurrency = workers;
        self
    }

    /// Part size for [`LibClient::pull_concurrent`] (default 256 KiB).
    pub fn with_part_size(mut self, bytes: u64) -> Self {
        self.part_size = bytes;
        self
    }

    /// Description sent when push creates the image.
    pub fn with_description(mut self, description: &str) -> Self {
        self.description = description.into();
        self
    }

    /// User-Agent (default: an Apptainer-like string naming sreg-tests).
    pub fn with_user_agent(mut self, ua: &str) -> Self {
        self.user_agent = Some(ua.into());
        self
    }

    /// `GetVersion`: `GET {base}/version`.
    pub fn version(&self) -> Result<VersionInfo, LibClientError> {
        self.json(&["version"])
    }

    /// `UploadImage` of `file` to `reference` (`entity/collection/container`)
    /// with `tags`, as `apptainer push file library://reference:tags` does.
    pub fn push(
        &self,
        file: &Path,
        reference: &str,
        tags: &[&str],
    ) -> Result<Pushed, LibClientError> {
        let file = file.to_str().expect("UTF-8 path");
        self.json(&["push", file, reference, &tags.join(",")])
    }

    /// `GetImage` then `DownloadImage` (single stream) of `reference`
    /// (`[entity/[collection/]]container[:tag]`) into `out`, then the sha256
    /// check. `out` does not exist afterwards unless the pull succeeded.
    pub fn pull(&self, reference: &str, out: &Path) -> Result<Pulled, LibClientError> {
        self.json(&["pull", reference, out.to_str().expect("UTF-8 path")])
    }

    /// As [`LibClient::pull`] with `ConcurrentDownloadImage`: ranged GETs in
    /// parallel when the server answers the imagefile request with a 303.
    pub fn pull_concurrent(&self, reference: &str, out: &Path) -> Result<Pulled, LibClientError> {
        self.json(&[
            "pull-concurrent",
            reference,
            out.to_str().expect("UTF-8 path"),
        ])
    }

    /// `GetImage`: `GET {base}/v1/images/{reference}?arch=...`.
    pub fn image(&self, reference: &str) -> Result<Image, LibClientError> {
        self.json(&["image", reference])
    }

    /// `Search` for `word` (at least 3 characters, else the client refuses).
    pub fn search(&self, word: &str) -> Result<SearchResults, LibClientError> {
        self.json(&["search", word])
    }

    /// `DeleteImage` of `reference` (`entity/collection/container:tag`) for `arch`.
    pub fn delete(&self, reference: &str, arch: &str) -> Result<(), LibClientError> {
        self.json::<serde_json::Value>(&["delete", reference, arch])
            .map(drop)
    }

    /// `GET {base}/v1/token-status` with `Bearer <token>`, as `apptainer
    /// remote login` checks a token.
    pub fn token_status(&self) -> Result<TokenStatus, LibClientError> {
        self.json(&["token-status"])
    }

    /// Runs the Go program with this client's flags and `args` as is.
    pub fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(binary());
        cmd.arg("-url")
            .arg(&self.base_url)
            .arg("-arch")
            .arg(&self.arch)
            .arg("-concurrency")
            .arg(self.concurrency.to_string())
            .arg("-part-size")
            .arg(self.part_size.to_string())
            .arg("-description")
            .arg(&self.description);
        if let Some(token) = &self.token {
            cmd.arg("-token").arg(token);
        }
        if let Some(ua) = &self.user_agent {
            cmd.arg("-user-agent").arg(ua);
        }
        cmd.args(args);
        cmd.output()
            .unwrap_or_else(|e| panic!("run {}: {e}", binary().display()))
    }

    fn json<T: DeserializeOwned>(&self, args: &[&str]) -> Result<T, LibClientError> {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        match out.status.code() {
            Some(0) => Ok(serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
                // The Go program encodes its own structs: a mismatch is a harness bug.
                panic!(
                    "libclient {args:?} printed unexpected JSON ({e}): {}",
                    String::from_utf8_lossy(&out.stdout)
                )
            })),
            Some(EXIT_NOT_FOUND) => Err(LibClientError::NotFound { stderr }),
            code => Err(LibClientError::Failed { code, stderr }),
        }
    }
}

/// The built Go program (built on first use in this process).
pub fn binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(build)
}

fn build() -> PathBuf {
    let src = workspace_root().join("tests/clients/libclient");
    let main = std::fs::read(src.join("main.go")).expect("read tests/clients/libclient/main.go");
    let dir = target_dir().join("sreg-tests-go");
    // Named by the source's hash: an edited main.go gets a new binary, and
    // concurrent test processes agree on the name.
    let bin = dir.join(format!("libclient-{:016x}", fnv1a(&main)));
    if bin.is_file() {
        return bin;
    }
    std::fs::create_dir_all(&dir).expect("create sreg-tests-go");
    let tmp = dir.join(format!("libclient.tmp-{}", std::process::id()));
    let go = ["/usr/bin/go", "/usr/lib/go/bin/go"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .expect("Go is not installed: run scripts/setup");
    let out = Command::new(go)
        .args(["build", "-o"])
        .arg(&tmp)
        .arg(".")
        .current_dir(&src)
        // GOPATH mode against Debian's packaged sources: no module download.
        .env("GO111MODULE", "off")
        .env("GOPATH", "/usr/share/gocode")
        .env("GOPROXY", "off")
        .env("GOFLAGS", "")
        .env("GOENV", "off")
        .env("GOCACHE", dir.join("gocache"))
        .output()
        .expect("run go build");
    assert!(
        out.status.success(),
        "go build of {} failed (run scripts/setup for golang-github-apptainer-container-library-client-dev):\n{}",
        src.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    // Rename is atomic: a parallel build of the same source just wins or loses.
    std::fs::rename(&tmp, &bin).expect("move the built libclient into place");
    // Binaries of earlier versions of main.go are of no further use.
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path != bin && name.to_string_lossy().starts_with("libclient-") {
            let _ = std::fs::remove_file(path);
        }
    }
    bin
}

/// `$CARGO_TARGET_DIR`, else the `target/` this test binary runs from
/// (`target/<profile>/deps/<test>`).
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("current_exe");
    exe.ancestors()
        .nth(3)
        .expect("test binary lives in target/<profile>/deps")
        .to_path_buf()
}

/// FNV-1a: stable across Rust versions, unlike `DefaultHasher`.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
