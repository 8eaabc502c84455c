//! `sreg agent --registry URL [--concurrency N] [--labels a,b] ...`: a build
//! agent. Leases jobs from the registry, builds and pushes them, and
//! reports the result (see `crate::agent`). The token, an admin's, is read
//! from `SREG_TOKEN` only, so it never shows in the process list.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result, bail};
use tokio_util::sync::CancellationToken;

use crate::agent::{self, Agent, git};
use crate::cli::AgentArgs;
use crate::registry::{self, ENV_TOKEN};

pub fn run(args: &AgentArgs) -> Result<()> {
    let token = std::env::var(ENV_TOKEN)
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .with_context(|| format!("sreg agent needs an admin's token in {ENV_TOKEN}"))?;
    let client = sreg_api::client::Client::new(&args.registry, Some(token.clone()))
        .with_context(|| format!("cannot use the registry {}", args.registry))?;
    let name = match &args.name {
        Some(n) => n.clone(),
        None => nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "sreg-agent".into()),
    };
    let work_dir = args
        .work_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("sreg-agent"));
    std::fs::create_dir_all(&work_dir)
        .with_context(|| format!("cannot create the work folder {}", work_dir.display()))?;
    let labels: Vec<String> = args
        .labels
        .iter()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    eprintln!(
        "sreg agent {name}: registry {}, {} worker(s), backend {}, labels [{}], work folder {}",
        git::redact(&args.registry),
        args.concurrency,
        crate::build::backend_name(args.backend),
        labels.join(","),
        work_dir.display()
    );
    let agent = Arc::new(Agent {
        client,
        registry: args.registry.clone(),
        token,
        name,
        labels,
        backend: args.backend,
        work_dir,
        poll: args.poll,
        stop_leasing: CancellationToken::new(),
        cancel_builds: CancellationToken::new(),
        refused: AtomicBool::new(false),
    });
    let refused = registry::block_on(async {
        tokio::spawn(agent::watch_signals(agent.clone()));
        agent::run(agent.clone(), args.concurrency).await
    })?;
    if refused {
        bail!("the registry refused the token");
    }
    eprintln!("sreg agent: stopped");
    Ok(())
}
