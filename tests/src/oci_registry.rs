//! Debian's `docker-registry` (distribution 2.8), started by a test on a
//! free port with its storage in a temp folder, plain HTTP on 127.0.0.1,
//! killed on drop; and images made by hand in Rust (tar.gz layers, a config,
//! a manifest, optionally an index) pushed to it over the distribution API.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::free_port;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// A running `docker-registry serve`.
pub struct OciRegistry {
    child: Child,
    dir: tempfile::TempDir,
    /// `127.0.0.1:PORT`
    pub host: String,
    http: reqwest::blocking::Client,
    /// The credentials the registry wants, if any.
    login: Option<(String, String)>,
}

impl OciRegistry {
    /// Starts the registry and waits until `GET /v2/` answers 200.
    pub fn start() -> OciRegistry {
        Self::start_with(None)
    }

    /// Starts a registry that wants HTTP Basic credentials (its htpasswd
    /// backend) for everything; the helper's own pushes send them.
    pub fn start_with_login(user: &str, password: &str) -> OciRegistry {
        Self::start_with(Some((user, password)))
    }

    fn start_with(login: Option<(&str, &str)>) -> OciRegistry {
        let exe = which("docker-registry").unwrap_or_else(|| {
            panic!("docker-registry is not installed: apt-get install docker-registry")
        });
        let dir = tempfile::tempdir().expect("temp dir");
        let auth = match login {
            Some((user, password)) => {
                let hash = bcrypt::hash(password, 4).expect("bcrypt");
                let file = dir.path().join("htpasswd");
                std::fs::write(&file, format!("{user}:{hash}\n")).expect("write htpasswd");
                format!(
                    "auth:\n  htpasswd:\n    realm: sreg-test\n    path: {}\n",
                    file.display()
                )
            }
            None => String::new(),
        };
        let login = login.map(|(u, p)| (u.to_string(), p.to_string()));
        // Another test may take the port between free_port() and the
        // registry's bind: try a few.
        for _ in 0..5 {
            let port = free_port();
            let host = format!("127.0.0.1:{port}");
            let config = dir.path().join("config.yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n{auth}",
                    dir.path().join("data").display()
                ),
            )
            .expect("write registry config");
            let log = std::fs::File::create(dir.path().join("registry.log")).expect("log file");
            let mut child = Command::new(&exe)
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log file"))
                .stderr(log)
                .spawn()
                .expect("start docker-registry");
            let http = reqwest::blocking::Client::new();
            if wait_ready(&mut child, &http, &host, login.is_some()) {
                return OciRegistry {
                    child,
                    dir,
                    host,
                    http,
                    login,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!(
            "docker-registry did not start on a free port; it said:\n{}",
            std::fs::read_to_string(dir.path().join("registry.log")).unwrap_or_default()
        );
    }

    /// `http://127.0.0.1:PORT{path}`
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.host)
    }

    /// Where the registry keeps a blob's bytes (to corrupt it in a test:
    /// the registry serves what is there without checking).
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
        self.dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// A request with the registry's credentials, when it wants them.
    fn request(&self, method: reqwest::Method, url: String) -> reqwest::blocking::RequestBuilder {
        let r = self.http.request(method, url);
        match &self.login {
            Some((u, p)) => r.basic_auth(u, Some(p)),
            None => r,
        }
    }

    /// What the registry logged, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Uploads a blob in one piece (POST, then PUT with the digest) and
    /// returns its digest.
    pub fn push_blob(&self, repo: &str, bytes: &[u8]) -> String {
        let digest = digest(bytes);
        let r = self
            .request(
                reqwest::Method::POST,
                self.url(&format!("/v2/{repo}/blobs/uploads/")),
            )
            .send()
            .expect("start blob upload");
        assert_eq!(r.status().as_u16(), 202, "start upload: {:?}", r.text());
        let location = r
            .headers()
            .get("location")
            .expect("upload Location")
            .to_str()
            .unwrap()
            .to_string();
        let location = if location.starts_with('/') {
            self.url(&location)
        } else {
            location
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        let r = self
            .request(
                reqwest::Method::PUT,
                format!("{location}{sep}digest={digest}"),
            )
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .expect("finish blob upload");
        assert_eq!(r.status().as_u16(), 201, "finish upload: {:?}", r.text());
        digest
    }

    /// Puts a manifest or index under `reference` (a tag or digest) and
    /// returns its digest.
    pub fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> String {
        let r = self
            .request(
                reqwest::Method::PUT,
                self.url(&format!("/v2/{repo}/manifests/{reference}")),
            )
            .header("content-type", media_type)
            .body(body.to_vec())
            .send()
            .expect("put manifest");
        assert_eq!(r.status().as_u16(), 201, "put manifest: {:?}", r.text());
        digest(body)
    }

    /// Pushes an image (its layers, config, manifest) tagged `tag`, and
    /// returns the manifest's digest.
    pub fn push_image(&self, repo: &str, tag: &str, image: &TestImage) -> String {
        let (manifest, _) = self.push_image_parts(repo, image);
        self.push_manifest(repo, tag, OCI_MANIFEST, &manifest)
    }

    /// Pushes the images of an index, one per platform (`(os, arch)`), and
    /// the index tagged `tag`; returns the index's digest.
    pub fn push_index(&self, repo: &str, tag: &str, images: &[(&str, &str, &TestImage)]) -> String {
        let mut manifests = Vec::new();
        for (os, arch, image) in images {
            let (manifest, _) = self.push_image_parts(repo, image);
            let d = self.push_manifest(repo, &digest(&manifest), OCI_MANIFEST, &manifest);
            manifests.push(json!({
                "mediaType": OCI_MANIFEST,
                "digest": d,
                "size": manifest.len(),
                "platform": {"os": os, "architecture": arch},
            }));
        }
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": manifests,
        }))
        .unwrap();
        self.push_manifest(repo, tag, OCI_INDEX, &index)
    }

    /// Pushes layers and config; returns the manifest bytes (not pushed)
    /// and the config's digest.
    fn push_image_parts(&self, repo: &str, image: &TestImage) -> (Vec<u8>, String) {
        let mut layers = Vec::new();
        for layer in &image.layers {
            let d = self.push_blob(repo, layer);
            layers.push(json!({"mediaType": OCI_LAYER_GZIP, "digest": d, "size": layer.len()}));
        }
        let config = serde_json::to_vec(&image.config).unwrap();
        let config_digest = self.push_blob(repo, &config);
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config.len()},
            "layers": layers,
        }))
        .unwrap();
        (manifest, config_digest)
    }
}

impl Drop for OciRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `sha256:<hex>`
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// An image made in a test: gzip-compressed layer tars, lowest first, and
/// its config JSON.
pub struct TestImage {
    pub layers: Vec<Vec<u8>>,
    pub config: Value,
}

impl TestImage {
    /// An image from layers, with a config naming their diff ids and the
    /// given runtime config (`Env`, `Entrypoint`, `Cmd`...).
    pub fn new(arch: &str, layers: Vec<LayerBuilder>, run: Value) -> TestImage {
        let mut diff_ids = Vec::new();
        let mut blobs = Vec::new();
        for layer in layers {
            let tar = layer.tar();
            diff_ids.push(digest(&tar));
            let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
            std::io::Write::write_all(&mut gz, &tar).unwrap();
            blobs.push(gz.finish().unwrap());
        }
        TestImage {
            layers: blobs,
            config: json!({
                "architecture": arch,
                "os": "linux",
                "config": run,
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
            }),
        }
    }
}

/// A layer tar, entry by entry (owner root, fixed time).
pub struct LayerBuilder(tar::Builder<Vec<u8>>);

impl Default for LayerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl LayerBuilder {
    pub fn new() -> LayerBuilder {
        LayerBuilder(tar::Builder::new(Vec::new()))
    }

    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h
    }

    pub fn dir(mut self, path: &str) -> Self {
        let mut h = Self::header(tar::EntryType::Directory, 0o755, 0);
        self.0.append_data(&mut h, path, std::io::empty()).unwrap();
        self
    }

    pub fn file(self, path: &str, data: &[u8]) -> Self {
        self.file_mode(path, data, 0o644)
    }

    pub fn file_mode(mut self, path: &str, data: &[u8], mode: u32) -> Self {
        let mut h = Self::header(tar::EntryType::Regular, mode, data.len() as u64);
        self.0.append_data(&mut h, path, data).unwrap();
        self
    }

    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        let mut h = Self::header(tar::EntryType::Symlink, 0o777, 0);
        self.0.append_link(&mut h, path, target).unwrap();
        self
    }

    pub fn hardlink(mut self, path: &str, target: &str) -> Self {
        let mut h = Self::header(tar::EntryType::Link, 0o644, 0);
        self.0.append_link(&mut h, path, target).unwrap();
        self
    }

    /// `.wh.NAME` in `folder`: removes NAME of lower layers.
    pub fn whiteout(self, folder: &str, name: &str) -> Self {
        self.file(&format!("{folder}/.wh.{name}"), b"")
    }

    /// `.wh..wh..opq` in `folder`: hides all its lower content.
    pub fn opaque(self, folder: &str) -> Self {
        self.file(&format!("{folder}/.wh..wh..opq"), b"")
    }

    pub fn tar(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

/// The image the build tests pull: a static busybox as `/bin/sh` (so
/// `%post` can run), and a second layer that deletes a file (whiteout),
/// empties a folder (opaque) and writes through an absolute symlink.
///
/// | path | after both layers |
/// |---|---|
/// | `/etc/doomed` | gone (whiteout) |
/// | `/opt/app/old`, `/opt/app/sub/deep` | gone (opaque `/opt/app`) |
/// | `/opt/app/new` | `new` |
/// | `/usr/lib/added` | `through the link`, written as `/lib/added` |
/// | `/bin/ls` | a hard link to `/bin/busybox` |
/// | `/etc/sreg-test` | `layer two` |
pub fn sample_image(arch: &str) -> TestImage {
    sample_image_with(arch, true)
}

/// [`sample_image`], with or without the write through `/lib` (which
/// containers-storage cannot diff back out, so images meant for podman
/// leave it out).
pub fn sample_image_with(arch: &str, write_through_link: bool) -> TestImage {
    let busybox = std::fs::read("/bin/busybox")
        .expect("/bin/busybox is missing: apt-get install busybox-static");
    let one = LayerBuilder::new()
        .dir("bin/")
        .file_mode("bin/busybox", &busybox, 0o755)
        .symlink("bin/sh", "busybox")
        .dir("etc/")
        .file("etc/sreg-test", b"layer one")
        .file("etc/doomed", b"to be whited out")
        .dir("opt/")
        .dir("opt/app/")
        .file("opt/app/old", b"hidden by the opaque marker")
        .dir("opt/app/sub/")
        .file("opt/app/sub/deep", b"hidden too")
        .dir("usr/")
        .dir("usr/lib/")
        .symlink("lib", "/usr/lib")
        .dir("tmp/");
    let mut two = LayerBuilder::new()
        .whiteout("etc", "doomed")
        .file("etc/sreg-test", b"layer two")
        .dir("opt/app/")
        .opaque("opt/app")
        .file("opt/app/new", b"new")
        .hardlink("bin/ls", "bin/busybox");
    if write_through_link {
        two = two.file("lib/added", b"through the link");
    }
    TestImage::new(
        arch,
        vec![one, two],
        json!({
            "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "SREG_TEST_VAR=from the image config"],
            "Entrypoint": ["/bin/sh", "-c"],
            "Cmd": ["echo hello from the image"],
            "WorkingDir": "/opt/app",
            "Labels": {"org.example.source": "sreg-tests"},
        }),
    )
}

/// The GOARCH name of the machine the tests run on.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// Waits for `GET /v2/`: 200, or 401 from a registry that wants a login.
fn wait_ready(
    child: &mut Child,
    http: &reqwest::blocking::Client,
    host: &str,
    login: bool,
) -> bool {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if let Ok(r) = http.get(format!("http://{host}/v2/")).send()
            && r.status().as_u16() == if login { 401 } else { 200 }
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| PathBuf::from(d).join(name))
        .chain([PathBuf::from("/usr/bin").join(name)])
        .find(|p| p.is_file())
}
