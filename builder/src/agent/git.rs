//! The git commands the agent and `sreg watch` run: a clone at one commit,
//! a clone kept up to date, the remote's default branch. No prompt is ever
//! shown (`GIT_TERMINAL_PROMPT=0`), and URLs are shown without credentials.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

pub use crate::build::record::without_credentials as redact;

/// Runs `git ARGS` in `dir` and returns its trimmed stdout; the error
/// carries git's stderr with `secret_url` (if any) redacted.
pub fn git(dir: &Path, args: &[&str], secret_url: Option<&str>) -> Result<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        // Commands such as `git fetch` should never open an editor or pager.
        .env("GIT_PAGER", "cat")
        .stdin(Stdio::null())
        .output()
        .context("cannot run git: is it installed?")?;
    let shown = |s: &str| match secret_url {
        Some(u) => s.replace(u, &redact(u)),
        None => s.to_string(),
    };
    if !out.status.success() {
        let args: Vec<String> = args.iter().map(|a| shown(a)).collect();
        bail!(
            "git {} failed: {}",
            args.join(" "),
            shown(String::from_utf8_lossy(&out.stderr).trim())
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Makes `dir` (new or empty) a checkout of `commit` of `url`: a shallow
/// fetch of just that commit, or a full fetch when the server does not let
/// a commit be fetched by its id.
pub fn checkout_commit(dir: &Path, url: &str, commit: &str) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let u = Some(url);
    git(dir, &["init", "-q"], u)?;
    git(dir, &["remote", "add", "origin", url], u)?;
    let shallow = git(
        dir,
        &["fetch", "-q", "--depth", "1", "origin", "--", commit],
        u,
    );
    let target = match shallow {
        Ok(_) => "FETCH_HEAD",
        Err(_) => {
            git(
                dir,
                &[
                    "fetch",
                    "-q",
                    "origin",
                    "+refs/heads/*:refs/remotes/origin/*",
                ],
                u,
            )
            .with_context(|| format!("cannot fetch {}", redact(url)))?;
            commit
        }
    };
    git(dir, &["checkout", "-q", "--detach", target, "--"], u)
        .with_context(|| format!("commit {commit} is not in {}", redact(url)))?;
    let head = git(dir, &["rev-parse", "HEAD"], u)?;
    if !head.starts_with(commit) && !commit.starts_with(&head) {
        bail!("fetched {head}, but the job is for commit {commit}");
    }
    Ok(())
}

/// The branch the remote's HEAD points to.
pub fn remote_head(dir: &Path, url: &str) -> Result<String> {
    let out = git(dir, &["ls-remote", "--symref", url, "HEAD"], Some(url))?;
    out.lines()
        .find_map(|l| l.strip_prefix("ref: refs/heads/"))
        .and_then(|rest| rest.split('\t').next())
        .map(str::to_string)
        .with_context(|| {
            format!(
                "{} does not say which branch is its HEAD: give --branch",
                redact(url)
            )
        })
}

/// Keeps a full clone of `url` in `dir` and fetches `branch`; returns the
/// branch's commit.
pub fn fetch_branch(dir: &Path, url: &str, branch: &str) -> Result<String> {
    let u = Some(url);
    if !dir.join(".git").exists() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        git(dir, &["init", "-q"], u)?;
        git(dir, &["remote", "add", "origin", url], u)?;
    } else {
        // The URL may have changed (a new token, say).
        git(dir, &["remote", "set-url", "origin", url], u)?;
    }
    let refspec = format!("+refs/heads/{branch}:refs/remotes/origin/{branch}");
    git(dir, &["fetch", "-q", "--prune", "origin", &refspec], u)
        .with_context(|| format!("cannot fetch branch {branch} of {}", redact(url)))?;
    git(
        dir,
        &[
            "rev-parse",
            "--verify",
            &format!("refs/remotes/origin/{branch}^{{commit}}"),
        ],
        u,
    )
}

/// The repository's name from its URL (`https://host/lab/recipes.git` →
/// `recipes`), lower-cased, for a default collection and folder names.
pub fn repo_name(url: &str) -> String {
    let path = url::Url::parse(url)
        .map(|u| u.path().to_string())
        .unwrap_or_else(|_| url.rsplit(':').next().unwrap_or(url).to_string());
    let last = path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("")
        .trim_end_matches(".git");
    let name: String = last
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '.' | '_' | '-') => c,
            _ => '-',
        })
        .collect();
    let name = name.trim_matches(|c| c == '-' || c == '.').to_string();
    if name.is_empty() {
        "recipes".into()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_removed_from_urls() {
        assert_eq!(
            redact("https://user:tok@git.example.org/a/b.git"),
            "https://git.example.org/a/b.git"
        );
        assert_eq!(redact("git://h:9418/r.git"), "git://h:9418/r.git");
    }

    #[test]
    fn repository_names() {
        assert_eq!(
            repo_name("https://git.example.org/Lab/Recipes.git"),
            "recipes"
        );
        assert_eq!(repo_name("git://127.0.0.1:9418/tools/"), "tools");
        assert_eq!(repo_name("git@github.com:lab/my_recipes.git"), "my_recipes");
        assert_eq!(repo_name("file:///srv/git/bio%20tools"), "bio-20tools");
    }
}
