//! The JSON build record `sreg build` writes beside the image
//! (`NAME.build.json`, schema `sreg.build/v1`) and `sreg push` sends.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sreg_api::v1::BuildMetadata;

pub const SCHEMA: &str = "sreg.build/v1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildRecord {
    /// Always `sreg.build/v1`.
    pub schema: String,
    pub image: ImageFacts,
    pub recipe: RecipeFacts,
    /// Build arguments given on the command line.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub build_args: BTreeMap<String, String>,
    /// The git repository holding the recipe (remote `origin`, credentials
    /// removed), or what the CI service says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// The recipe differs from the commit (uncommitted changes).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dirty: bool,
    pub backend: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_version: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub backend_details: BTreeMap<String, String>,
    pub host: String,
    /// RFC 3339 UTC.
    pub started_at: String,
    pub finished_at: String,
    pub duration_seconds: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<LogFacts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageFacts {
    /// File name of the image, beside the record.
    pub file: String,
    pub size: u64,
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecipeFacts {
    /// Relative to the repository root inside git, else as given.
    pub path: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogFacts {
    /// File name of the log, beside the record.
    pub file: String,
    pub size: u64,
    /// Lets `sreg push` tell this build's log from a later failed build's.
    pub sha256: String,
}

/// Where the record and the log of an image go: `x.sif` → `x.build.json`,
/// `x.build.log`.
pub fn paths_for(image: &Path) -> (PathBuf, PathBuf) {
    let stem = match image.extension() {
        Some(e) if e.eq_ignore_ascii_case("sif") => image.with_extension(""),
        _ => image.to_path_buf(),
    };
    let with = |suffix: &str| {
        let mut s = stem.clone().into_os_string();
        s.push(suffix);
        PathBuf::from(s)
    };
    (with(".build.json"), with(".build.log"))
}

impl BuildRecord {
    /// Reads a record; `None` when the file does not exist.
    pub fn read(path: &Path) -> Result<Option<BuildRecord>> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let record: BuildRecord = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a build record", path.display()))?;
        if record.schema != SCHEMA {
            anyhow::bail!(
                "{} has schema {:?}; this sreg reads {SCHEMA}",
                path.display(),
                record.schema
            );
        }
        Ok(Some(record))
    }

    /// The metadata `sreg push` sends (the log travels separately).
    pub fn to_metadata(&self) -> BuildMetadata {
        let mut extra = BTreeMap::new();
        for (k, v) in &self.build_args {
            extra.insert(format!("build_arg.{k}"), v.clone());
        }
        for (k, v) in &self.backend_details {
            extra.insert(format!("backend.{k}"), v.clone());
        }
        if self.dirty {
            extra.insert("dirty".into(), "true".into());
        }
        BuildMetadata {
            recipe: Some(self.recipe.text.clone()),
            recipe_path: Some(self.recipe.path.clone()),
            repository: self.repository.clone(),
            branch: self.branch.clone(),
            commit: self.commit.clone(),
            builder_host: Some(self.host.clone()),
            backend: Some(self.backend.clone()),
            backend_version: self.backend_version.clone(),
            started_at: Some(self.started_at.clone()),
            finished_at: Some(self.finished_at.clone()),
            duration_seconds: Some(self.duration_seconds),
            ci_provider: self.ci_provider.clone(),
            ci_url: self.ci_url.clone(),
            extra,
        }
    }
}

/// What git knows of the recipe: repository, branch, commit, its path in
/// the repository and whether it has uncommitted changes.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct GitFacts {
    pub repository: Option<String>,
    pub branch: Option<String>,
    pub commit: Option<String>,
    pub path: Option<String>,
    pub dirty: bool,
}

/// Git facts of `recipe` (absolute); all empty outside a work tree or
/// without git.
pub fn git_facts(recipe: &Path) -> GitFacts {
    let Some(dir) = recipe.parent() else {
        return GitFacts::default();
    };
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let Some(top) = git(&["rev-parse", "--show-toplevel"]) else {
        return GitFacts::default();
    };
    let path = std::fs::canonicalize(recipe).ok().and_then(|r| {
        let top = std::fs::canonicalize(&top).ok()?;
        r.strip_prefix(top).ok().map(|p| p.display().to_string())
    });
    let commit = git(&["rev-parse", "--verify", "-q", "HEAD"]).filter(|s| !s.is_empty());
    let branch = git(&["symbolic-ref", "--short", "-q", "HEAD"]).filter(|s| !s.is_empty());
    let repository = git(&["remote", "get-url", "origin"])
        .filter(|s| !s.is_empty())
        .map(|u| without_credentials(&u));
    let dirty = match &path {
        // The path is relative to the top, not to `dir`.
        Some(p) => git(&["status", "--porcelain", "--", &format!(":(top){p}")])
            .is_some_and(|s| !s.is_empty()),
        None => false,
    };
    GitFacts {
        repository,
        branch,
        commit,
        path,
        dirty,
    }
}

/// A remote URL without user name or password: `https://tok@host/r` →
/// `https://host/r` (a token in a clone URL must not reach the registry).
pub fn without_credentials(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.has_host() && (!u.username().is_empty() || u.password().is_some()) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_and_log_sit_beside_the_image() {
        assert_eq!(
            paths_for(Path::new("out/lolcow_latest.sif")),
            (
                PathBuf::from("out/lolcow_latest.build.json"),
                PathBuf::from("out/lolcow_latest.build.log")
            )
        );
        assert_eq!(
            paths_for(Path::new("img")).0,
            PathBuf::from("img.build.json")
        );
    }

    #[test]
    fn credentials_never_leave_the_clone_url() {
        assert_eq!(
            without_credentials("https://x-access-token:ghs_secret@github.com/lab/r.git"),
            "https://github.com/lab/r.git"
        );
        assert_eq!(
            without_credentials("git@github.com:lab/r.git"),
            "git@github.com:lab/r.git"
        );
    }

    #[test]
    fn git_facts_of_a_committed_recipe() {
        let dir = tempfile::tempdir().unwrap();
        let run = |args: &[&str]| {
            let ok = Command::new("git")
                .arg("-C")
                .arg(dir.path())
                .args(args)
                .env("GIT_AUTHOR_NAME", "t")
                .env("GIT_AUTHOR_EMAIL", "t@example.org")
                .env("GIT_COMMITTER_NAME", "t")
                .env("GIT_COMMITTER_EMAIL", "t@example.org")
                .status()
                .unwrap()
                .success();
            assert!(ok, "git {args:?}");
        };
        run(&["init", "-q", "-b", "main"]);
        run(&[
            "remote",
            "add",
            "origin",
            "https://user:pw@git.example.org/lab/r.git",
        ]);
        std::fs::create_dir(dir.path().join("tools")).unwrap();
        let recipe = dir.path().join("tools/Singularity");
        std::fs::write(&recipe, "Bootstrap: scratch\n").unwrap();
        run(&["add", "."]);
        run(&["commit", "-q", "-m", "r"]);
        let facts = git_facts(&recipe);
        assert_eq!(facts.path.as_deref(), Some("tools/Singularity"));
        assert_eq!(facts.branch.as_deref(), Some("main"));
        assert_eq!(facts.commit.as_ref().map(String::len), Some(40));
        assert_eq!(
            facts.repository.as_deref(),
            Some("https://git.example.org/lab/r.git")
        );
        assert!(!facts.dirty);
        std::fs::write(&recipe, "Bootstrap: scratch\n\n%labels\n  A b\n").unwrap();
        assert!(git_facts(&recipe).dirty);
        assert_eq!(git_facts(Path::new("/")), GitFacts::default());
    }
}
