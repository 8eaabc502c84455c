//! Which registry `sreg` talks to, with which token, and how it shows
//! progress.
//!
//! In order: `SREG_REGISTRY` and `SREG_TOKEN` (what CI uses; nothing is
//! ever written to disk for them), then the file `sreg login` writes:
//! `$XDG_CONFIG_HOME/sreg/config.toml`, or `~/.config/sreg/config.toml`,
//! readable by its owner only.

use std::io::{IsTerminal, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use sreg_api::client::{Client, Progress};

pub const ENV_REGISTRY: &str = "SREG_REGISTRY";
pub const ENV_TOKEN: &str = "SREG_TOKEN";

/// The file `sreg login` writes.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// The registry's URL.
    pub registry: Option<String>,
    pub token: Option<String>,
}

/// `$XDG_CONFIG_HOME/sreg/config.toml` or `~/.config/sreg/config.toml`.
pub fn config_path() -> Result<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from) {
        Some(p) if p.is_absolute() => p,
        _ => dirs::home_dir()
            .ok_or_else(|| anyhow!("cannot find your home folder: set HOME or XDG_CONFIG_HOME"))?
            .join(".config"),
    };
    Ok(base.join("sreg").join("config.toml"))
}

pub fn read_config() -> Result<Option<ConfigFile>> {
    let path = config_path()?;
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text)
            .map(Some)
            .with_context(|| format!("{} is not a valid sreg config file", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Writes the config file, mode 0600 from the first byte (a temporary file
/// beside it, renamed into place), in a folder of mode 0700.
pub fn write_config(config: &ConfigFile) -> Result<PathBuf> {
    let path = config_path()?;
    let dir = path.parent().expect("config path has a folder");
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot restrict {}", dir.display()))?;
    let text = toml::to_string(config).context("cannot serialize the config")?;
    let temp = dir.join(".config.toml.tmp");
    let _ = std::fs::remove_file(&temp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .with_context(|| format!("cannot write {}", temp.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", temp.display()))?;
    std::fs::rename(&temp, &path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

fn env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Whether we run in CI (`CI` set to anything but empty, `0` or `false`).
pub fn in_ci() -> bool {
    env("CI").is_some_and(|v| v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// Where a setting came from, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Env,
    File,
}

/// The registry and token to use.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub token: Option<String>,
    pub token_source: Option<Source>,
}

/// The registry from the environment or the config file; a token from
/// `SREG_TOKEN`, or from the file when the file is for the same registry.
pub fn target() -> Result<Target> {
    let file = read_config()?.unwrap_or_default();
    let url = match env(ENV_REGISTRY).or_else(|| file.registry.clone()) {
        Some(u) => u,
        None => {
            bail!("no registry: run `sreg login URL` or set {ENV_REGISTRY} (and {ENV_TOKEN}) in CI")
        }
    };
    let (token, token_source) = match env(ENV_TOKEN) {
        Some(t) => (Some(t), Some(Source::Env)),
        None if file.registry.as_deref().map(same_url) == Some(same_url(&url)) => {
            let source = file.token.as_ref().map(|_| Source::File);
            (file.token, source)
        }
        None => (None, None),
    };
    Ok(Target {
        url,
        token,
        token_source,
    })
}

fn same_url(u: &str) -> String {
    u.trim().trim_end_matches('/').to_ascii_lowercase()
}

/// A client for the target.
pub fn client(target: &Target) -> Result<Client> {
    Client::new(&target.url, target.token.clone())
        .with_context(|| format!("cannot use the registry {}", target.url))
}

/// What to tell a user whose request was refused for want of a token.
pub fn login_hint(target: &Target) -> String {
    match target.token_source {
        None => format!(
            "you are not logged in: run `sreg login {}` or set {ENV_TOKEN}",
            target.url
        ),
        Some(Source::Env) => {
            format!("the registry refused the token in {ENV_TOKEN}: create a new one")
        }
        Some(Source::File) => format!(
            "the registry refused your saved token: run `sreg login {}` again",
            target.url
        ),
    }
}

/// Adds advice to an API error: what to do about 401 and 403.
pub fn explain(e: sreg_api::client::ClientError, target: &Target) -> anyhow::Error {
    match e.status() {
        Some(401) => anyhow!("{e}\n{}", login_hint(target)),
        _ => anyhow!(e),
    }
}

/// A byte progress bar on a terminal; nothing in CI or when stderr is not
/// a terminal.
pub fn progress_bar(len: u64, what: &str) -> Option<(ProgressBar, Progress)> {
    if in_ci() || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:>9} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    let inc = bar.clone();
    Some((bar, Arc::new(move |n| inc.inc(n))))
}

/// Runs a future on a fresh runtime.
pub fn block_on<F: std::future::Future>(f: F) -> Result<F::Output> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    Ok(rt.block_on(f))
}

/// Reads a file as text, for `--recipe`.
pub fn read_text(path: &Path, what: &str) -> Result<String> {
    std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the {what} {}", path.display()))
}
