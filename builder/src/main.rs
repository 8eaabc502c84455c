//! `sreg`: the command-line tool for CI steps and build nodes.

mod agent;
mod build;
mod buildmeta;
mod ci_templates;
mod cli;
mod commands;
mod registry;

use clap::Parser;

use cli::{Cli, Command};

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect(args) => commands::inspect::run(&args),
        Command::Recipes(args) => commands::recipes::run(&args),
        Command::Login(args) => commands::login::run(&args),
        Command::Push(args) => commands::push::run(&args),
        Command::Pull(args) => commands::pull::run(&args),
        Command::Search(args) => commands::search::run(&args),
        Command::Build(args) => build::run(&args),
        Command::Watch(args) => commands::watch::run(&args),
        Command::Agent(args) => commands::agent::run(&args),
        Command::Project(command) => commands::project::run(&command),
        Command::Builds(args) => commands::builds::run(&args),
        Command::Ci(cli::CiCommand::Init(args)) => commands::ci::init(&args),
        Command::RunInRootfs(args) => build::native::run_in_rootfs(&args),
    };
    if let Err(err) = result {
        // `sreg inspect x.sif | head` closes the pipe early: not an error.
        let broken_pipe = err.chain().any(|e| {
            let kind = e
                .downcast_ref::<std::io::Error>()
                .map(std::io::Error::kind)
                .or_else(|| e.downcast_ref::<serde_json::Error>()?.io_error_kind());
            kind == Some(std::io::ErrorKind::BrokenPipe)
        });
        if broken_pipe {
            std::process::exit(0);
        }
        // `{:#}` prints the whole context chain on one line: what failed and why.
        eprintln!("sreg: {err:#}");
        std::process::exit(1);
    }
}
