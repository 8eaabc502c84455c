//! Build projects: a repository, branch and recipe globs, the collection
//! images go to, how to build, and where to report commit statuses. The
//! webhook secret and the forge token are stored sealed with the server's
//! key, each bound to its project and purpose.

use rand::Rng;
use sqlx::{AnyPool, FromRow};
use sreg_api::builds::{BuildProject, ForgeKind, NewBuildProject};

use super::{list_text, string_list, time};
use crate::db::now_ms;
use crate::error::{Error, Result};
use crate::model::accounts::validate_name;
use crate::model::conflict_if_taken;
use crate::sealing::Keys;

/// The backends an agent knows.
pub const BACKENDS: &[&str] = &["native", "apptainer", "docker", "slurm"];
const GITHUB_API: &str = "https://api.github.com";

/// A project as stored, with the names of its collection and owner.
#[derive(Debug, Clone, FromRow)]
pub struct Project {
    pub id: i64,
    pub name: String,
    pub repository: String,
    pub branch: String,
    /// JSON list.
    pub recipe_globs: String,
    pub collection_id: i64,
    /// `ENTITY/COLLECTION`.
    pub collection: String,
    pub backend: Option<String>,
    /// JSON list.
    pub agent_labels: String,
    pub forge: Option<String>,
    pub forge_api_url: Option<String>,
    pub forge_repository: Option<String>,
    pub has_forge_token: i64,
    pub has_webhook_secret: i64,
    pub poll_interval_seconds: Option<i64>,
    pub last_commit: Option<String>,
    pub owner_id: i64,
    pub owner: String,
    pub created_at: i64,
}

impl Project {
    pub fn recipe_globs(&self) -> Vec<String> {
        string_list(&self.recipe_globs)
    }

    pub fn agent_labels(&self) -> Vec<String> {
        string_list(&self.agent_labels)
    }

    pub fn forge(&self) -> Option<ForgeKind> {
        self.forge.as_deref().and_then(parse_forge)
    }

    /// The API view (never a secret, only whether there is one).
    pub fn to_api(&self) -> BuildProject {
        BuildProject {
            id: self.id,
            name: self.name.clone(),
            repository: self.repository.clone(),
            branch: self.branch.clone(),
            recipe_globs: self.recipe_globs(),
            collection: self.collection.clone(),
            backend: self.backend.clone(),
            agent_labels: self.agent_labels(),
            forge: self.forge(),
            forge_api_url: self.forge_api_url.clone(),
            forge_repository: self.forge_repository.clone(),
            has_forge_token: self.has_forge_token != 0,
            has_webhook_secret: self.has_webhook_secret != 0,
            poll_interval_seconds: self.poll_interval_seconds,
            last_commit: self.last_commit.clone(),
            owner: self.owner.clone(),
            created_at: time(self.created_at),
        }
    }
}

fn forge_name(f: ForgeKind) -> &'static str {
    match f {
        ForgeKind::Github => "github",
        ForgeKind::Gitlab => "gitlab",
        ForgeKind::Gitea => "gitea",
    }
}

fn parse_forge(s: &str) -> Option<ForgeKind> {
    match s {
        "github" => Some(ForgeKind::Github),
        "gitlab" => Some(ForgeKind::Gitlab),
        "gitea" => Some(ForgeKind::Gitea),
        _ => None,
    }
}

const SELECT: &str = "SELECT p.id, p.name, p.repository, p.branch, p.recipe_globs, p.collection_id,
        ce.name || '/' || c.name AS collection, p.backend, p.agent_labels, p.forge,
        p.forge_api_url, p.forge_repository,
        CAST(CASE WHEN p.forge_token_sealed IS NULL THEN 0 ELSE 1 END AS BIGINT) AS has_forge_token,
        CAST(CASE WHEN p.webhook_secret_sealed IS NULL THEN 0 ELSE 1 END AS BIGINT) AS has_webhook_secret,
        p.poll_interval_seconds, p.last_commit, p.owner_id, o.name AS owner, p.created_at
     FROM build_projects p
     JOIN collections c ON c.id = p.collection_id
     JOIN entities ce ON ce.id = c.entity_id
     JOIN entities o ON o.id = p.owner_id";

fn webhook_context(id: i64) -> Vec<u8> {
    format!("build project {id} webhook secret").into_bytes()
}

fn forge_token_context(id: i64) -> Vec<u8> {
    format!("build project {id} forge token").into_bytes()
}

/// The settings of a project other than its secrets, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub name: String,
    pub repository: String,
    pub branch: String,
    pub recipe_globs: Vec<String>,
    pub collection_id: i64,
    pub backend: Option<String>,
    pub agent_labels: Vec<String>,
    pub forge: Option<ForgeKind>,
    pub forge_api_url: Option<String>,
    pub forge_repository: Option<String>,
    pub poll_interval_seconds: Option<i64>,
}

impl Settings {
    /// The settings of a new project (the collection resolved by the
    /// caller, who checks access to it).
    pub fn new(new: &NewBuildProject, collection_id: i64) -> Result<Self> {
        let name = new
            .name
            .clone()
            .ok_or_else(|| Error::BadRequest("a project needs a name".into()))?;
        let repository = new
            .repository
            .clone()
            .ok_or_else(|| Error::BadRequest("a project needs a repository URL".into()))?;
        let s = Self {
            name,
            repository,
            branch: new.branch.clone().unwrap_or_else(|| "main".into()),
            recipe_globs: new.recipe_globs.clone().unwrap_or_default(),
            collection_id,
            backend: new.backend.clone().filter(|b| !b.is_empty()),
            agent_labels: new.agent_labels.clone().unwrap_or_default(),
            forge: new.forge,
            forge_api_url: new.forge_api_url.clone().filter(|u| !u.is_empty()),
            forge_repository: new.forge_repository.clone().filter(|r| !r.is_empty()),
            poll_interval_seconds: new.poll_interval_seconds.filter(|&p| p != 0),
        };
        s.checked()
    }

    /// A project's settings changed by a PATCH: absent fields keep their
    /// value; an empty string (or 0 for the poll interval) clears an
    /// optional one.
    pub fn patched(p: &Project, patch: &NewBuildProject, collection_id: i64) -> Result<Self> {
        fn opt(old: &Option<String>, new: &Option<String>) -> Option<String> {
            match new {
                Some(v) if v.is_empty() => None,
                Some(v) => Some(v.clone()),
                None => old.clone(),
            }
        }
        let s = Self {
            name: patch.name.clone().unwrap_or_else(|| p.name.clone()),
            repository: patch
                .repository
                .clone()
                .unwrap_or_else(|| p.repository.clone()),
            branch: patch.branch.clone().unwrap_or_else(|| p.branch.clone()),
            recipe_globs: patch
                .recipe_globs
                .clone()
                .unwrap_or_else(|| p.recipe_globs()),
            collection_id,
            backend: opt(&p.backend, &patch.backend),
            agent_labels: patch
                .agent_labels
                .clone()
                .unwrap_or_else(|| p.agent_labels()),
            forge: patch.forge.or(p.forge()),
            forge_api_url: opt(&p.forge_api_url, &patch.forge_api_url),
            forge_repository: opt(&p.forge_repository, &patch.forge_repository),
            poll_interval_seconds: match patch.poll_interval_seconds {
                Some(0) => None,
                Some(v) => Some(v),
                None => p.poll_interval_seconds,
            },
        };
        s.checked()
    }

    fn checked(mut self) -> Result<Self> {
        let bad = |m: String| Err(Error::BadRequest(m));
        validate_name("project", &self.name)?;
        check_repository(&self.repository)?;
        if !is_branch_name(&self.branch) {
            return bad(format!(
                "branch {:?} is not a valid git branch name",
                self.branch
            ));
        }
        if self.recipe_globs.len() > 100
            || self
                .recipe_globs
                .iter()
                .any(|g| g.is_empty() || g.len() > 255 || g.chars().any(char::is_control))
        {
            return bad(
                "recipe_globs takes at most 100 non-empty patterns of at most 255 bytes".into(),
            );
        }
        if let Some(b) = &self.backend
            && !BACKENDS.contains(&b.as_str())
        {
            return bad(format!(
                "backend {b:?} is not one of {}",
                BACKENDS.join(", ")
            ));
        }
        self.agent_labels.sort();
        self.agent_labels.dedup();
        if self.agent_labels.len() > 50 || !self.agent_labels.iter().all(|l| is_label(l)) {
            return bad(
                "agent_labels takes at most 50 labels of 1 to 64 letters, digits and . _ - : ="
                    .into(),
            );
        }
        match self.forge {
            None => {}
            Some(f) => {
                if self.forge_api_url.is_none() && f == ForgeKind::Github {
                    self.forge_api_url = Some(GITHUB_API.into());
                }
                let Some(api) = &self.forge_api_url else {
                    return bad(format!(
                        "forge {} needs forge_api_url (its API base, such as https://gitlab.example.org/api/v4)",
                        forge_name(f)
                    ));
                };
                let ok = url::Url::parse(api)
                    .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
                if !ok || api.len() > 2048 {
                    return bad(format!("forge_api_url {api:?} is not an http(s) URL"));
                }
                match &self.forge_repository {
                    Some(r) if r.len() <= 255 && !r.chars().any(char::is_whitespace) => {}
                    _ => {
                        return bad(
                            "a forge needs forge_repository: owner/name, or GitLab's project path or id".into(),
                        );
                    }
                }
            }
        }
        if let Some(p) = self.poll_interval_seconds
            && !(1..=7 * 24 * 3600).contains(&p)
        {
            return bad(
                "poll_interval_seconds must be between 1 and 604800 (0 or absent: no polling)"
                    .into(),
            );
        }
        Ok(self)
    }
}

fn is_branch_name(b: &str) -> bool {
    !b.is_empty()
        && b.len() <= 255
        && !b.starts_with('-')
        && !b.contains("..")
        && !b
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || "~^:?*[\\".contains(c))
}

fn is_label(l: &str) -> bool {
    (1..=64).contains(&l.len())
        && l.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-:=".contains(c))
}

fn check_repository(repo: &str) -> Result<()> {
    let url = url::Url::parse(repo).map_err(|_| {
        Error::BadRequest(format!(
            "repository {repo:?} is not a URL: give a clone URL (https://, git://, ssh:// or file://)"
        ))
    })?;
    if !matches!(url.scheme(), "https" | "http" | "git" | "ssh" | "file") {
        return Err(Error::BadRequest(format!(
            "repository {repo:?}: the scheme must be https, http, git, ssh or file"
        )));
    }
    if url.scheme() != "file" && !url.has_host() {
        return Err(Error::BadRequest(format!(
            "repository {repo:?} has no host"
        )));
    }
    // A password in the URL would be stored and shown in clear.
    if url.password().is_some() {
        return Err(Error::BadRequest(
            "the repository URL holds a password: give the URL without credentials".into(),
        ));
    }
    if repo.len() > 2048 {
        return Err(Error::BadRequest("the repository URL is too long".into()));
    }
    Ok(())
}

fn check_secret(name: &str, s: &str, min: usize) -> Result<()> {
    if s.len() < min || s.len() > 4096 || s.chars().any(char::is_control) {
        return Err(Error::BadRequest(format!(
            "{name} must be {min} to 4096 characters, without control characters"
        )));
    }
    Ok(())
}

/// A new webhook secret: 32 random bytes as hex.
fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Creates a project; returns it with its webhook secret (the given one or
/// a new random one), the only time the secret leaves the registry.
pub async fn create(
    db: &AnyPool,
    keys: &Keys,
    owner_id: i64,
    s: &Settings,
    webhook_secret: Option<&str>,
    forge_token: Option<&str>,
) -> Result<(Project, String)> {
    if let Some(w) = webhook_secret {
        check_secret("webhook_secret", w, 16)?;
    }
    let forge_token = forge_token.filter(|t| !t.is_empty());
    if let Some(t) = forge_token {
        check_secret("forge_token", t, 1)?;
    }
    let secret = webhook_secret.map_or_else(new_secret, str::to_string);
    let mut tx = db.begin().await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO build_projects (name, repository, branch, recipe_globs, collection_id,
            backend, agent_labels, forge, forge_api_url, forge_repository,
            poll_interval_seconds, owner_id, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
    )
    .bind(&s.name)
    .bind(&s.repository)
    .bind(&s.branch)
    .bind(list_text(&s.recipe_globs))
    .bind(s.collection_id)
    .bind(&s.backend)
    .bind(list_text(&s.agent_labels))
    .bind(s.forge.map(forge_name))
    .bind(&s.forge_api_url)
    .bind(&s.forge_repository)
    .bind(s.poll_interval_seconds)
    .bind(owner_id)
    .bind(now_ms())
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| conflict_if_taken(e, || format!("a project named {:?} exists", s.name)))?;
    // Sealed with the id in the context, so a sealed value copied to
    // another project or column does not open.
    sqlx::query(
        "UPDATE build_projects SET webhook_secret_sealed = $1, forge_token_sealed = $2 WHERE id = $3",
    )
    .bind(keys.seal(secret.as_bytes(), &webhook_context(id)))
    .bind(forge_token.map(|t| keys.seal(t.as_bytes(), &forge_token_context(id))))
    .bind(id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    let project = get(db, id)
        .await?
        .ok_or_else(|| Error::Internal("project vanished after insert".into()))?;
    Ok((project, secret))
}

/// Changes a project. A given webhook secret or forge token replaces the
/// stored one (an empty forge token removes it).
pub async fn update(
    db: &AnyPool,
    keys: &Keys,
    id: i64,
    s: &Settings,
    webhook_secret: Option<&str>,
    forge_token: Option<&str>,
) -> Result<Project> {
    if let Some(w) = webhook_secret {
        check_secret("webhook_secret", w, 16)?;
    }
    if let Some(t) = forge_token.filter(|t| !t.is_empty()) {
        check_secret("forge_token", t, 1)?;
    }
    let mut tx = db.begin().await?;
    let n = sqlx::query(
        "UPDATE build_projects SET name = $1, repository = $2, branch = $3, recipe_globs = $4,
            collection_id = $5, backend = $6, agent_labels = $7, forge = $8, forge_api_url = $9,
            forge_repository = $10, poll_interval_seconds = $11
         WHERE id = $12",
    )
    .bind(&s.name)
    .bind(&s.repository)
    .bind(&s.branch)
    .bind(list_text(&s.recipe_globs))
    .bind(s.collection_id)
    .bind(&s.backend)
    .bind(list_text(&s.agent_labels))
    .bind(s.forge.map(forge_name))
    .bind(&s.forge_api_url)
    .bind(&s.forge_repository)
    .bind(s.poll_interval_seconds)
    .bind(id)
    .execute(&mut *tx)
    .await
    .map_err(|e| conflict_if_taken(e, || format!("a project named {:?} exists", s.name)))?
    .rows_affected();
    if n == 0 {
        return Err(Error::not_found(format!("build project {id}")));
    }
    if let Some(w) = webhook_secret {
        sqlx::query("UPDATE build_projects SET webhook_secret_sealed = $1 WHERE id = $2")
            .bind(keys.seal(w.as_bytes(), &webhook_context(id)))
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    if let Some(t) = forge_token {
        let sealed = (!t.is_empty()).then(|| keys.seal(t.as_bytes(), &forge_token_context(id)));
        sqlx::query("UPDATE build_projects SET forge_token_sealed = $1 WHERE id = $2")
            .bind(sealed)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    get(db, id)
        .await?
        .ok_or_else(|| Error::not_found(format!("build project {id}")))
}

/// Removes a project with its jobs and their logs.
pub async fn delete(db: &AnyPool, id: i64) -> Result<()> {
    let n = sqlx::query("DELETE FROM build_projects WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?
        .rows_affected();
    if n == 0 {
        return Err(Error::not_found(format!("build project {id}")));
    }
    Ok(())
}

pub async fn get(db: &AnyPool, id: i64) -> Result<Option<Project>> {
    Ok(sqlx::query_as(&format!("{SELECT} WHERE p.id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await?)
}

pub async fn by_name(db: &AnyPool, name: &str) -> Result<Option<Project>> {
    Ok(sqlx::query_as(&format!("{SELECT} WHERE p.name = $1"))
        .bind(name)
        .fetch_optional(db)
        .await?)
}

/// Every project, by id (callers filter by visibility).
pub async fn list(db: &AnyPool) -> Result<Vec<Project>> {
    Ok(sqlx::query_as(&format!("{SELECT} ORDER BY p.id"))
        .fetch_all(db)
        .await?)
}

/// Projects that poll (`poll_interval_seconds` set).
pub async fn polled(db: &AnyPool) -> Result<Vec<Project>> {
    Ok(sqlx::query_as(&format!(
        "{SELECT} WHERE p.poll_interval_seconds IS NOT NULL ORDER BY p.id"
    ))
    .fetch_all(db)
    .await?)
}

/// The projects of a repository, matching clone URLs loosely (scheme,
/// `.git` suffix, trailing slash, credentials, host case), for webhooks
/// whose payload names the repository in its own way.
pub async fn find_by_repository(db: &AnyPool, url: &str) -> Result<Vec<Project>> {
    let want = repository_key(url);
    Ok(list(db)
        .await?
        .into_iter()
        .filter(|p| repository_key(&p.repository) == want)
        .collect())
}

/// `host[:port]/path` of a clone URL, for loose comparison.
pub fn repository_key(url: &str) -> String {
    let url = url.trim();
    let (host, path) = match url::Url::parse(url) {
        Ok(u) if u.has_host() => {
            let host = u.host_str().unwrap_or("").to_ascii_lowercase();
            let host = match u.port() {
                // A non-default port is part of the repository's identity.
                Some(p) if !matches!((u.scheme(), p), ("https", 443) | ("http", 80)) => {
                    format!("{host}:{p}")
                }
                _ => host,
            };
            (host, u.path().to_string())
        }
        Ok(u) => (String::new(), u.path().to_string()),
        // scp-like `git@host:owner/name.git`
        Err(_) => match url.split_once(':') {
            Some((h, p)) => (
                h.rsplit('@').next().unwrap_or(h).to_ascii_lowercase(),
                format!("/{p}"),
            ),
            None => (String::new(), url.to_string()),
        },
    };
    let path = path.trim_end_matches('/');
    let path = path
        .strip_suffix(".git")
        .unwrap_or(path)
        .trim_end_matches('/');
    format!("{host}{path}")
}

/// Records the last commit whose changes were queued.
pub async fn set_last_commit(db: &AnyPool, id: i64, commit: &str) -> Result<()> {
    sqlx::query("UPDATE build_projects SET last_commit = $1 WHERE id = $2")
        .bind(commit)
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

async fn sealed_column(db: &AnyPool, id: i64, column: &str) -> Result<Option<String>> {
    let v: Option<Option<String>> = sqlx::query_scalar(&format!(
        "SELECT {column} FROM build_projects WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(db)
    .await?;
    Ok(v.flatten())
}

/// The project's webhook secret, unsealed (for verifying signatures).
pub async fn webhook_secret(db: &AnyPool, keys: &Keys, id: i64) -> Result<Option<Vec<u8>>> {
    Ok(sealed_column(db, id, "webhook_secret_sealed")
        .await?
        .and_then(|s| keys.unseal(&s, &webhook_context(id))))
}

/// The project's forge token, unsealed (for reporting commit statuses).
pub async fn forge_token(db: &AnyPool, keys: &Keys, id: i64) -> Result<Option<String>> {
    Ok(sealed_column(db, id, "forge_token_sealed")
        .await?
        .and_then(|s| keys.unseal(&s, &forge_token_context(id)))
        .and_then(|b| String::from_utf8(b).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_urls_match_loosely() {
        let k = repository_key("https://GitHub.com/Owner/Repo.git");
        assert_eq!(k, "github.com/Owner/Repo");
        assert_eq!(repository_key("https://github.com/Owner/Repo/"), k);
        assert_eq!(repository_key("http://github.com/Owner/Repo"), k);
        assert_eq!(repository_key("https://x@github.com:443/Owner/Repo"), k);
        assert_eq!(repository_key("git@github.com:Owner/Repo.git"), k);
        assert_eq!(repository_key("ssh://git@github.com/Owner/Repo.git"), k);
        assert_ne!(repository_key("https://github.com/Owner/Other"), k);
        assert_eq!(
            repository_key("git://127.0.0.1:9418/r.git"),
            "127.0.0.1:9418/r"
        );
        assert_ne!(
            repository_key("git://127.0.0.1:9419/r.git"),
            repository_key("git://127.0.0.1:9418/r.git")
        );
    }

    fn new(repo: &str) -> NewBuildProject {
        NewBuildProject {
            name: Some("p".into()),
            repository: Some(repo.into()),
            ..Default::default()
        }
    }

    #[test]
    fn settings_are_checked() {
        let s = Settings::new(&new("https://example.org/r.git"), 1).unwrap();
        assert_eq!(s.branch, "main");
        for bad in ["not a url", "ftp://h/r", "https://u:pw@h/r"] {
            assert!(Settings::new(&new(bad), 1).is_err(), "{bad}");
        }
        let mut n = new("https://example.org/r.git");
        n.backend = Some("podman".into());
        assert!(Settings::new(&n, 1).is_err());
        n.backend = None;
        n.forge = Some(ForgeKind::Gitlab);
        n.forge_repository = Some("g/r".into());
        assert!(Settings::new(&n, 1).is_err(), "gitlab needs its API URL");
        n.forge = Some(ForgeKind::Github);
        let s = Settings::new(&n, 1).unwrap();
        assert_eq!(s.forge_api_url.as_deref(), Some(GITHUB_API));
        n.agent_labels = Some(vec!["gpu".into(), "bad label".into()]);
        assert!(Settings::new(&n, 1).is_err());
        n.agent_labels = None;
        n.branch = Some("-x".into());
        assert!(Settings::new(&n, 1).is_err());
    }
}
