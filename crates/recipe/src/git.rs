//! The few git commands change detection needs, run through the `git`
//! binary with NUL-separated output so any file name survives.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::changes::{ChangeStatus, PathChange};
use crate::error::ChangesError;

fn git(repo: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.arg("-C")
        .arg(repo)
        .args(["-c", "core.quotepath=off"])
        // Messages are shown to users; keep them stable and in English.
        .env("LC_ALL", "C")
        .env("GIT_OPTIONAL_LOCKS", "0")
        .stdin(Stdio::null());
    cmd
}

fn run(repo: &Path, args: &[&str]) -> Result<Vec<u8>, ChangesError> {
    let out = git(repo).args(args).output().map_err(ChangesError::Spawn)?;
    if !out.status.success() {
        return Err(ChangesError::Git {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(out.stdout)
}

/// The top-level directory of the work tree holding `repo`.
pub(crate) fn toplevel(repo: &Path) -> Result<PathBuf, ChangesError> {
    let out = run(repo, &["rev-parse", "--show-toplevel"])?;
    let s = String::from_utf8_lossy(&out);
    Ok(PathBuf::from(s.trim_end_matches(['\n', '\r'])))
}

/// An all-zero object id: the "before" of a newly pushed branch.
pub(crate) fn is_zero_rev(rev: &str) -> bool {
    rev.len() >= 7 && rev.bytes().all(|b| b == b'0')
}

/// Resolves a revision to a commit id (`--end-of-options` keeps a revision
/// starting with `-` from being read as an option).
pub(crate) fn commit_id(repo: &Path, rev: &str) -> Result<String, ChangesError> {
    let spec = format!("{rev}^{{commit}}");
    let out = git(repo)
        .args(["rev-parse", "--verify", "--end-of-options", &spec])
        .output()
        .map_err(ChangesError::Spawn)?;
    if !out.status.success() {
        return Err(ChangesError::BadRevision {
            rev: rev.to_owned(),
            repo: repo.to_path_buf(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn nul_fields(out: &[u8]) -> Vec<String> {
    out.split(|b| *b == 0)
        .filter(|f| !f.is_empty())
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect()
}

/// `git diff --name-status -z -M from to`: renames are detected so they can
/// be reported as such.
pub(crate) fn diff(repo: &Path, from: &str, to: &str) -> Result<Vec<PathChange>, ChangesError> {
    let args = [
        "diff",
        "--name-status",
        "-z",
        "-M",
        "--no-ext-diff",
        "--no-textconv",
        "--no-color",
        from,
        to,
        "--",
    ];
    let out = run(repo, &args)?;
    parse_name_status(&nul_fields(&out)).ok_or_else(|| ChangesError::Output {
        args: args.join(" "),
        detail: "a status without its path".to_owned(),
    })
}

/// Parses `-z` name-status fields: `STATUS path` or `R<score> old new`.
fn parse_name_status(fields: &[String]) -> Option<Vec<PathChange>> {
    let mut out = Vec::new();
    let mut it = fields.iter();
    while let Some(status) = it.next() {
        let change = match status.chars().next()? {
            'A' => PathChange::new(ChangeStatus::Added, it.next()?.clone()),
            'M' => PathChange::new(ChangeStatus::Modified, it.next()?.clone()),
            'D' => PathChange::new(ChangeStatus::Deleted, it.next()?.clone()),
            'T' => PathChange::new(ChangeStatus::TypeChanged, it.next()?.clone()),
            'R' => {
                let from = it.next()?.clone();
                PathChange::renamed(from, it.next()?.clone())
            }
            'C' => {
                let from = it.next()?.clone();
                let mut c = PathChange::new(ChangeStatus::Copied, it.next()?.clone());
                c.from = Some(from);
                c
            }
            // Unmerged or unknown: treat as modified, so it is rebuilt.
            _ => PathChange::new(ChangeStatus::Modified, it.next()?.clone()),
        };
        out.push(change);
    }
    Some(out)
}

/// Every file path in the tree of `rev`, relative to the top level.
pub(crate) fn ls_tree(repo: &Path, rev: &str) -> Result<Vec<String>, ChangesError> {
    let out = run(
        repo,
        &["ls-tree", "-r", "-z", "--full-tree", "--name-only", rev],
    )?;
    Ok(nul_fields(&out))
}

/// Contents of `rev:path` for each path, read through one `git cat-file --batch`.
pub(crate) fn read_blobs(
    repo: &Path,
    rev: &str,
    paths: &[String],
) -> Result<Vec<Option<Vec<u8>>>, ChangesError> {
    let args = "cat-file --batch";
    let mut child = git(repo)
        .args(["cat-file", "--batch"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(ChangesError::Spawn)?;
    // Batch input is line-based: a path with a newline cannot be asked for.
    let asked: Vec<bool> = paths.iter().map(|p| !p.contains('\n')).collect();
    let mut input = Vec::new();
    for (p, ok) in paths.iter().zip(&asked) {
        if *ok {
            input.extend_from_slice(format!("{rev}:{p}\n").as_bytes());
        }
    }
    let mut stdin = child.stdin.take();
    // Write from another thread: git answers while we write, and both pipes
    // would fill up otherwise.
    let output = std::thread::scope(|s| {
        s.spawn(move || {
            if let Some(mut w) = stdin.take() {
                // A write error shows up as missing output below.
                let _ = w.write_all(&input);
            }
        });
        child.wait_with_output()
    })
    .map_err(ChangesError::Spawn)?;
    if !output.status.success() {
        return Err(ChangesError::Git {
            args: args.to_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    let bad = |detail: &str| ChangesError::Output {
        args: args.to_owned(),
        detail: detail.to_owned(),
    };
    let mut rest: &[u8] = &output.stdout;
    let mut blobs = Vec::with_capacity(paths.len());
    for ok in asked {
        if !ok {
            blobs.push(None);
            continue;
        }
        let nl = rest
            .iter()
            .position(|b| *b == b'\n')
            .ok_or_else(|| bad("truncated header"))?;
        let header = String::from_utf8_lossy(&rest[..nl]).into_owned();
        rest = &rest[nl + 1..];
        let mut words = header.rsplitn(3, ' ');
        let (last, kind) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        if kind != "blob" {
            // `<name> missing`, `<name> ambiguous`, or not a file (a submodule).
            if let Ok(size) = last.parse::<usize>() {
                rest = rest
                    .get(size + 1..)
                    .ok_or_else(|| bad("truncated object"))?;
            }
            blobs.push(None);
            continue;
        }
        let size: usize = last.parse().map_err(|_| bad("bad object size"))?;
        let body = rest.get(..size).ok_or_else(|| bad("truncated object"))?;
        blobs.push(Some(body.to_vec()));
        rest = rest
            .get(size + 1..)
            .ok_or_else(|| bad("truncated object"))?;
    }
    Ok(blobs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_status_fields() {
        let f: Vec<String> = ["M", "a b", "R087", "old", "new", "D", "x\ny", "A", "z"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let c = parse_name_status(&f).unwrap_or_default();
        assert_eq!(c.len(), 4);
        assert_eq!(c[0], PathChange::new(ChangeStatus::Modified, "a b"));
        assert_eq!(c[1], PathChange::renamed("old", "new"));
        assert_eq!(c[2].path, "x\ny");
        assert!(parse_name_status(&["M".to_owned()]).is_none());
    }

    #[test]
    fn zero_revs() {
        assert!(is_zero_rev("0000000000000000000000000000000000000000"));
        assert!(!is_zero_rev("000"));
        assert!(!is_zero_rev("HEAD"));
    }
}
