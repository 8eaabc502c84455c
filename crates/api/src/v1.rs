//! Wire types of the registry's own JSON API, `/api/v1` (described by the
//! OpenAPI document the server serves at `/api/openapi.json`).
//!
//! Times are RFC 3339 strings in UTC (`2026-01-31T12:00:00.000Z`). Sizes are
//! bytes. An image's `hash` is the library API's `sha256.<hex>`; `sha256` is
//! the bare lower-case hex of the same digest. Field names only ever get
//! added.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// Every error answer: `{"error":{"code":404,"message":"..."}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ErrorDetail {
    /// The HTTP status code, repeated.
    pub code: u16,
    /// What went wrong, and what to do about it.
    pub message: String,
}

/// A user account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct User {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub admin: bool,
    pub active: bool,
    pub created_at: String,
}

/// `GET /api/v1/me`: the caller and the teams they belong to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Me {
    #[serde(flatten)]
    pub user: User,
    pub teams: Vec<String>,
    /// The registry's name (`[registry] name`).
    pub registry: String,
}

/// `POST /api/v1/users` (admins only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub name: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub admin: bool,
}

/// `POST /api/v1/register`: create one's own account, where the registry's
/// registration is open.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SignUp {
    pub name: String,
    #[serde(default)]
    pub email: String,
}

/// The answer to `POST /api/v1/register`: the new account and its first
/// token (shown this once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SignedUp {
    pub user: User,
    pub token: CreatedToken,
}

/// The answer (202) to the image `PUT` of a session opened without a
/// sha256: the bytes are stored and checked, but not published until the
/// client confirms their hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct UploadReceived {
    /// Lower-case hex sha256 of the bytes the registry received.
    pub sha256: String,
    pub size: u64,
    /// `POST` an [`UploadCommit`] here.
    pub commit_url: String,
}

/// `POST /api/v1/uploads/{id}/commit`: the sha256 the client computed
/// while sending; the image is published only when it matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UploadCommit {
    pub sha256: String,
}

/// A team and its members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Team {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub created_at: String,
    pub members: Vec<TeamMember>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TeamMember {
    pub user: String,
    /// `owner` or `member`.
    pub role: String,
}

/// `POST /api/v1/teams` (admins only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewTeam {
    pub name: String,
    /// The user who owns the team.
    pub owner: String,
}

/// `PUT /api/v1/teams/{team}/members` (admins only): adds a member or changes their role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewTeamMember {
    pub user: String,
    /// `owner` or `member` (the default).
    #[serde(default)]
    pub role: Option<String>,
}

/// An API token, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TokenInfo {
    pub id: i64,
    pub name: String,
    /// The first characters of the token, to recognise it (`sreg_XXXXXXXX`).
    pub prefix: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
    /// `active`, `expired` or `revoked`.
    pub state: String,
}

/// `POST /api/v1/tokens`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// A label, 1 to 100 characters ("ci", "laptop").
    pub name: String,
    /// Lifetime such as `30d`, `12h` or `90min`; none: never expires.
    #[serde(default)]
    pub expires_in: Option<String>,
}

/// The answer to `POST /api/v1/tokens`: the only time the token is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CreatedToken {
    pub token: String,
    #[serde(flatten)]
    pub info: TokenInfo,
}

/// A collection of containers, owned by an entity (user or team).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Collection {
    pub id: i64,
    pub entity: String,
    pub name: String,
    pub description: String,
    pub private: bool,
    pub created_at: String,
    pub updated_at: String,
    pub downloads: i64,
    /// Names of its containers.
    pub containers: Vec<String>,
}

/// `POST /api/v1/collections`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewCollection {
    /// The owning user or team; default: the caller.
    #[serde(default)]
    pub entity: Option<String>,
    pub name: String,
    /// Default: the registry's `default_private`.
    #[serde(default)]
    pub private: Option<bool>,
}

/// A container: named images and the tags that point at them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Container {
    pub id: i64,
    pub entity: String,
    pub collection: String,
    pub name: String,
    pub description: String,
    pub private: bool,
    pub created_at: String,
    pub updated_at: String,
    pub downloads: i64,
    pub stars: i64,
    /// Whether the caller starred it (false for anonymous callers).
    pub starred: bool,
    pub tags: Vec<TagInfo>,
    /// Published images, oldest first.
    pub images: Vec<ImageSummary>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TagInfo {
    pub name: String,
    pub arch: String,
    /// `sha256.<hex>` of the image it points at.
    pub hash: String,
    pub frozen: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ImageSummary {
    pub hash: String,
    pub size: i64,
    pub arch: String,
    pub tags: Vec<String>,
    pub created_at: String,
    pub downloads: i64,
}

/// One image: a SIF in a container, with what the registry knows about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Image {
    pub id: i64,
    /// `ENTITY/COLLECTION/CONTAINER:TAG` (the tag asked for, or the first
    /// tag, or `sha256.<hex>` when untagged).
    pub reference: String,
    pub entity: String,
    pub collection: String,
    pub container: String,
    pub private: bool,
    /// `sha256.<hex>`
    pub hash: String,
    /// Lower-case hex sha256 of the file.
    pub sha256: String,
    pub size: i64,
    pub arch: String,
    /// Tags that point at this image.
    pub tags: Vec<String>,
    pub created_at: String,
    pub downloads: i64,
    /// Stars of its container.
    pub stars: i64,
    pub signed: bool,
    /// Fingerprints of the entities that signed the image (upper-case hex).
    #[serde(default)]
    pub fingerprints: Vec<String>,
    pub encrypted: bool,
    pub definition_file: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub labels: Option<serde_json::Value>,
    pub partitions: Vec<Partition>,
    /// Build metadata, when the push carried it.
    pub build: Option<BuildInfo>,
    /// Where to download the SIF (`GET`, `Range` supported).
    pub download_url: String,
    /// Where to read the build log, when one was pushed.
    pub log_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Partition {
    pub id: u32,
    pub fs_type: String,
    pub part_type: String,
    pub primary: bool,
    pub arch: String,
    pub size: i64,
}

/// What a builder says about how an image was made. Every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BuildMetadata {
    /// The recipe (definition file) text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipe: Option<String>,
    /// Its path in the repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipe_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// The host the build ran on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builder_host: Option<String>,
    /// `apptainer`, `singularity`, `native`, `docker`, `slurm`...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_version: Option<String>,
    /// RFC 3339, UTC (`...Z`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// RFC 3339, UTC (`...Z`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Seconds; computed from the two times when both are given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
    /// The CI service (`github`, `gitlab`, `circleci`, `travis`, `jenkins`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_provider: Option<String>,
    /// A link to the CI job or run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_url: Option<String>,
    /// Anything else (`--meta key=value` with other keys).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, String>,
}

/// Build metadata as stored with an image: what the builder said, plus
/// what the registry measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct BuildInfo {
    #[serde(flatten)]
    pub metadata: BuildMetadata,
    /// Size of the SIF, as received.
    pub size: i64,
    /// sha256 (hex) of the SIF, as received.
    pub sha256: String,
    /// The build log, stored as a blob.
    pub log: Option<LogInfo>,
    /// Who pushed.
    pub pushed_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LogInfo {
    pub size: i64,
    pub sha256: String,
}

/// `POST /api/v1/uploads`: what will be pushed. Everything is checked
/// before any byte is sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UploadRequest {
    /// `ENTITY/COLLECTION/CONTAINER[:TAG]` or `COLLECTION/CONTAINER[:TAG]`.
    pub reference: String,
    /// More tags to point at the image, besides the reference's.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Exact size of the SIF in bytes.
    pub size: u64,
    /// Lower-case hex sha256 of the SIF, when the client knows it before
    /// sending. Without it the client hashes while it sends, and confirms
    /// with `POST /api/v1/uploads/{id}/commit`: one read of the file instead
    /// of two.
    #[serde(default)]
    pub sha256: Option<String>,
    /// The SIF's architecture, as the client read it; the server checks it.
    #[serde(default)]
    pub arch: Option<String>,
    /// For a collection created by this push; default: the registry's setting.
    #[serde(default)]
    pub private: Option<bool>,
    #[serde(default)]
    pub build: Option<BuildMetadata>,
}

/// The answer to `POST /api/v1/uploads`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct UploadSession {
    pub id: String,
    /// The reference the image will have, with its entity resolved.
    pub reference: String,
    /// Whether the push will create the collection.
    pub creates_collection: bool,
    pub expires_at: String,
    /// `PUT` the raw SIF here (`Content-Length` required).
    pub image_url: String,
    /// Optionally, before the image: `PUT` the raw build log here.
    pub log_url: String,
}

/// `GET /api/v1/sizes`: bytes per visible collection, for a treemap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CollectionSize {
    pub entity: String,
    pub collection: String,
    pub private: bool,
    /// Total size of the distinct SIF blobs of its images (a blob shared by
    /// several images counts once).
    pub bytes: i64,
    pub containers: i64,
}

/// `GET /api/v1/search?q=WORD`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SearchResults {
    pub query: String,
    pub collections: Vec<CollectionHit>,
    pub containers: Vec<ContainerHit>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CollectionHit {
    pub entity: String,
    pub name: String,
    pub description: String,
    pub private: bool,
    pub containers: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ContainerHit {
    pub entity: String,
    pub collection: String,
    pub name: String,
    pub description: String,
    pub private: bool,
    pub tags: Vec<String>,
    pub downloads: i64,
    pub stars: i64,
}

/// The answer to starring or unstarring.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct StarState {
    pub starred: bool,
    pub stars: i64,
}

/// One starred container, in `GET /api/v1/stars`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Starred {
    pub entity: String,
    pub collection: String,
    pub container: String,
    pub stars: i64,
    pub starred_at: String,
}
