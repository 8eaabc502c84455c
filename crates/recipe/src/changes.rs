//! Which recipes a set of changed paths affects. Pure: the git side is in
//! `git.rs`, so this logic is tested on its own.

use std::collections::{BTreeMap, BTreeSet};

use globset::GlobBuilder;
use serde::Serialize;

use crate::discover::RecipeMatcher;

/// How a path changed between two revisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeStatus {
    Added,
    Modified,
    Deleted,
    /// `from` holds the old path.
    Renamed,
    /// A copy: `from` holds the source, which is unchanged.
    Copied,
    /// File type changed (e.g. file to symlink).
    TypeChanged,
}

/// One changed path (relative to the repository root, `/`-separated).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathChange {
    pub status: ChangeStatus,
    pub path: String,
    pub from: Option<String>,
}

impl PathChange {
    pub fn new(status: ChangeStatus, path: impl Into<String>) -> Self {
        PathChange {
            status,
            path: path.into(),
            from: None,
        }
    }

    pub fn renamed(from: impl Into<String>, to: impl Into<String>) -> Self {
        PathChange {
            status: ChangeStatus::Renamed,
            path: to.into(),
            from: Some(from.into()),
        }
    }
}

/// A recipe present at the new revision and the host paths its `%files`
/// sections copy (as written: relative to the recipe's directory, globs allowed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipeSources {
    pub path: String,
    pub sources: Vec<String>,
}

/// Why a recipe must be rebuilt.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// The recipe is new (or there is no base revision).
    Added,
    Modified,
    Renamed {
        from: String,
    },
    /// A path copied by `%files` (source as written) changed.
    FilesChanged {
        source: String,
        path: String,
    },
}

/// Recipes to rebuild (with reasons) and recipes deleted, both sorted by path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Affected {
    pub rebuild: BTreeMap<String, Vec<Reason>>,
    pub deleted: Vec<String>,
}

/// Works out which recipes `changes` affect.
///
/// - A recipe added, modified (or type-changed, or copied to) is rebuilt.
/// - A recipe renamed is rebuilt under its new path, with the old path as reason.
/// - A recipe is rebuilt when a changed path (either side of a rename, or a
///   deleted one) is one of its `%files` sources, lies under a source
///   directory, or matches a source glob (`*` stays within a directory, as in
///   Apptainer's globbing). Sources are relative to the recipe's directory;
///   absolute sources, and sources leaving the repository, are outside the
///   repository and never match.
/// - A deleted path that `matcher` takes for a recipe, and the old path of a
///   renamed recipe, are reported as deleted (unless a recipe is there now).
///
/// Renames come from git's similarity detection, which may pair a deleted
/// recipe with an unrelated added one of the same content; both sides are
/// still reported (one rebuilt, one deleted), only the reason reads "renamed".
pub fn affected_recipes(
    recipes: &[RecipeSources],
    changes: &[PathChange],
    matcher: &RecipeMatcher,
) -> Affected {
    let present: BTreeSet<&str> = recipes.iter().map(|r| r.path.as_str()).collect();
    let mut out = Affected::default();
    let mut add = |path: &str, reason: Reason| {
        let reasons = out.rebuild.entry(path.to_owned()).or_default();
        if !reasons.contains(&reason) {
            reasons.push(reason);
        }
    };

    let mut deleted = BTreeSet::new();
    for c in changes {
        let here = present.contains(c.path.as_str());
        match c.status {
            ChangeStatus::Added | ChangeStatus::Copied if here => add(&c.path, Reason::Added),
            ChangeStatus::Modified | ChangeStatus::TypeChanged if here => {
                add(&c.path, Reason::Modified)
            }
            ChangeStatus::Renamed => {
                let from = c.from.clone().unwrap_or_default();
                if here {
                    add(&c.path, Reason::Renamed { from: from.clone() });
                }
                if !present.contains(from.as_str()) && matcher.is_recipe(&from) {
                    deleted.insert(from);
                }
            }
            ChangeStatus::Deleted if !here && matcher.is_recipe(&c.path) => {
                deleted.insert(c.path.clone());
            }
            _ => {}
        }
    }

    // Both sides of a rename count: the old path may be what a recipe copies.
    let changed: Vec<&str> = changes
        .iter()
        .flat_map(|c| std::iter::once(c.path.as_str()).chain(c.from.as_deref()))
        .collect();
    for r in recipes {
        let dir = r.path.rsplit_once('/').map_or("", |(d, _)| d);
        for src in &r.sources {
            let Some(pattern) = resolve(dir, src) else {
                continue;
            };
            let m = SourceMatcher::new(&pattern);
            for path in &changed {
                if m.matches(path) {
                    add(
                        &r.path,
                        Reason::FilesChanged {
                            source: src.clone(),
                            path: (*path).to_owned(),
                        },
                    );
                }
            }
        }
    }
    for reasons in out.rebuild.values_mut() {
        reasons.sort();
    }
    out.deleted = deleted.into_iter().collect();
    out
}

/// Joins a source onto the recipe's directory and normalises `.` and `..`;
/// `None` for absolute sources and ones that leave the repository.
fn resolve(dir: &str, src: &str) -> Option<String> {
    if src.is_empty() || src.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for p in src.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            _ => parts.push(p),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Matches a changed path against one resolved source: equal, below it, or
/// matched by it as a glob (the path or one of its parent directories).
struct SourceMatcher {
    literal: String,
    glob: Option<globset::GlobMatcher>,
}

impl SourceMatcher {
    fn new(pattern: &str) -> Self {
        let has_meta = pattern.contains(['*', '?', '[']);
        let glob = has_meta
            .then(|| {
                GlobBuilder::new(pattern)
                    .literal_separator(true)
                    .build()
                    .ok()
            })
            .flatten()
            .map(|g| g.compile_matcher());
        SourceMatcher {
            literal: pattern.to_owned(),
            glob,
        }
    }

    fn matches(&self, path: &str) -> bool {
        let under = |base: &str| {
            path == base
                || (path.starts_with(base) && path.as_bytes().get(base.len()) == Some(&b'/'))
        };
        if under(&self.literal) {
            return true;
        }
        let Some(g) = &self.glob else { return false };
        let mut p = path;
        loop {
            if g.is_match(p) {
                return true;
            }
            match p.rsplit_once('/') {
                Some((parent, _)) => p = parent,
                None => return false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_relative_sources() {
        assert_eq!(resolve("a/b", "x.txt").as_deref(), Some("a/b/x.txt"));
        assert_eq!(resolve("a/b", "../c/./d").as_deref(), Some("a/c/d"));
        assert_eq!(resolve("", "./x").as_deref(), Some("x"));
        assert_eq!(resolve("a", "../../x"), None);
        assert_eq!(resolve("a", "/etc/hosts"), None);
    }

    #[test]
    fn source_matching() {
        let m = SourceMatcher::new("app/src");
        assert!(m.matches("app/src"));
        assert!(m.matches("app/src/main.c"));
        assert!(!m.matches("app/srcx"));
        let g = SourceMatcher::new("app/*.py");
        assert!(g.matches("app/x.py"));
        assert!(!g.matches("app/sub/x.py"));
        let d = SourceMatcher::new("data/*");
        assert!(d.matches("data/sub/deep.txt"));
    }
}
