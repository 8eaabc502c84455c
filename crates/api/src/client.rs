//! The async client of `/api/v1`, used by `sreg` and by the tests.
//!
//! Bodies stream both ways: an image is read from its file in chunks while
//! it is sent, and written to a temporary file beside its destination while
//! it is received, hashed on the way, and renamed into place only when its
//! sha256 matches the registry's.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use url::Url;

use crate::reference::Reference;
use crate::v1::*;

/// Reads and network chunks of this size.
const CHUNK: usize = 256 << 10;

/// Called with the number of bytes just sent, received or hashed.
pub type Progress = Arc<dyn Fn(u64) + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The registry answered with an error envelope (or a bare status).
    #[error("{message} (HTTP {status})")]
    Api { status: u16, message: String },
    #[error("cannot reach the registry at {url}: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("registry URL {0:?} is not an http(s) URL")]
    BadUrl(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the downloaded file's sha256 is {got}, but the registry says the image is {expected}: nothing was written"
    )]
    Checksum { expected: String, got: String },
    #[error(
        "received {got} bytes, but the image has {expected}: the download was cut short; nothing was written"
    )]
    Truncated { expected: u64, got: u64 },
    #[error("the registry sent an answer that is not what /api/v1 promises: {0}")]
    Decode(String),
}

impl ClientError {
    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// What [`Client::download`] wrote.
#[derive(Debug, Clone)]
pub struct Downloaded {
    pub path: PathBuf,
    pub size: u64,
    pub sha256: String,
    pub image: Image,
}

/// A client of one registry, with or without a token.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
}

impl Client {
    /// `base` is the registry's URL (`https://sreg.example.org`, or with a
    /// path prefix).
    pub fn new(base: &str, token: Option<String>) -> Result<Self> {
        let mut url = Url::parse(base.trim()).map_err(|_| ClientError::BadUrl(base.into()))?;
        if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
            return Err(ClientError::BadUrl(base.into()));
        }
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("sreg/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|source| ClientError::Http {
                url: base.into(),
                source,
            })?;
        Ok(Self {
            http,
            base: url,
            token: token.filter(|t| !t.is_empty()),
        })
    }

    /// The registry's base URL, ending in `/`.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// The absolute URL of a path relative to the registry (`api/v1/me`).
    pub fn url(&self, path: &str) -> Url {
        self.base
            .join(path.trim_start_matches('/'))
            .expect("API paths are relative URLs")
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let rb = self.http.request(method, self.url(path));
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    async fn send(&self, rb: RequestBuilder) -> Result<Response> {
        let (client, request) = rb.build_split();
        let request = request.map_err(|source| ClientError::Http {
            url: self.base.to_string(),
            source,
        })?;
        let url = request.url().to_string();
        let response = client
            .execute(request)
            .await
            .map_err(|source| ClientError::Http { url, source })?;
        check(response).await
    }

    async fn json<T: DeserializeOwned>(&self, rb: RequestBuilder) -> Result<T> {
        let response = self.send(rb).await?;
        let bytes = response.bytes().await.map_err(|source| ClientError::Http {
            url: self.base.to_string(),
            source,
        })?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()))
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.json(self.request(Method::GET, path)).await
    }

    async fn with_body<T: DeserializeOwned, B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> Result<T> {
        self.json(self.request(method, path).json(body)).await
    }

    /// `GET /api/v1/me`: who the token belongs to.
    pub async fn me(&self) -> Result<Me> {
        self.get("api/v1/me").await
    }

    pub async fn collections(&self) -> Result<Vec<Collection>> {
        self.get("api/v1/collections").await
    }

    pub async fn collection(&self, entity: &str, name: &str) -> Result<Collection> {
        self.get(&format!("api/v1/collections/{entity}/{name}"))
            .await
    }

    pub async fn create_collection(&self, new: &NewCollection) -> Result<Collection> {
        self.with_body(Method::POST, "api/v1/collections", new)
            .await
    }

    /// A container; `path` is `ENTITY/COLLECTION/CONTAINER` or `COLLECTION/CONTAINER`.
    pub async fn container(&self, path: &str) -> Result<Container> {
        self.get(&format!("api/v1/containers/{path}")).await
    }

    /// An image by reference, optionally for one architecture.
    pub async fn image(&self, reference: &Reference, arch: Option<&str>) -> Result<Image> {
        self.get(&with_arch(
            &format!("api/v1/images/{}", ref_path(reference)),
            arch,
        ))
        .await
    }

    pub async fn search(&self, word: &str) -> Result<SearchResults> {
        let mut url = self.url("api/v1/search");
        url.query_pairs_mut().append_pair("q", word);
        self.json(self.with_token(self.http.get(url))).await
    }

    fn with_token(&self, rb: RequestBuilder) -> RequestBuilder {
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    pub async fn sizes(&self) -> Result<Vec<CollectionSize>> {
        self.get("api/v1/sizes").await
    }

    pub async fn stars(&self) -> Result<Vec<Starred>> {
        self.get("api/v1/stars").await
    }

    /// Stars a container (`ENTITY/COLLECTION/CONTAINER` or `COLLECTION/CONTAINER`).
    pub async fn star(&self, container: &str) -> Result<StarState> {
        self.json(self.request(Method::PUT, &format!("api/v1/stars/{container}")))
            .await
    }

    pub async fn unstar(&self, container: &str) -> Result<StarState> {
        self.json(self.request(Method::DELETE, &format!("api/v1/stars/{container}")))
            .await
    }

    pub async fn tokens(&self) -> Result<Vec<TokenInfo>> {
        self.get("api/v1/tokens").await
    }

    pub async fn create_token(&self, new: &NewToken) -> Result<CreatedToken> {
        self.with_body(Method::POST, "api/v1/tokens", new).await
    }

    pub async fn revoke_token(&self, id: i64) -> Result<TokenInfo> {
        self.json(self.request(Method::DELETE, &format!("api/v1/tokens/{id}")))
            .await
    }

    pub async fn users(&self) -> Result<Vec<User>> {
        self.get("api/v1/users").await
    }

    pub async fn create_user(&self, new: &NewUser) -> Result<User> {
        self.with_body(Method::POST, "api/v1/users", new).await
    }

    pub async fn teams(&self) -> Result<Vec<Team>> {
        self.get("api/v1/teams").await
    }

    pub async fn create_team(&self, new: &NewTeam) -> Result<Team> {
        self.with_body(Method::POST, "api/v1/teams", new).await
    }

    pub async fn add_team_member(&self, team: &str, member: &NewTeamMember) -> Result<Team> {
        self.with_body(Method::PUT, &format!("api/v1/teams/{team}/members"), member)
            .await
    }

    /// `POST /api/v1/uploads`: checks the push and opens an upload session.
    pub async fn start_upload(&self, request: &UploadRequest) -> Result<UploadSession> {
        self.with_body(Method::POST, "api/v1/uploads", request)
            .await
    }

    /// Streams a build log file into an upload session.
    pub async fn upload_log(&self, session: &UploadSession, path: &Path) -> Result<LogInfo> {
        let (body, size) = file_body(path, None, None).await?;
        self.json(
            self.request(Method::PUT, &format!("api/v1/uploads/{}/log", session.id))
                .header(CONTENT_TYPE, "text/plain; charset=utf-8")
                .header(CONTENT_LENGTH, size)
                .body(body),
        )
        .await
    }

    /// Streams the SIF into an upload session and returns the published
    /// image. For a session opened without a sha256 the file is hashed as
    /// it is sent (read once), then the hash is confirmed with `commit`,
    /// and the registry publishes only if its own hash of what it received
    /// is the same.
    pub async fn upload_image(
        &self,
        session: &UploadSession,
        path: &Path,
        progress: Option<Progress>,
    ) -> Result<Image> {
        let hasher = Arc::new(std::sync::Mutex::new(Sha256::new()));
        let (body, size) = file_body(path, progress, Some(hasher.clone())).await?;
        let response = self
            .send(
                self.request(Method::PUT, &format!("api/v1/uploads/{}/image", session.id))
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_LENGTH, size)
                    .body(body),
            )
            .await?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|source| ClientError::Http {
            url: self.base.to_string(),
            source,
        })?;
        if status != StatusCode::ACCEPTED {
            // Published at once: the session declared the sha256.
            return serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()));
        }
        let sent = {
            let h = hasher
                .lock()
                .map_err(|_| ClientError::Decode("hasher poisoned".into()))?;
            hex::encode(h.clone().finalize())
        };
        self.with_body(
            Method::POST,
            &format!("api/v1/uploads/{}/commit", session.id),
            &UploadCommit { sha256: sent },
        )
        .await
    }

    /// The raw download of an image (whole, or a byte range such as `0-99`).
    pub async fn file_response(
        &self,
        reference: &Reference,
        arch: Option<&str>,
        range: Option<&str>,
    ) -> Result<Response> {
        let path = with_arch(&format!("api/v1/files/{}", ref_path(reference)), arch);
        let mut rb = self.request(Method::GET, &path);
        if let Some(r) = range {
            rb = rb.header(reqwest::header::RANGE, format!("bytes={r}"));
        }
        self.send(rb).await
    }

    /// The build log of an image, as text.
    pub async fn build_log(&self, reference: &Reference, arch: Option<&str>) -> Result<String> {
        let path = with_arch(&format!("api/v1/logs/{}", ref_path(reference)), arch);
        let response = self.send(self.request(Method::GET, &path)).await?;
        response.text().await.map_err(|source| ClientError::Http {
            url: self.base.to_string(),
            source,
        })
    }

    /// Downloads an image to `out`: streams into a temporary file beside it,
    /// hashing on the way, and renames it into place only when the sha256
    /// and size match the registry's. On any failure `out` is untouched and
    /// the temporary file is removed.
    pub async fn download(
        &self,
        reference: &Reference,
        arch: Option<&str>,
        out: &Path,
        progress: Option<Progress>,
    ) -> Result<Downloaded> {
        let image = self.image(reference, arch).await?;
        // Pull by content: the tag cannot move between the two requests.
        let pinned = Reference {
            host: None,
            entity: Some(image.entity.clone()),
            collection: image.collection.clone(),
            container: image.container.clone(),
            tag: image.hash.clone(),
        };
        let response = self.file_response(&pinned, None, None).await?;
        let io = |source| ClientError::Io {
            path: out.to_path_buf(),
            source,
        };
        let dir = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = out
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "image.sif".into());
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".partial")
            .tempfile_in(&dir)
            .map_err(|source| ClientError::Io {
                path: dir.clone(),
                source,
            })?;
        // Network chunks are small; write the file in large blocks.
        let mut file = tokio::io::BufWriter::with_capacity(
            1 << 20,
            tokio::fs::File::from_std(temp.as_file().try_clone().map_err(io)?),
        );
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|source| ClientError::Http {
                url: self.base.to_string(),
                source,
            })?;
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(io)?;
            size += chunk.len() as u64;
            if let Some(p) = &progress {
                p(chunk.len() as u64);
            }
        }
        file.flush().await.map_err(io)?;
        file.get_ref().sync_all().await.map_err(io)?;
        drop(file);
        let got = hex::encode(hasher.finalize());
        let expected_size = u64::try_from(image.size).unwrap_or(0);
        if size != expected_size {
            return Err(ClientError::Truncated {
                expected: expected_size,
                got: size,
            });
        }
        if got != image.sha256 {
            return Err(ClientError::Checksum {
                expected: image.sha256.clone(),
                got,
            });
        }
        temp.persist(out).map_err(|e| ClientError::Io {
            path: out.to_path_buf(),
            source: e.error,
        })?;
        Ok(Downloaded {
            path: out.to_path_buf(),
            size,
            sha256: got,
            image,
        })
    }
}

/// A piece of a build job's log (`GET /api/v1/builds/{id}/log?offset=N`).
#[derive(Debug, Clone)]
pub struct LogChunk {
    pub bytes: Vec<u8>,
    /// The offset to ask for next.
    pub next_offset: u64,
    /// The job is over and the log will not grow.
    pub complete: bool,
    /// `X-Sreg-Build-State`, when sent.
    pub state: Option<String>,
}

/// Build projects, build jobs and the agent protocol (see [`crate::builds`]).
impl Client {
    pub async fn projects(&self) -> Result<Vec<crate::builds::BuildProject>> {
        self.get("api/v1/projects").await
    }

    pub async fn project(&self, id: i64) -> Result<crate::builds::BuildProject> {
        self.get(&format!("api/v1/projects/{id}")).await
    }

    pub async fn create_project(
        &self,
        new: &crate::builds::NewBuildProject,
    ) -> Result<crate::builds::CreatedBuildProject> {
        self.with_body(Method::POST, "api/v1/projects", new).await
    }

    pub async fn update_project(
        &self,
        id: i64,
        change: &crate::builds::NewBuildProject,
    ) -> Result<crate::builds::BuildProject> {
        self.with_body(Method::PATCH, &format!("api/v1/projects/{id}"), change)
            .await
    }

    /// Deletes a project; its answer body, if any, is ignored.
    pub async fn delete_project(&self, id: i64) -> Result<()> {
        self.send(self.request(Method::DELETE, &format!("api/v1/projects/{id}")))
            .await
            .map(drop)
    }

    /// `GET /api/v1/builds`, newest first, optionally for one project id
    /// and one state.
    pub async fn builds(
        &self,
        project: Option<i64>,
        state: Option<crate::builds::JobState>,
        limit: Option<u32>,
    ) -> Result<Vec<crate::builds::BuildJob>> {
        let mut url = self.url("api/v1/builds");
        {
            let mut q = url.query_pairs_mut();
            if let Some(p) = project {
                q.append_pair("project", &p.to_string());
            }
            if let Some(s) = state {
                q.append_pair("state", s.as_str());
            }
            if let Some(l) = limit {
                q.append_pair("limit", &l.to_string());
            }
        }
        self.json(self.with_token(self.http.get(url))).await
    }

    pub async fn build_job(&self, id: i64) -> Result<crate::builds::BuildJob> {
        self.get(&format!("api/v1/builds/{id}")).await
    }

    pub async fn cancel_build(&self, id: i64) -> Result<crate::builds::BuildJob> {
        self.json(self.request(Method::POST, &format!("api/v1/builds/{id}/cancel")))
            .await
    }

    /// The log of a build job from byte `offset`.
    pub async fn build_job_log(&self, id: i64, offset: u64) -> Result<LogChunk> {
        let response = self
            .send(self.request(
                Method::GET,
                &format!("api/v1/builds/{id}/log?offset={offset}"),
            ))
            .await?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let complete = header("x-sreg-log-complete").as_deref() == Some("true");
        let state = header("x-sreg-build-state");
        let bytes = response.bytes().await.map_err(|source| ClientError::Http {
            url: self.base.to_string(),
            source,
        })?;
        Ok(LogChunk {
            next_offset: offset + bytes.len() as u64,
            bytes: bytes.to_vec(),
            complete,
            state,
        })
    }

    /// `POST /api/v1/agent/lease`: a job, or `None` when none fits (204).
    pub async fn agent_lease(
        &self,
        request: &crate::builds::LeaseRequest,
    ) -> Result<Option<crate::builds::Lease>> {
        let response = self
            .send(
                self.request(Method::POST, "api/v1/agent/lease")
                    .json(request),
            )
            .await?;
        if response.status() == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        let bytes = response.bytes().await.map_err(|source| ClientError::Http {
            url: self.base.to_string(),
            source,
        })?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// A heartbeat; 409 (an [`ClientError::Api`]) when the lease is lost.
    pub async fn agent_heartbeat(
        &self,
        job: i64,
        lease: &crate::builds::LeaseRef,
    ) -> Result<crate::builds::HeartbeatAnswer> {
        self.with_body(
            Method::POST,
            &format!("api/v1/agent/jobs/{job}/heartbeat"),
            lease,
        )
        .await
    }

    /// Appends log bytes that start at `offset` of the job's log.
    pub async fn agent_log(
        &self,
        job: i64,
        lease_id: &str,
        offset: u64,
        bytes: Vec<u8>,
    ) -> Result<crate::builds::LogAppended> {
        self.json(
            self.request(Method::POST, &format!("api/v1/agent/jobs/{job}/log"))
                .header(CONTENT_TYPE, "text/plain; charset=utf-8")
                .header("X-Sreg-Lease", lease_id)
                .header("X-Sreg-Log-Offset", offset.to_string())
                .body(bytes),
        )
        .await
    }

    pub async fn agent_finish(
        &self,
        job: i64,
        finish: &crate::builds::FinishRequest,
    ) -> Result<crate::builds::BuildJob> {
        self.with_body(
            Method::POST,
            &format!("api/v1/agent/jobs/{job}/finish"),
            finish,
        )
        .await
    }
}

/// Turns an answer that is not a success into [`ClientError::Api`], with
/// the message of the registry's error envelope.
async fn check(response: Response) -> Result<Response> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let text = response.text().await.unwrap_or_default();
    let message = match serde_json::from_str::<ErrorBody>(&text) {
        Ok(body) => body.error.message,
        Err(_) if text.trim().is_empty() => status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_string(),
        Err(_) => text.chars().take(300).collect(),
    };
    Err(ClientError::Api {
        status: status.as_u16(),
        message,
    })
}

fn ref_path(r: &Reference) -> String {
    format!("{}:{}", r.path(), r.tag)
}

fn with_arch(path: &str, arch: Option<&str>) -> String {
    match arch {
        Some(a) if !a.is_empty() => format!("{path}?arch={a}"),
        _ => path.to_string(),
    }
}

/// A streaming body over a file, and the file's size; the bytes go through
/// `hasher` on their way out when one is given.
async fn file_body(
    path: &Path,
    progress: Option<Progress>,
    hasher: Option<Arc<std::sync::Mutex<Sha256>>>,
) -> Result<(reqwest::Body, u64)> {
    let io = |source| ClientError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = tokio::fs::File::open(path).await.map_err(io)?;
    let size = file.metadata().await.map_err(io)?.len();
    let stream =
        tokio_util::io::ReaderStream::with_capacity(file, CHUNK).inspect_ok(move |chunk| {
            if let Some(h) = &hasher
                && let Ok(mut h) = h.lock()
            {
                h.update(chunk);
            }
            if let Some(p) = &progress {
                p(chunk.len() as u64);
            }
        });
    Ok((reqwest::Body::wrap_stream(stream), size))
}

/// Whether an error means "not found" (404).
pub fn is_not_found(e: &ClientError) -> bool {
    e.status() == Some(StatusCode::NOT_FOUND.as_u16())
}
