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
    /// Manage users, teams and tokens.
    Admin {
        #[command(flatten)]
        common: CommonArgs,
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Remove blobs no image references and abandoned uploads.
    Gc {
        #[command(flatten)]
        common: CommonArgs,
        /// Keep objects younger than this (an upload may still be finishing).
        #[arg(long, default_value = "1h")]
        grace: humantime::Duration,
        /// Only report what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Users.
    #[command(subcommand)]
    User(UserCommand),
    /// API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Teams (entities whose collections their members share).
    #[command(subcommand)]
    Team(TeamCommand),
    /// The build queue.
    #[command(subcommand)]
    Build(BuildCommand),
}

#[derive(Debug, Subcommand)]
pub enum BuildCommand {
    /// Queue builds of a project's recipes at a commit, as a webhook would;
    /// prints each new job as `ID REFERENCE`.
    Queue {
        /// The build project's name.
        #[arg(long)]
        project: String,
        /// The commit id (hex).
        #[arg(long)]
        commit: String,
        /// The branch (default: the project's).
        #[arg(long)]
        branch: Option<String>,
        /// A recipe to build, repeatable: PATH:NAME:TAG (the image becomes
        /// the project's ENTITY/COLLECTION/NAME:TAG).
        #[arg(long = "recipe", required = true)]
        recipes: Vec<String>,
        /// Leases a job gets before it fails for good.
        #[arg(long, env = "SREG_BUILD_MAX_ATTEMPTS", default_value_t = 3)]
        max_attempts: u32,
    },
    /// List build jobs, newest first.
    List {
        #[arg(long)]
        project: Option<String>,
        /// queued, running, succeeded, failed, cancelled or superseded.
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Cancel a job (a running one stops at its agent's next heartbeat).
    Cancel { id: i64 },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user.
    Add {
        name: String,
        /// Make the user an administrator.
        #[arg(long)]
        admin: bool,
        #[arg(long)]
        email: Option<String>,
    },
    /// Set a user's web sign-in password, read as one line from stdin (so
    /// that it is not in the shell history or the process list); ends the
    /// user's sessions.
    Passwd {
        name: String,
        /// Read the password from stdin (the only way; accepted for
        /// scripts that say so explicitly).
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it, alone, on stdout (the only time it is shown).
    Create {
        user: String,
        /// Lifetime, e.g. 30d, 12h (default: no expiry).
        #[arg(long)]
        expires_in: Option<String>,
        /// A label to recognise the token by.
        #[arg(long)]
        name: Option<String>,
    },
    /// List a user's tokens (never the tokens themselves).
    List { user: String },
    /// Revoke one of a user's tokens by id.
    Revoke { user: String, id: i64 },
}

#[derive(Debug, Subcommand)]
pub enum TeamCommand {
    /// Create a team owned by a user.
    Add {
        name: String,
        #[arg(long)]
        owner: String,
    },
    /// Add a user to a team (or change their role).
    Member {
        team: String,
        user: String,
        /// As an owner rather than a member.
        #[arg(long)]
        owner: bool,
    },
}

#[derive(Debug, Args)]
pub struct ServeCommand {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Options that every subcommand acting on a registry shares, so that they all
/// act on the same one. Global, so they may follow a nested subcommand
/// (`admin user add alice --data-dir d`).
#[derive(Debug, Default, Clone, Args)]
pub struct CommonArgs {
    /// TOML configuration file; flags and environment variables override it.
    #[arg(long, global = true, env = "SREG_CONFIG")]
    pub config: Option<PathBuf>,
    /// Folder for the embedded defaults (SQLite database, blob folder).
    #[arg(long, global = true, env = "SREG_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL: `sqlite://PATH` or `postgres://...`.
    #[arg(long, global = true, env = "SREG_DATABASE_URL")]
    pub database: Option<String>,
    /// Blob storage URL: `file:///PATH` or `s3://bucket/prefix` (with the usual `AWS_*` variables).
    #[arg(long, global = true, env = "SREG_STORAGE_URL")]
    pub storage: Option<String>,
    /// The server's secret key (default: `<data-dir>/secret.key`, created on first start).
    #[arg(long, global = true, env = "SREG_SECRET_KEY_FILE")]
    pub secret_key_file: Option<PathBuf>,
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
