//! Command-line interface of `sreg` (a contract: see architecture.md).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "sreg",
    version,
    about = "Build, inspect and publish Singularity/Apptainer images"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show a SIF file's header, objects, definition file and labels.
    Inspect(InspectArgs),
    /// List the recipes (definition files) in a tree, with their image names and tags.
    Recipes(RecipesArgs),
    /// Save a registry URL and token (verified first) for push, pull and search.
    Login(LoginArgs),
    /// Upload a SIF image to the registry, with its build metadata and log.
    Push(PushArgs),
    /// Download an image, verify its sha256 and put it in place atomically.
    Pull(PullArgs),
    /// Search the registry's collections and containers.
    Search(SearchArgs),
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The registry's URL, such as https://sreg.example.org.
    pub url: String,
    /// The token (default: prompted for without echo on a terminal, else read from stdin).
    #[arg(long)]
    pub token: Option<String>,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// The SIF file.
    pub file: PathBuf,
    /// Where it goes: [library://[HOST/]]ENTITY/COLLECTION/CONTAINER[:TAG] or COLLECTION/CONTAINER[:TAG].
    #[arg(value_name = "REF")]
    pub reference: String,
    /// The recipe (definition file) it was built from: its text and path are stored with the image.
    #[arg(long, value_name = "FILE")]
    pub recipe: Option<PathBuf>,
    /// The build log, stored with the image.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Build metadata, repeatable: recipe_path, repository, branch, commit, builder_host,
    /// backend, backend_version, started_at, finished_at, duration_seconds, ci_provider,
    /// ci_url; other keys are kept as extra metadata. Overrides what CI variables say.
    #[arg(long, value_name = "KEY=VALUE")]
    pub meta: Vec<String>,
    /// More tags for the image, besides the reference's (repeatable).
    #[arg(long, value_name = "TAG")]
    pub tag: Vec<String>,
    /// Make a collection this push creates private (default: the registry's setting).
    #[arg(long)]
    pub private: bool,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// The image: [library://[HOST/]]ENTITY/COLLECTION/CONTAINER[:TAG] or COLLECTION/CONTAINER[:TAG].
    #[arg(value_name = "REF")]
    pub reference: String,
    /// Where to write it (default: CONTAINER_TAG.sif in the current folder).
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// The architecture to pull (default: any, preferring amd64).
    #[arg(long)]
    pub arch: Option<String>,
    /// Replace OUT if it exists.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// A word to look for in names, descriptions and tags.
    pub word: String,
    /// Print the JSON answer of /api/v1/search instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The SIF file.
    pub file: PathBuf,
    /// Print JSON (schema in the README) instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RecipesArgs {
    /// Root of the tree to search (a recipe repository).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Only recipes that must be rebuilt since this git revision (commit, branch, tag).
    #[arg(long, value_name = "GITREF")]
    pub changed_since: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Container name for recipes at the root of the tree (default: the tree's folder name).
    #[arg(long)]
    pub name: Option<String>,
    /// Which files are recipes (repeatable; replaces the defaults `Singularity`,
    /// `Singularity.*`, `Apptainer`, `Apptainer.*`, `*.def`).
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,
    /// Files or folders to leave out (repeatable; added to the defaults).
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
}
