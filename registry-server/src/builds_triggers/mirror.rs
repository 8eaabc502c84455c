//! A git mirror of each build project under `<data-dir>/git/<project-id>`,
//! and `git ls-remote` for polling. Git runs as a child process with no
//! terminal prompt and a time limit; its messages are scrubbed of the
//! repository URL's credentials before they are logged or stored.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

/// How long one git command may take (a first fetch of a large repository).
const GIT_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot run git: {0}")]
    Spawn(std::io::Error),
    #[error("git {args} took longer than {0:?}", GIT_TIMEOUT)]
    Timeout { args: String },
    #[error("git {args} failed: {stderr}")]
    Failed { args: String, stderr: String },
    #[error("commit {0} is not in the repository")]
    NoCommit(String),
}

/// The mirror of a project.
pub fn mirror_dir(data_dir: &Path, project_id: i64) -> PathBuf {
    data_dir.join("git").join(project_id.to_string())
}

/// `url` with its password (or token) replaced by `***`, for messages.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() || !u.username().is_empty() => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            } else {
                // A token is often sent as the user name alone.
                let _ = u.set_username("***");
            }
            u.into()
        }
        _ => url.to_owned(),
    }
}

/// Removes the URL's credentials from a git message.
fn scrub(text: &str, url: &str) -> String {
    let mut out = text.replace(url, &redact_url(url));
    if let Ok(u) = url::Url::parse(url) {
        for secret in [u.password().unwrap_or(""), u.username()] {
            if secret.len() >= 4 {
                out = out.replace(secret, "***");
            }
        }
    }
    out
}

async fn git(dir: Option<&Path>, args: &[&str], url: &str) -> Result<String, GitError> {
    let mut cmd = Command::new("git");
    if let Some(dir) = dir {
        cmd.arg("-C").arg(dir);
    }
    cmd.args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let shown = || scrub(&args.join(" "), url);
    let out = tokio::time::timeout(GIT_TIMEOUT, cmd.output())
        .await
        .map_err(|_| GitError::Timeout { args: shown() })?
        .map_err(GitError::Spawn)?;
    if !out.status.success() {
        return Err(GitError::Failed {
            args: shown(),
            stderr: scrub(String::from_utf8_lossy(&out.stderr).trim(), url),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The commit `refs/heads/BRANCH` points to on the remote, or `None` when
/// the branch does not exist.
pub async fn ls_remote(url: &str, branch: &str) -> Result<Option<String>, GitError> {
    let refname = format!("refs/heads/{branch}");
    let out = git(None, &["ls-remote", "--end-of-options", url, &refname], url).await?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .find(|(_, r)| *r == refname)
        .map(|(sha, _)| sha.trim().to_owned()))
}

/// Brings the mirror up to date with the remote branch and makes sure
/// `commit` is in it. The mirror is made with `git init` and fetched from
/// the URL given each time, rather than cloned, so that no credentials in
/// the URL are written into its config.
pub async fn fetch(dir: &Path, url: &str, branch: &str, commit: &str) -> Result<(), GitError> {
    if !dir.join(".git").is_dir() {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(GitError::Spawn)?;
        git(Some(dir), &["init", "--quiet"], url).await?;
    } else if has_commit(dir, commit).await {
        // Commits never change: nothing to fetch for one already here.
        return Ok(());
    }
    let refspec = format!("+refs/heads/{branch}:refs/remotes/origin/{branch}");
    git(
        Some(dir),
        &[
            "fetch",
            "--quiet",
            "--no-tags",
            "--end-of-options",
            url,
            &refspec,
        ],
        url,
    )
    .await?;
    if has_commit(dir, commit).await {
        return Ok(());
    }
    // A commit no longer on the branch (a force push since): ask for it by
    // id, which forges allow.
    let _ = git(
        Some(dir),
        &[
            "fetch",
            "--quiet",
            "--no-tags",
            "--end-of-options",
            url,
            commit,
        ],
        url,
    )
    .await;
    if has_commit(dir, commit).await {
        Ok(())
    } else {
        Err(GitError::NoCommit(commit.to_owned()))
    }
}

/// Whether the mirror holds `commit`.
pub async fn has_commit(dir: &Path, commit: &str) -> bool {
    let spec = format!("{commit}^{{commit}}");
    git(
        Some(dir),
        &["cat-file", "-e", "--end-of-options", &spec],
        "",
    )
    .await
    .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_reach_messages() {
        assert_eq!(
            redact_url("https://bob:ghp_secret123@github.com/o/r.git"),
            "https://bob:***@github.com/o/r.git"
        );
        assert_eq!(
            redact_url("https://ghp_secret123@github.com/o/r.git"),
            "https://***@github.com/o/r.git"
        );
        assert_eq!(redact_url("git://h/r.git"), "git://h/r.git");
        let url = "https://bob:ghp_secret123@github.com/o/r.git";
        let msg = format!("fatal: unable to access '{url}': 403; token ghp_secret123");
        let clean = scrub(&msg, url);
        assert!(!clean.contains("ghp_secret123"), "{clean}");
    }

    fn run(dir: &Path, args: &[&str]) -> String {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.org")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.org")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    #[tokio::test]
    async fn fetches_a_branch_into_a_mirror_and_reads_heads() {
        let tmp = tempfile::tempdir().unwrap();
        let origin = tmp.path().join("origin");
        std::fs::create_dir(&origin).unwrap();
        run(&origin, &["init", "-q", "-b", "main"]);
        std::fs::write(origin.join("Singularity"), "Bootstrap: scratch\n").unwrap();
        run(&origin, &["add", "."]);
        run(&origin, &["commit", "-q", "-m", "one"]);
        let head = run(&origin, &["rev-parse", "HEAD"]);
        let url = format!("file://{}", origin.display());

        assert_eq!(ls_remote(&url, "main").await.unwrap(), Some(head.clone()));
        assert_eq!(ls_remote(&url, "nope").await.unwrap(), None);

        let mirror = mirror_dir(tmp.path(), 7);
        fetch(&mirror, &url, "main", &head).await.unwrap();
        assert!(has_commit(&mirror, &head).await);
        // A commit the remote does not have is an error naming it.
        let missing = "1234567890123456789012345678901234567890";
        let err = fetch(&mirror, &url, "main", missing).await.unwrap_err();
        assert!(err.to_string().contains(missing), "{err}");
        // A commit already fetched needs no remote; a new one does.
        let gone = format!("file://{}/none", tmp.path().display());
        fetch(&mirror, &gone, "main", &head).await.unwrap();
        std::fs::write(origin.join("Singularity"), "Bootstrap: scratch\n\n%post\n").unwrap();
        run(&origin, &["commit", "-q", "-am", "two"]);
        let second = run(&origin, &["rev-parse", "HEAD"]);
        let err = fetch(&mirror, &gone, "main", &second).await.unwrap_err();
        assert!(matches!(err, GitError::Failed { .. }), "{err}");
        fetch(&mirror, &url, "main", &second).await.unwrap();
        assert!(has_commit(&mirror, &second).await);
    }
}
