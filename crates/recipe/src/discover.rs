//! Finding recipes in a directory tree.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use serde::Serialize;
use thiserror::Error;
use walkdir::WalkDir;

use crate::definition::Definition;
use crate::error::{DiscoverError, ParseError};
use crate::naming::{self, ImageName};

/// File names taken as recipes unless told otherwise.
pub const DEFAULT_INCLUDE: &[&str] = &[
    "Singularity",
    "Singularity.*",
    "Apptainer",
    "Apptainer.*",
    "*.def",
];

/// Files that look like recipes by name but are documentation, images,
/// scripts or markers (`Singularity.md`, `Singularity.sif`, `x.def.frozen`…).
pub const DEFAULT_EXCLUDE: &[&str] = &[
    "*.md",
    "*.markdown",
    "*.rst",
    "*.txt",
    "*.html",
    "*.pdf",
    "*.sif",
    "*.simg",
    "*.img",
    "*.sqsh",
    "*.squashfs",
    "*.frozen",
    "*.sh",
    "*.bash",
    "*.py",
    "*.json",
    "*.yml",
    "*.yaml",
    "*.toml",
    "*.cfg",
    "*.lock",
    "*.log",
    "*.bak",
    "*.orig",
    "*.rej",
    "*.swp",
    "*~",
    "*.tar",
    "*.gz",
    "*.tgz",
    "*.bz2",
    "*.xz",
    "*.zip",
    "*.png",
    "*.jpg",
    "*.svg",
    "*.diff",
    "*.patch",
];

/// Recipe files larger than this are reported, not parsed.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 1 << 20;

/// What to look for and how to name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoverOptions {
    /// Globs of recipe files. A glob without `/` matches the file name at any
    /// depth; one with `/` matches the path relative to the root (`*` stays
    /// within a directory, `**` crosses them).
    pub include: Vec<String>,
    /// Globs of files and directories to leave out, read like `include`.
    pub exclude: Vec<String>,
    /// Container name for recipes at the root; default: the root's directory name.
    pub root_name: Option<String>,
    /// Walk into hidden directories (names starting with `.`); `.git` never.
    pub hidden: bool,
    pub follow_links: bool,
    pub max_file_size: u64,
    /// Parse each recipe (turn off to only list and name them).
    pub parse: bool,
}

impl Default for DiscoverOptions {
    fn default() -> Self {
        DiscoverOptions {
            include: DEFAULT_INCLUDE.iter().map(|s| (*s).to_owned()).collect(),
            exclude: DEFAULT_EXCLUDE.iter().map(|s| (*s).to_owned()).collect(),
            root_name: None,
            hidden: false,
            follow_links: false,
            max_file_size: DEFAULT_MAX_FILE_SIZE,
            parse: true,
        }
    }
}

/// Decides whether a relative path is a recipe; shared by the tree walk and
/// by change detection so that both agree.
#[derive(Debug, Clone)]
pub struct RecipeMatcher {
    include_name: GlobSet,
    include_path: GlobSet,
    exclude_name: GlobSet,
    exclude_path: GlobSet,
    hidden: bool,
}

fn glob_sets(patterns: &[String]) -> Result<(GlobSet, GlobSet), DiscoverError> {
    let mut by_name = GlobSetBuilder::new();
    let mut by_path = GlobSetBuilder::new();
    for p in patterns {
        let err = |source| DiscoverError::Glob {
            pattern: p.clone(),
            source,
        };
        if p.contains('/') {
            let g = GlobBuilder::new(p.trim_start_matches('/'))
                .literal_separator(true)
                .build()
                .map_err(err)?;
            by_path.add(g);
        } else {
            by_name.add(Glob::new(p).map_err(err)?);
        }
    }
    let build = |b: GlobSetBuilder| {
        b.build().map_err(|source| DiscoverError::Glob {
            pattern: patterns.join(" "),
            source,
        })
    };
    Ok((build(by_name)?, build(by_path)?))
}

fn is_hidden(name: &str) -> bool {
    name.starts_with('.')
}

impl RecipeMatcher {
    pub fn new(options: &DiscoverOptions) -> Result<RecipeMatcher, DiscoverError> {
        let (include_name, include_path) = glob_sets(&options.include)?;
        let (exclude_name, exclude_path) = glob_sets(&options.exclude)?;
        Ok(RecipeMatcher {
            include_name,
            include_path,
            exclude_name,
            exclude_path,
            hidden: options.hidden,
        })
    }

    /// Whether a `/`-separated path relative to the root is a recipe (any
    /// directory on the way counts: a hidden or excluded one rules it out).
    pub fn is_recipe(&self, relative: &str) -> bool {
        let mut parts: Vec<&str> = relative.split('/').filter(|p| !p.is_empty()).collect();
        let Some(name) = parts.pop() else {
            return false;
        };
        let mut prefix = String::new();
        for dir in parts {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(dir);
            if self.skips_dir(&prefix, dir) {
                return false;
            }
        }
        self.is_recipe_file(relative, name)
    }

    fn is_recipe_file(&self, relative: &str, name: &str) -> bool {
        !is_hidden(name)
            && (self.include_name.is_match(name) || self.include_path.is_match(relative))
            && !self.exclude_name.is_match(name)
            && !self.exclude_path.is_match(relative)
    }

    fn skips_dir(&self, relative: &str, name: &str) -> bool {
        name == ".git"
            || (is_hidden(name) && !self.hidden)
            || self.exclude_name.is_match(name)
            || self.exclude_path.is_match(relative)
    }
}

/// Why a found recipe could not be read or parsed.
///
/// In JSON: `{"kind": "read"|"not_utf8"|"too_large"|"parse", "message": "<the
/// whole error as text>"}`, plus `line`, `column` and `error` (the
/// [`ErrorKind`](crate::ErrorKind) object) for `parse`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RecipeError {
    #[error("cannot read the file: {message}")]
    Read { message: String },
    #[error("the file is not UTF-8 text")]
    NotUtf8,
    #[error("the file has {size} bytes: expected a definition of at most {max}")]
    TooLarge { size: u64, max: u64 },
    #[error("{0}")]
    Parse(ParseError),
}

impl Serialize for RecipeError {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        let kind = match self {
            RecipeError::Read { .. } => "read",
            RecipeError::NotUtf8 => "not_utf8",
            RecipeError::TooLarge { .. } => "too_large",
            RecipeError::Parse(_) => "parse",
        };
        m.serialize_entry("kind", kind)?;
        m.serialize_entry("message", &self.to_string())?;
        match self {
            RecipeError::TooLarge { size, max } => {
                m.serialize_entry("size", size)?;
                m.serialize_entry("max", max)?;
            }
            RecipeError::Parse(e) => {
                m.serialize_entry("line", &e.line)?;
                m.serialize_entry("column", &e.column)?;
                m.serialize_entry("error", &e.kind)?;
            }
            RecipeError::Read { .. } | RecipeError::NotUtf8 => {}
        }
        m.end()
    }
}

/// One recipe found in the tree.
#[derive(Debug, Clone, Serialize)]
pub struct Recipe {
    /// Path relative to the root, `/`-separated.
    pub path: String,
    pub collection: Option<String>,
    pub name: String,
    pub tag: String,
    /// A `.frozen` file in its directory, or a `<recipe>.frozen` beside it,
    /// asks CI not to rebuild it (the circle-ci-sregistry convention).
    pub frozen: bool,
    /// Bootstrap agent and base of the final stage, when parsed.
    pub bootstrap: Option<String>,
    pub from: Option<String>,
    pub error: Option<RecipeError>,
    #[serde(skip)]
    pub definition: Option<Definition>,
}

impl Recipe {
    pub fn image(&self) -> ImageName {
        ImageName {
            collection: self.collection.clone(),
            name: self.name.clone(),
            tag: self.tag.clone(),
        }
    }
}

/// Several recipes that would push to the same `name:tag`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    pub name: String,
    pub tag: String,
    pub paths: Vec<String>,
}

/// A file that matched but cannot be named (or a directory that cannot be read).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejected {
    pub path: String,
    pub reason: String,
}

/// The result of a tree walk.
#[derive(Debug, Clone, Serialize)]
pub struct Discovery {
    pub root: PathBuf,
    /// Sorted by path.
    pub recipes: Vec<Recipe>,
    pub conflicts: Vec<Conflict>,
    pub rejected: Vec<Rejected>,
}

pub(crate) fn root_name(root: &Path, options: &DiscoverOptions) -> Result<String, DiscoverError> {
    if let Some(n) = &options.root_name {
        return Ok(n.clone());
    }
    let abs = root.canonicalize().map_err(|source| DiscoverError::Io {
        path: root.to_path_buf(),
        source,
    })?;
    abs.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| DiscoverError::RootName {
            path: root.to_path_buf(),
        })
}

fn relative_string(path: &Path) -> String {
    let parts: Vec<String> = path
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    parts.join("/")
}

/// Walks `root` and returns every recipe with its name, tag and parsed
/// definition (or the reason it could not be parsed), plus name conflicts.
pub fn discover(root: &Path, options: &DiscoverOptions) -> Result<Discovery, DiscoverError> {
    let matcher = RecipeMatcher::new(options)?;
    let root_name = root_name(root, options)?;
    let mut files: HashSet<String> = HashSet::new();
    let mut candidates: Vec<(String, PathBuf)> = Vec::new();
    let mut rejected = Vec::new();

    let walker = WalkDir::new(root)
        .follow_links(options.follow_links)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            e.depth() == 0
                || !e.file_type().is_dir()
                || !matcher.skips_dir(
                    &relative_string(e.path().strip_prefix(root).unwrap_or(e.path())),
                    &e.file_name().to_string_lossy(),
                )
        });
    for entry in walker {
        let entry = match entry {
            Ok(e) => e,
            Err(err) if err.depth() == 0 => {
                return Err(DiscoverError::Io {
                    path: root.to_path_buf(),
                    source: err.into(),
                });
            }
            Err(err) => {
                let path = err
                    .path()
                    .and_then(|p| p.strip_prefix(root).ok())
                    .map(relative_string);
                rejected.push(Rejected {
                    path: path.unwrap_or_default(),
                    reason: err.to_string(),
                });
                continue;
            }
        };
        if entry.file_type().is_dir() {
            continue;
        }
        let rel = relative_string(entry.path().strip_prefix(root).unwrap_or(entry.path()));
        let name = entry.file_name().to_string_lossy();
        if matcher.is_recipe_file(&rel, &name) {
            candidates.push((rel.clone(), entry.into_path()));
        }
        files.insert(rel);
    }

    let mut recipes = Vec::with_capacity(candidates.len());
    for (rel, path) in candidates {
        let image = match naming::derive(Path::new(&rel), &root_name) {
            Ok(i) => i,
            Err(e) => {
                rejected.push(Rejected {
                    path: rel,
                    reason: e.to_string(),
                });
                continue;
            }
        };
        let frozen = is_frozen(&rel, &files);
        let parsed = if options.parse {
            Some(read_definition(&path, options.max_file_size))
        } else {
            None
        };
        recipes.push(make_recipe(rel, image, frozen, parsed));
    }

    let conflicts = find_conflicts(&recipes);
    Ok(Discovery {
        root: root.to_path_buf(),
        recipes,
        conflicts,
        rejected,
    })
}

/// A `.frozen` file in the recipe's directory or a `<recipe>.frozen` beside it.
pub(crate) fn is_frozen(recipe: &str, files: &HashSet<String>) -> bool {
    files.contains(&format!("{recipe}.frozen"))
        || files.contains(&match recipe.rsplit_once('/') {
            Some((dir, _)) => format!("{dir}/.frozen"),
            None => ".frozen".to_owned(),
        })
}

pub(crate) fn make_recipe(
    path: String,
    image: ImageName,
    frozen: bool,
    parsed: Option<Result<Definition, RecipeError>>,
) -> Recipe {
    let (definition, error) = match parsed {
        Some(Ok(d)) => (Some(d), None),
        Some(Err(e)) => (None, Some(e)),
        None => (None, None),
    };
    Recipe {
        path,
        collection: image.collection,
        name: image.name,
        tag: image.tag,
        frozen,
        bootstrap: definition.as_ref().map(Definition::bootstrap),
        from: definition
            .as_ref()
            .and_then(|d| d.from().map(str::to_owned)),
        error,
        definition,
    }
}

fn read_definition(path: &Path, max: u64) -> Result<Definition, RecipeError> {
    let read_err = |e: std::io::Error| RecipeError::Read {
        message: e.to_string(),
    };
    let size = std::fs::metadata(path).map_err(read_err)?.len();
    if size > max {
        return Err(RecipeError::TooLarge { size, max });
    }
    let bytes = std::fs::read(path).map_err(read_err)?;
    parse_bytes(bytes)
}

pub(crate) fn parse_bytes(bytes: Vec<u8>) -> Result<Definition, RecipeError> {
    let text = String::from_utf8(bytes).map_err(|_| RecipeError::NotUtf8)?;
    Definition::parse(&text).map_err(RecipeError::Parse)
}

pub(crate) fn find_conflicts(recipes: &[Recipe]) -> Vec<Conflict> {
    let mut by_ref: BTreeMap<(&str, &str), Vec<String>> = BTreeMap::new();
    for r in recipes {
        by_ref
            .entry((r.name.as_str(), r.tag.as_str()))
            .or_default()
            .push(r.path.clone());
    }
    by_ref
        .into_iter()
        .filter(|(_, paths)| paths.len() > 1)
        .map(|((name, tag), paths)| Conflict {
            name: name.to_owned(),
            tag: tag.to_owned(),
            paths,
        })
        .collect()
}
