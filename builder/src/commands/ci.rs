//! `sreg ci init --provider P [--registry URL] [--collection C] [--dry-run]`:
//! writes a CI pipeline into a recipe repository.
//!
//! Idempotent: a file already holding what would be written is left alone, a
//! missing one is created, and one with other content is replaced only with
//! `--force` (nothing is written when any file would be refused). Every value
//! is checked before it is rendered, because templates put them unescaped
//! into YAML, shell and Groovy.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::ci_templates::{self, Context, GITLAB_INCLUDED, TOKEN_SECRET};
use crate::cli::{CiInitArgs, CiProvider};
use crate::registry;

/// What happens to one file.
#[derive(Debug, PartialEq, Eq)]
enum Action {
    Create,
    Unchanged,
    Replace,
    /// Exists with other content and no `--force`.
    Refuse,
}

struct Planned {
    path: String,
    content: String,
    action: Action,
}

pub fn init(args: &CiInitArgs) -> Result<()> {
    let dir = &args.dir;
    if !dir.is_dir() {
        bail!(
            "{} is not a folder: pass the recipe repository with --dir",
            dir.display()
        );
    }
    let context = Context {
        registry: registry_url(args.registry.as_deref())?,
        collection: collection(args.collection.as_deref(), dir)?,
        branch: branch(args.branch.as_deref(), dir)?,
        apptainer_version: apptainer_version(&args.apptainer_version)?,
        sreg_version: env!("CARGO_PKG_VERSION"),
        token_secret: TOKEN_SECRET,
    };

    let mut plan = Vec::new();
    for file in ci_templates::files(args.provider) {
        let content = ci_templates::render(&file, &context)
            .with_context(|| format!("cannot render the template for {}", file.path))?;
        plan.push(planned(dir, file.path, content, args.force)?);
    }
    let mut notes = Vec::new();
    if args.provider == CiProvider::Gitlab {
        let root = dir.join(".gitlab-ci.yml");
        match std::fs::read_to_string(&root) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                plan.push(planned(dir, ".gitlab-ci.yml", ci_templates::gitlab_root(), false)?);
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", root.display())),
            Ok(text) if text.contains(GITLAB_INCLUDED) => {}
            Ok(_) => notes.push(format!(
                "Your .gitlab-ci.yml is left as it is: add to it\n    include:\n      - local: {GITLAB_INCLUDED}"
            )),
        }
    }

    if args.dry_run {
        for p in &plan {
            let what = match p.action {
                Action::Create => "would create",
                Action::Unchanged => "unchanged",
                Action::Replace => "would replace",
                Action::Refuse => "differs (use --force to replace)",
            };
            println!("==> {} ({what})", p.path);
            print!("{}", p.content);
            if !p.content.ends_with('\n') {
                println!();
            }
        }
        return Ok(());
    }

    let refused: Vec<&str> = plan
        .iter()
        .filter(|p| p.action == Action::Refuse)
        .map(|p| p.path.as_str())
        .collect();
    if !refused.is_empty() {
        bail!(
            "{} already exist(s) with other content; nothing was written. See the new content with --dry-run, or replace with --force",
            refused.join(", ")
        );
    }
    for p in &plan {
        let verb = match p.action {
            Action::Create => "created",
            Action::Replace => "replaced",
            _ => "unchanged",
        };
        if matches!(p.action, Action::Create | Action::Replace) {
            write_atomically(&dir.join(&p.path), &p.content)?;
        }
        println!("{verb} {}", p.path);
    }
    for note in notes {
        println!("\n{note}");
    }
    let paths: Vec<&str> = plan.iter().map(|p| p.path.as_str()).collect();
    println!(
        "\nNext:\n  1. Create a registry token for the account that owns {c} (an admin can run\n     `sreg-server admin token create USER --name ci`).\n  2. Store it as a secret: {hint}.\n  3. Commit and push: git add {files} && git commit -m \"Build images with sreg\" && git push\n\nPushes to {b} then publish to {r} (collection {c}); pull requests build only.",
        c = context.collection,
        hint = ci_templates::secret_hint(args.provider),
        files = paths.join(" "),
        b = context.branch,
        r = context.registry,
    );
    Ok(())
}

fn planned(dir: &Path, path: &str, content: String, force: bool) -> Result<Planned> {
    let full = dir.join(path);
    let action = match std::fs::read_to_string(&full) {
        Ok(old) if old == content => Action::Unchanged,
        Ok(_) if force => Action::Replace,
        Ok(_) => Action::Refuse,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Action::Create,
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", full.display())),
    };
    Ok(Planned {
        path: path.to_owned(),
        content,
        action,
    })
}

fn write_atomically(path: &Path, content: &str) -> Result<()> {
    let folder = path.parent().expect("files are inside the repository");
    std::fs::create_dir_all(folder)
        .with_context(|| format!("cannot create {}", folder.display()))?;
    let mut temp = tempfile::NamedTempFile::new_in(folder)
        .with_context(|| format!("cannot write in {}", folder.display()))?;
    std::io::Write::write_all(&mut temp, content.as_bytes())?;
    // Configuration to commit, readable like any file git checks out.
    std::fs::set_permissions(temp.path(), std::fs::Permissions::from_mode(0o644))?;
    temp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// The registry URL: an http(s) URL with a host and nothing a template could
/// misread (quotes, spaces, `$`, `#`).
fn registry_url(given: Option<&str>) -> Result<String> {
    let raw = match given {
        Some(r) => r.to_owned(),
        None => match std::env::var(registry::ENV_REGISTRY).ok().filter(|s| !s.is_empty()) {
            Some(r) => r,
            None => registry::read_config()?
                .and_then(|c| c.registry)
                .context("which registry should pipelines push to? Pass --registry URL (or run `sreg login URL` first)")?,
        },
    };
    let url = url::Url::parse(raw.trim()).with_context(|| {
        format!("--registry {raw:?} is not a URL (https://registry.example.org)")
    })?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none()
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        bail!(
            "--registry {raw:?} must be an http(s) URL with a host, and no user, query or fragment"
        );
    }
    let text = url.as_str().trim_end_matches('/').to_owned();
    if let Some(c) = text
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-._~:/[]%".contains(*c)))
    {
        bail!("--registry {raw:?}: {c:?} is not allowed in the registry URL here");
    }
    Ok(text)
}

/// COLLECTION or ENTITY/COLLECTION, each part `[a-z0-9._-]`, not starting
/// with a dot or dash; the default is the repository folder's name.
fn collection(given: Option<&str>, dir: &Path) -> Result<String> {
    let value = match given {
        Some(c) => c.to_owned(),
        None => {
            let abs = std::fs::canonicalize(dir)
                .with_context(|| format!("cannot resolve {}", dir.display()))?;
            let name = abs
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            sreg_recipe::sanitize("collection", &name).with_context(|| {
                format!("cannot make a collection name of {name:?}: pass --collection C")
            })?
        }
    };
    let parts: Vec<&str> = value.split('/').collect();
    let part_ok = |p: &&str| {
        !p.is_empty()
            && !p.starts_with(['.', '-'])
            && p.len() <= 128
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
    };
    if parts.len() > 2 || !parts.iter().all(part_ok) {
        bail!(
            "--collection {value:?} must be COLLECTION or ENTITY/COLLECTION, in lowercase letters, digits, '.', '_' and '-'"
        );
    }
    Ok(value)
}

/// The branch that publishes: given, else the checked-out one, else `main`.
fn branch(given: Option<&str>, dir: &Path) -> Result<String> {
    let value = match given {
        Some(b) => b.to_owned(),
        None => Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["symbolic-ref", "--short", "-q", "HEAD"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| "main".to_owned()),
    };
    let ok = !value.is_empty()
        && !value.starts_with(['-', '/', '.'])
        && !value.ends_with(['/', '.'])
        && !value.contains("..")
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._/-".contains(&b));
    if !ok {
        bail!("--branch {value:?}: use a branch name of letters, digits, '.', '_', '/' and '-'");
    }
    Ok(value)
}

fn apptainer_version(v: &str) -> Result<String> {
    let mut parts = v.splitn(2, '-');
    let numbers = parts.next().unwrap_or_default();
    let numeric = numbers.split('.').count() == 3
        && numbers
            .split('.')
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    let suffix_ok = parts
        .next()
        .is_none_or(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.'));
    if !numeric || !suffix_ok {
        bail!("--apptainer-version {v:?} is not a release such as 1.4.1 (no leading v)");
    }
    Ok(v.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_urls_are_checked_and_normalised() {
        assert_eq!(
            registry_url(Some("https://reg.example.org/")).unwrap(),
            "https://reg.example.org"
        );
        assert_eq!(
            registry_url(Some("http://127.0.0.1:8700")).unwrap(),
            "http://127.0.0.1:8700"
        );
        for bad in [
            "reg.example.org",
            "ftp://reg.example.org",
            "https://u:p@reg.example.org",
            "https://reg.example.org/?x=1",
            "https://reg.example.org/a'b",
            "https://reg.example.org/$x",
        ] {
            assert!(registry_url(Some(bad)).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn collections_and_branches_are_checked() {
        let dir = Path::new(".");
        assert_eq!(collection(Some("lab"), dir).unwrap(), "lab");
        assert_eq!(collection(Some("team/lab"), dir).unwrap(), "team/lab");
        for bad in ["Lab", "a/b/c", "-x", "a b", "x:y", "", "../x"] {
            assert!(collection(Some(bad), dir).is_err(), "{bad} accepted");
        }
        assert_eq!(branch(Some("release/2.x"), dir).unwrap(), "release/2.x");
        for bad in ["-f", "a..b", "a b", "a'b", "x/"] {
            assert!(branch(Some(bad), dir).is_err(), "{bad} accepted");
        }
        assert!(apptainer_version("1.4.1").is_ok());
        assert!(apptainer_version("1.4.0-rc.1").is_ok());
        for bad in ["v1.4.1", "1.4", "1.4.1; rm", ""] {
            assert!(apptainer_version(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn every_template_renders() {
        let context = Context {
            registry: "https://reg.example.org".into(),
            collection: "lab".into(),
            branch: "main".into(),
            apptainer_version: "1.4.1".into(),
            sreg_version: "0.0.0",
            token_secret: TOKEN_SECRET,
        };
        for provider in [
            CiProvider::Github,
            CiProvider::Gitlab,
            CiProvider::Circleci,
            CiProvider::Travis,
            CiProvider::Jenkins,
        ] {
            for file in ci_templates::files(provider) {
                let text = ci_templates::render(&file, &context).unwrap();
                let ci_templates::Source::Template(source) = file.source else {
                    continue;
                };
                // The only `{{` left are the escaped ones (GitHub's `${{ }}`,
                // CircleCI's cache keys).
                assert_eq!(
                    text.matches("{{").count(),
                    source.matches("\\{{").count(),
                    "{} has unrendered handlebars",
                    file.path
                );
            }
        }
    }
}
