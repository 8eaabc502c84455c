//! The pieces of `sreg agent` and `sreg watch`: git checkouts, the
//! `sreg build` / `sreg push` child processes, and the agent's workers.

pub mod child;
pub mod git;
mod job;
mod logstream;
mod retry;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sreg_api::builds::LeaseRequest;
use sreg_api::client::Client;
use tokio_util::sync::CancellationToken;

use crate::cli::BackendKind;

/// What every worker of one agent shares.
pub struct Agent {
    pub client: Client,
    /// For the `sreg push` children.
    pub registry: String,
    pub token: String,
    pub name: String,
    pub labels: Vec<String>,
    pub backend: BackendKind,
    pub work_dir: PathBuf,
    pub poll: Duration,
    /// First signal: lease no more jobs.
    pub stop_leasing: CancellationToken,
    /// Second signal: stop the running builds too.
    pub cancel_builds: CancellationToken,
    /// The registry refused the token: the agent exits with an error.
    pub refused: AtomicBool,
}

/// Runs `concurrency` workers until a signal stops them (see
/// [`watch_signals`]); returns whether the registry refused the token.
pub async fn run(agent: Arc<Agent>, concurrency: u32) -> bool {
    let workers: Vec<_> = (0..concurrency)
        .map(|_| tokio::spawn(worker(agent.clone())))
        .collect();
    for w in workers {
        let _ = w.await;
    }
    agent.refused.load(Ordering::Relaxed)
}

/// SIGTERM or SIGINT once: lease no more; twice: stop running builds too.
pub async fn watch_signals(agent: Arc<Agent>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        eprintln!("sreg agent: cannot listen for signals");
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    eprintln!(
        "sreg agent: stopping: no new jobs; running builds finish (signal again to cancel them)"
    );
    agent.stop_leasing.cancel();
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    eprintln!("sreg agent: cancelling the running builds");
    agent.cancel_builds.cancel();
}

async fn worker(agent: Arc<Agent>) {
    let request = LeaseRequest {
        agent: agent.name.clone(),
        labels: agent.labels.clone(),
    };
    while !agent.stop_leasing.is_cancelled() {
        let leased = retry::call("leasing a job", None, &agent.stop_leasing, || {
            agent.client.agent_lease(&request)
        })
        .await;
        match leased {
            Ok(Some(lease)) => job::run(agent.clone(), lease).await,
            Ok(None) => {
                tokio::select! {
                    () = tokio::time::sleep(agent.poll) => {}
                    () = agent.stop_leasing.cancelled() => {}
                }
            }
            Err(retry::GaveUp::Unreachable(_)) => {}
            Err(e) if matches!(e.status(), Some(401 | 403)) => {
                eprintln!("sreg agent: the registry refused the token in SREG_TOKEN: {e}");
                agent.refused.store(true, Ordering::Relaxed);
                agent.stop_leasing.cancel();
            }
            Err(e) => {
                // Some other refusal (a bad request): wait rather than spin.
                eprintln!("sreg agent: leasing a job: {e}");
                tokio::select! {
                    () = tokio::time::sleep(agent.poll.max(Duration::from_secs(30))) => {}
                    () = agent.stop_leasing.cancelled() => {}
                }
            }
        }
    }
}
