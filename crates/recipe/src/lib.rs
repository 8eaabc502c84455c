//! Singularity/Apptainer definition files: parse, validate, render, discover
//! recipes in a tree, name them, and find the ones to rebuild between two git
//! revisions.
//!
//! ```
//! use sreg_recipe::Definition;
//!
//! let text = "Bootstrap: docker\nFrom: alpine:3.20\n\n%post\n    apk add curl\n";
//! let def = Definition::parse(text)?;
//! assert_eq!(def.bootstrap(), "docker");
//! assert_eq!(def.from(), Some("alpine:3.20"));
//! assert_eq!(def.render(), text);
//! # Ok::<(), sreg_recipe::ParseError>(())
//! ```
//!
//! # Recipe names and tags
//!
//! Each recipe found in a tree gets a container name and a tag by one rule:
//!
//! | file | tag |
//! | --- | --- |
//! | `Singularity`, `Apptainer` (also `Singularity.def`, `Apptainer.def`) | `latest` |
//! | `Singularity.<tag>`, `Apptainer.<tag>` | everything after the **first** dot: `Singularity.v1.0` → `v1.0` |
//! | `<tag>.def` | `<tag>`: `samtools.def` → `samtools` |
//! | anything else a custom include glob matches | the file name before its last dot |
//!
//! The **name** is the name of the directory holding the recipe; recipes at the
//! root of the tree take the root directory's own name, or
//! [`DiscoverOptions::root_name`] when given. So `envs/Singularity.gpu` is
//! `envs:gpu` (never a tag with a slash), and `Singularity` at the root of a
//! clone named `tools` is `tools:latest`. When the recipe is two directories
//! deep or more, the directory above the name is reported as `collection`
//! (`bio/blast/Singularity.2.14` → collection `bio`, `blast:2.14`).
//!
//! Names, tags and collections are made to fit `[a-z0-9._-]`: ASCII letters are
//! lower-cased, every other character (blank, `+`, `@`, `:`, non-ASCII…)
//! becomes `-`, and `.`, `-` and `_` are trimmed from both ends
//! (`My Tools/Apptainer.CUDA 12` → `my-tools:cuda-12`). A value that ends up
//! empty (`Singularity.`, a directory named `__`) or longer than 128
//! characters is refused: the file is listed in [`Discovery::rejected`].
//!
//! Two recipes mapping to the same `name:tag` are both kept and reported in
//! [`Discovery::conflicts`]; nothing is overwritten.
//!
//! By default [`discover`] takes files named `Singularity`, `Singularity.*`,
//! `Apptainer`, `Apptainer.*` and `*.def`, minus names that are documentation,
//! images, scripts or markers (`Singularity.md`, `*.sif`, `*.simg`, `*.frozen`,
//! `*.sh`… see [`DEFAULT_EXCLUDE`]). It never enters `.git`, nor other hidden
//! directories unless [`DiscoverOptions::hidden`] is set.
//!
//! # What is accepted
//!
//! The parser follows Apptainer's own (`pkg/build/types/parser`):
//!
//! - A stage starts at a `Bootstrap:` line; a line beginning with
//!   `bootstrap:` (any case, first column) starts a new stage even inside a
//!   section body, as in Apptainer. Only blank and `#` comment lines may come
//!   before the first `Bootstrap:`; anything else is an error.
//! - Header lines are `Key: value`; keys are case-insensitive; a `#` starts a
//!   comment anywhere on a header line; a value ending in `\` continues on the
//!   next line. Unknown keys are kept and warned about (Apptainer rejects
//!   them). A key set twice is a warning; the last value wins.
//! - The bootstrap agent must be one Apptainer or SingularityCE knows
//!   ([`AGENTS`]); image agents need `From:`, `debootstrap` needs `OSVersion:`
//!   and `MirrorURL:`, `yum`/`dnf`/`busybox` need `MirrorURL:`. `Stage:` names
//!   must be unique.
//! - A section starts at a line whose first word begins with `%`. It must be
//!   in the first column (Apptainer misreads indented ones) and name a known
//!   section (names are case-insensitive); app sections need an app name.
//!   A trailing `# comment` on a section line is ignored.
//! - `%files` takes no argument or `from <stage>` naming an **earlier**
//!   stage. Repeated `%files` are merged, as Apptainer does. Other repeated
//!   sections are concatenated by Apptainer: a warning here, and an error when
//!   both carry different arguments (two `-c` shells). `%pre` is a warning.
//!   Arguments other than `-c <shell>` on script sections, and any argument on
//!   other sections, are warnings.
//! - `%labels` lines are `Name value…` (split at the first blank: space or
//!   tab, where Apptainer only splits at a space). `%files` lines are
//!   `src [dest]`; double or single quotes group a path with blanks.
//! - `%arguments` lines are `NAME=value` (quotes around the value are removed);
//!   `{{ NAME }}` elsewhere is replaced by [`Definition::with_build_args`],
//!   with the caller's value first, then the default of the reference's own
//!   stage; an undefined one is an error. A reference without a default is a
//!   warning at parse time.
//!
//! [`Definition::render`] gives back the parsed text byte for byte (CRLF, tabs,
//! trailing blanks, a missing final newline, a byte-order mark);
//! [`Definition::render_canonical`] gives a normalised text.

mod args;
mod changes;
mod definition;
mod discover;
mod error;
mod git;
mod header;
mod line;
mod naming;
mod parse;
mod rebuild;
mod render;
mod section;
mod validate;

pub use changes::{Affected, ChangeStatus, PathChange, Reason, RecipeSources, affected_recipes};
pub use definition::{BuildArgRef, Definition, Stage};
pub use discover::{
    Conflict, DEFAULT_EXCLUDE, DEFAULT_INCLUDE, DEFAULT_MAX_FILE_SIZE, DiscoverOptions, Discovery,
    Recipe, RecipeError, RecipeMatcher, Rejected, discover,
};
pub use error::{
    ChangesError, Diagnostic, DiscoverError, ErrorKind, NameError, ParseError, Severity,
};
pub use header::{AGENTS, Header, HeaderField, canonical_key, is_known_key};
pub use naming::{ImageName, MAX_LEN, derive as derive_name, raw_tag, sanitize};
pub use rebuild::{ChangeSet, ChangedRecipe, DeletedRecipe, changed_recipes};
pub use section::{Argument, FileEntry, Label, Section, SectionKind};
