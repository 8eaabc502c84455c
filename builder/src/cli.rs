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
    /// Build a SIF image from a recipe (definition file), with a JSON build record beside it.
    Build(BuildArgs),
    /// Build agent: lease build jobs from the registry, build, push and report them.
    Agent(AgentArgs),
    /// Build and push whatever recipes changed in git repositories, without a registry project.
    Watch(WatchArgs),
    /// Manage the registry's build projects (repositories built automatically).
    #[command(subcommand)]
    Project(ProjectCommand),
    /// List, show, follow and cancel the registry's build jobs.
    Builds(BuildsArgs),
    /// Set up a CI service to build and push a recipe repository's images.
    #[command(subcommand)]
    Ci(CiCommand),
    /// Runs one command inside a root filesystem (used by the native backend).
    #[command(name = "__run-in-rootfs", hide = true)]
    RunInRootfs(RunInRootfsArgs),
}

/// Where `sreg build` runs a recipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// apptainer or singularity when on PATH, else native.
    Auto,
    Apptainer,
    Singularity,
    /// Built by sreg itself, without Apptainer.
    Native,
    /// Inside a fresh container of a Docker-API engine (Docker, podman).
    Docker,
    /// As a Slurm batch job.
    Slurm,
}

/// How the native backend runs `%post` and `%test` inside the root filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// chroot in a private mount namespace as root; otherwise a user namespace, else proot.
    Auto,
    /// chroot with /proc, /sys, /dev bound in a private mount namespace (root only).
    Chroot,
    /// A user namespace where the caller is root, then chroot.
    Userns,
    /// proot (no privileges needed).
    Proot,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The recipe (definition file).
    pub recipe: PathBuf,
    /// The image to write (default: NAME_TAG.sif in the current folder, named as `sreg recipes`
    /// names the recipe). The build record goes beside it as NAME_TAG.build.json, the log as
    /// NAME_TAG.build.log.
    #[arg(short, long, value_name = "OUT.sif")]
    pub output: Option<PathBuf>,
    /// Where to build.
    #[arg(long, value_enum, default_value = "auto", env = "SREG_BUILD_BACKEND")]
    pub backend: BackendKind,
    /// A build argument for `{{ NAME }}` in the recipe (repeatable).
    #[arg(long = "build-arg", value_name = "NAME=VALUE")]
    pub build_args: Vec<String>,
    /// A file of NAME=VALUE lines of build arguments.
    #[arg(long, value_name = "FILE")]
    pub build_arg_file: Option<PathBuf>,
    /// Do not run the recipe's %test section.
    #[arg(long)]
    pub notest: bool,
    /// Stop the build after this long (such as 90m or 2h); the partial image is removed.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub timeout: Option<std::time::Duration>,
    /// Replace OUT if it exists.
    #[arg(short, long)]
    pub force: bool,
    /// Folder for the root filesystems of a native build (default: beside OUT).
    #[arg(long, value_name = "DIR", env = "SREG_TMPDIR")]
    pub tmpdir: Option<PathBuf>,
    /// Reach OCI, ORAS, library and shub registries over plain HTTP
    /// (SREG_NOHTTPS takes 1/0, true/false, yes/no, on/off).
    #[arg(long, env = "SREG_NOHTTPS", value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::SetTrue)]
    pub nohttps: bool,
    /// How the native backend runs %post and %test.
    #[arg(long, value_enum, default_value = "auto")]
    pub isolation: Isolation,
    /// Compression of the native backend's squashfs (mksquashfs -comp); gzip is what
    /// Apptainer uses and every runtime reads.
    #[arg(long, value_name = "ALGO", default_value = "gzip", env = "SREG_SQUASHFS_COMP",
          value_parser = ["gzip", "xz", "zstd", "lz4", "lzo", "lzma"])]
    pub squashfs_comp: String,
    /// Print the build log only to the log file, not to stderr.
    #[arg(short, long)]
    pub quiet: bool,
    /// The container image the docker backend builds in (default:
    /// localhost/sreg-builder:latest, built from scripts/docker/Dockerfile).
    #[arg(long, value_name = "IMAGE", env = "SREG_DOCKER_IMAGE")]
    pub docker_image: Option<String>,
    /// The network of the docker backend's build container: the engine's
    /// default unless set; `none` cuts the build off the network.
    #[arg(long, value_name = "NETWORK", env = "SREG_DOCKER_NETWORK")]
    pub docker_network: Option<String>,
    /// Slurm partition for the slurm backend.
    #[arg(long, value_name = "NAME", env = "SREG_SLURM_PARTITION")]
    pub slurm_partition: Option<String>,
    /// Slurm time limit for the slurm backend (sbatch --time syntax).
    #[arg(long, value_name = "TIME")]
    pub slurm_time: Option<String>,
    /// More sbatch options (repeatable), such as --slurm-arg=--mem=8G.
    #[arg(long = "slurm-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub slurm_args: Vec<String>,
    /// The backend the Slurm job builds with on the compute node.
    #[arg(long, value_enum, default_value = "auto")]
    pub slurm_backend: BackendKind,
}

#[derive(Debug, Args)]
pub struct RunInRootfsArgs {
    /// The root filesystem.
    #[arg(long)]
    pub rootfs: PathBuf,
    #[arg(long, value_enum)]
    pub isolation: Isolation,
    /// Mount the root filesystem read-only (for %test).
    #[arg(long)]
    pub read_only: bool,
    /// Working directory inside the root filesystem.
    #[arg(long, default_value = "/")]
    pub cwd: String,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
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
    /// Ignore the build record `sreg build` wrote beside the image (NAME.build.json).
    #[arg(long)]
    pub no_build_record: bool,
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

/// What `sreg recipes` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RecipesFormat {
    Table,
    Json,
    Matrix,
    Tsv,
}

#[derive(Debug, Args)]
pub struct RecipesArgs {
    /// Root of the tree to search (a recipe repository).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Only recipes that must be rebuilt since this git revision (commit, branch, tag).
    #[arg(long, value_name = "GITREF")]
    pub changed_since: Option<String>,
    /// Print JSON instead of a table (the same as `--format json`).
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// Output: a table, the JSON document, or for CI steps `matrix` (one line
    /// of JSON: `[{"recipe":PATH,"image":REF},...]`) or `tsv` (`PATH<TAB>REF`
    /// lines). `matrix` and `tsv` leave out frozen recipes.
    #[arg(long, value_enum, default_value = "table")]
    pub format: RecipesFormat,
    /// Collection that `matrix` and `tsv` put in each image reference
    /// (`COLLECTION/NAME:TAG`).
    #[arg(long, env = "SREG_COLLECTION")]
    pub collection: Option<String>,
    /// When the `--changed-since` revision is not in the clone (a force-push,
    /// a shallow clone), list every recipe instead of failing. An empty or
    /// all-zero revision always means every recipe.
    #[arg(long, requires = "changed_since")]
    pub fallback_all: bool,
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

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The registry (default: SREG_REGISTRY); the token, an admin's, comes from SREG_TOKEN.
    #[arg(long, env = "SREG_REGISTRY", value_name = "URL")]
    pub registry: String,
    /// The backend for jobs whose project names none.
    #[arg(long, value_enum, default_value = "auto", env = "SREG_BUILD_BACKEND")]
    pub backend: BackendKind,
    /// How many builds at once.
    #[arg(long, default_value_t = 1, env = "SREG_AGENT_CONCURRENCY",
          value_parser = clap::value_parser!(u32).range(1..=64))]
    pub concurrency: u32,
    /// Labels this agent offers (comma-separated); a job is taken only if it has all the job's.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "LABEL,...",
        env = "SREG_AGENT_LABELS"
    )]
    pub labels: Vec<String>,
    /// The agent's name in the job records (default: the host name).
    #[arg(long, env = "SREG_AGENT_NAME")]
    pub name: Option<String>,
    /// Where jobs are cloned and built (a folder per job, removed afterwards).
    #[arg(long, value_name = "DIR", env = "SREG_AGENT_WORK_DIR")]
    pub work_dir: Option<PathBuf>,
    /// How long to wait before asking again when there is no job.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub poll: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Git repositories to watch (any URL git can fetch).
    #[arg(required = true, value_name = "REPO_URL")]
    pub repositories: Vec<String>,
    /// Where images go: ENTITY/COLLECTION or COLLECTION (default: the repository's name).
    #[arg(long)]
    pub collection: Option<String>,
    /// The branch to build (default: the remote's HEAD).
    #[arg(long)]
    pub branch: Option<String>,
    /// Time between passes.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub interval: std::time::Duration,
    /// Make one pass and exit (non-zero if a build or push failed).
    #[arg(long)]
    pub once: bool,
    /// The backend to build with.
    #[arg(long, value_enum, default_value = "auto")]
    pub backend: BackendKind,
    /// Where clones and the record of what was built are kept (default:
    /// $XDG_STATE_HOME/sreg/watch or ~/.local/state/sreg/watch).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum CiCommand {
    /// Write the CI configuration that builds changed recipes and pushes them
    /// (pull requests build only). Idempotent: files already as they would be
    /// written are left alone; files that differ are only replaced with --force.
    Init(CiInitArgs),
}

/// CI services `sreg ci init` writes a pipeline for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CiProvider {
    Github,
    Gitlab,
    Circleci,
    Travis,
    Jenkins,
}

#[derive(Debug, Args)]
pub struct CiInitArgs {
    /// The CI service.
    #[arg(long, value_enum)]
    pub provider: CiProvider,
    /// The registry pipelines push to (default: SREG_REGISTRY, else the one
    /// `sreg login` saved).
    #[arg(long, value_name = "URL")]
    pub registry: Option<String>,
    /// Where images go: COLLECTION or ENTITY/COLLECTION (default: the
    /// repository folder's name).
    #[arg(long, value_name = "C")]
    pub collection: Option<String>,
    /// The branch whose pushes publish images (default: the checked-out branch, else main).
    #[arg(long)]
    pub branch: Option<String>,
    /// The Apptainer release pipelines install.
    #[arg(long, default_value = "1.4.1", value_name = "VERSION")]
    pub apptainer_version: String,
    /// The recipe repository to write into.
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub dir: PathBuf,
    /// Print the files instead of writing them.
    #[arg(long)]
    pub dry_run: bool,
    /// Replace files that exist with other content.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Create a build project; prints its webhook secret (once) and webhook URLs.
    Create(Box<ProjectCreateArgs>),
    /// List build projects.
    List(JsonFlag),
    /// Show one build project.
    Show(ProjectNameArgs),
    /// Delete a build project.
    Delete(ProjectNameArgs),
}

#[derive(Debug, Args)]
pub struct JsonFlag {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ProjectNameArgs {
    pub name: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// A forge to report commit statuses to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ForgeArg {
    Github,
    Gitlab,
    Gitea,
}

#[derive(Debug, Args)]
pub struct ProjectCreateArgs {
    /// The project's name ([a-z0-9._-]).
    pub name: String,
    /// The repository's clone URL.
    #[arg(long)]
    pub repository: String,
    /// Where images go: ENTITY/COLLECTION.
    #[arg(long)]
    pub collection: String,
    /// The branch to build (default: main).
    #[arg(long)]
    pub branch: Option<String>,
    /// Which files are recipes (repeatable; default: those of `sreg recipes`).
    #[arg(long = "recipes", value_name = "GLOB", num_args = 1..)]
    pub recipes: Vec<String>,
    /// The backend agents build with (native, apptainer, docker, slurm).
    #[arg(long)]
    pub backend: Option<String>,
    /// Labels an agent must have to take the project's jobs (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "LABEL,...")]
    pub labels: Vec<String>,
    /// The forge to report commit statuses to.
    #[arg(long, value_enum, requires_all = ["forge_api_url", "forge_repository"])]
    pub forge: Option<ForgeArg>,
    /// The forge's API base URL.
    #[arg(long, value_name = "URL")]
    pub forge_api_url: Option<String>,
    /// The repository on the forge (OWNER/NAME, or a GitLab project path).
    #[arg(long, value_name = "OWNER/NAME")]
    pub forge_repository: Option<String>,
    /// The environment variable holding the forge's API token (never given on the command line).
    #[arg(long, value_name = "VAR")]
    pub forge_token_env: Option<String>,
    /// Poll the repository this often (for repositories that cannot send webhooks).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub poll: Option<std::time::Duration>,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BuildsArgs {
    #[command(subcommand)]
    pub command: Option<BuildsCommand>,
    /// Only the builds of this project (name).
    #[arg(long)]
    pub project: Option<String>,
    /// Only builds in this state (queued, running, succeeded, failed, cancelled, superseded).
    #[arg(long)]
    pub state: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum BuildsCommand {
    /// Show one build job.
    Show {
        id: i64,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print a build job's log.
    Log {
        id: i64,
        /// Keep printing while the build runs, until it ends.
        #[arg(short, long)]
        follow: bool,
    },
    /// Ask for a build job to be cancelled.
    Cancel { id: i64 },
}
