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
