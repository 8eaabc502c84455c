//! `sreg-server`: the Singularity/Apptainer image registry.

use anyhow::Result;
use clap::Parser;

use registry_server::cli::{Cli, Command};
use registry_server::{config::Config, serve};

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
    }
}
