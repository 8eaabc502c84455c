//! `sreg-server`: the Singularity/Apptainer image registry.

use anyhow::Result;
use clap::Parser;

use registry_server::cli::{Cli, Command};
use registry_server::config::Config;
use registry_server::serve::{self, AppState};

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    registry_server::logging::init();
    match cli.command {
        Command::Serve(args) => {
            let config = Config::load(&args.common, &args.serve)?;
            serve::run(config).await
        }
        Command::Migrate(common) => {
            let config = Config::load(&common, &Default::default())?;
            serve::migrate_only(&config).await
        }
        Command::Admin { common, command } => {
            let config = Config::load(&common, &Default::default())?;
            let state = AppState::open(config).await?;
            registry_server::admin::run(&state.db.pool, &state.keys, &command).await
        }
        Command::Gc {
            common,
            grace,
            dry_run,
        } => {
            let config = Config::load(&common, &Default::default())?;
            let state = AppState::open(config).await?;
            let r = registry_server::gc::run(&state.db.pool, &state.storage, grace.into(), dry_run)
                .await?;
            let verb = if dry_run { "would remove" } else { "removed" };
            eprintln!(
                "gc: {verb} {} unreferenced blob(s) and {} abandoned upload(s), {} bytes",
                r.blobs_removed, r.uploads_removed, r.bytes_freed
            );
            Ok(())
        }
    }
}
