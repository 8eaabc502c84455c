//! Command-line interface of `sreg-server` (a contract: see architecture.md).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "sreg-server",
    version,
    about = "The sreg Singularity/Apptainer image registry"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the registry.
    Serve(ServeCommand),
    /// Create or upgrade the database schema, then exit.
    Migrate(CommonArgs),
}

#[derive(Debug, Args)]
pub struct ServeCommand {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Options that every subcommand acting on a registry shares, so that they all
/// act on the same one.
#[derive(Debug, Default, Clone, Args)]
pub struct CommonArgs {
    /// TOML configuration file; flags and environment variables override it.
    #[arg(long, env = "SREG_CONFIG")]
    pub config: Option<PathBuf>,
    /// Folder for the embedded defaults (SQLite database, blob folder).
    #[arg(long, env = "SREG_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL: `sqlite://PATH` or `postgres://...`.
    #[arg(long, env = "SREG_DATABASE_URL")]
    pub database: Option<String>,
    /// Blob storage URL: `file:///PATH` or `s3://bucket/prefix` (with the usual `AWS_*` variables).
    #[arg(long, env = "SREG_STORAGE_URL")]
    pub storage: Option<String>,
}

#[derive(Debug, Default, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "SREG_LISTEN")]
    pub listen: Option<String>,
    /// URL under which clients reach this registry (used in the links it hands out).
    #[arg(long, env = "SREG_PUBLIC_URL")]
    pub public_url: Option<String>,
}
