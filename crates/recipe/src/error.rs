//! Error and diagnostic types. Parse errors always carry a 1-based line and
//! column and say what was expected.

use std::path::PathBuf;

use serde::Serialize;
use thiserror::Error;

/// A definition-file error at a position (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize)]
#[error("line {line}, column {column}: {kind}")]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub kind: ErrorKind,
}

impl ParseError {
    pub(crate) fn new(line: usize, column: usize, kind: ErrorKind) -> Self {
        ParseError { line, column, kind }
    }
}

/// What is wrong, and what was expected instead.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ErrorKind {
    #[error("the definition is empty: expected a `Bootstrap: <agent>` header")]
    Empty,
    #[error("no `Bootstrap:` header found: expected `Bootstrap: <agent>` as the first header key")]
    MissingBootstrap,
    #[error("`{found}` appears before `Bootstrap:`: expected `Bootstrap: <agent>` first")]
    BeforeBootstrap { found: String },
    #[error("expected `Key: value` in the header, found `{found}`")]
    HeaderSyntax { found: String },
    #[error("expected a header key before `:`")]
    EmptyHeaderKey,
    #[error("expected a bootstrap agent after `Bootstrap:`")]
    EmptyBootstrap,
    #[error("unknown bootstrap agent `{agent}`: expected one of {expected}")]
    UnknownAgent { agent: String, expected: String },
    #[error("`Bootstrap: {agent}` needs a `{key}:` header key")]
    MissingHeaderKey { agent: String, key: String },
    #[error("expected a value after `{key}:`")]
    EmptyHeaderValue { key: String },
    #[error(
        "section header `{found}` is indented: expected `%` at the start of the line (Apptainer does not recognise indented section names)"
    )]
    IndentedSection { found: String },
    #[error("expected a section name after `%`")]
    EmptySectionName,
    #[error("unknown section `%{name}`: expected one of {expected}")]
    UnknownSection { name: String, expected: String },
    #[error("`%{section}` needs an app name: expected `%{section} <app>`")]
    MissingAppName { section: String },
    #[error(
        "unexpected arguments `{found}` to `%files`: expected `%files` or `%files from <stage>`"
    )]
    FilesArgs { found: String },
    #[error("`%files from {stage}` names no earlier stage: expected {expected}")]
    UnknownStage { stage: String, expected: String },
    #[error(
        "`%files from {stage}` names the stage at line {stage_line}, which is this one or a later one: expected an earlier stage"
    )]
    LaterStage { stage: String, stage_line: usize },
    #[error(
        "stage name `{name}` is already used by the stage at line {first_line}: expected unique `Stage:` names"
    )]
    DuplicateStage { name: String, first_line: usize },
    #[error(
        "`%{section}` is repeated with different arguments (`{first}` at line {first_line}, `{second}` here): Apptainer merges the bodies and runs them with one interpreter only"
    )]
    ConflictingSectionArgs {
        section: String,
        first: String,
        first_line: usize,
        second: String,
    },
    #[error("expected `NAME=value` or `NAME=` in %arguments, found `{found}`")]
    ArgumentSyntax { found: String },
    #[error(
        "build argument `{name}` is not defined: expected a default in this stage's %arguments or a value from the caller"
    )]
    UndefinedBuildArg { name: String },
}

/// How serious a [`Diagnostic`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// An error or a warning at a position, as reported by [`crate::Definition::lint`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "line {}, column {}: {}: {}",
            self.line, self.column, sev, self.message
        )
    }
}

impl From<&ParseError> for Diagnostic {
    fn from(e: &ParseError) -> Self {
        Diagnostic {
            severity: Severity::Error,
            line: e.line,
            column: e.column,
            message: e.kind.to_string(),
        }
    }
}

/// A container name or tag that cannot be made valid.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NameError {
    #[error(
        "{what} `{original}` has no character of [a-z0-9] left after sanitizing: expected at least one letter or digit"
    )]
    Empty { what: String, original: String },
    #[error("{what} `{original}` is {len} characters long after sanitizing: expected at most 128")]
    TooLong {
        what: String,
        original: String,
        len: usize,
    },
}

/// Errors of a tree walk as a whole (a single bad recipe never fails the walk).
#[derive(Debug, Error)]
pub enum DiscoverError {
    #[error("invalid glob `{pattern}`: {source}")]
    Glob {
        pattern: String,
        #[source]
        source: globset::Error,
    },
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot derive a container name for the tree root {}: expected a root with a directory name, or `root_name` in the options", path.display())]
    RootName { path: PathBuf },
}

/// Errors of change detection between two revisions.
#[derive(Debug, Error)]
pub enum ChangesError {
    #[error("cannot run git: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("`git {args}` failed: {stderr}")]
    Git { args: String, stderr: String },
    #[error("`{rev}` is not a commit in {}: {stderr}", repo.display())]
    BadRevision {
        rev: String,
        repo: PathBuf,
        stderr: String,
    },
    #[error("unexpected output from `git {args}`: {detail}")]
    Output { args: String, detail: String },
    #[error(transparent)]
    Discover(#[from] DiscoverError),
}
