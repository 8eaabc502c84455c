//! `sreg builds [--project P] [--state S]`, `sreg builds show|log|cancel ID`:
//! the registry's build jobs.

use std::io::Write;
use std::time::Duration;

use anyhow::{Result, bail};
use sreg_api::builds::{BuildJob, JobState};
use sreg_api::client::Client;

use crate::cli::{BuildsArgs, BuildsCommand};
use crate::registry::{self, Target};

/// How often `sreg builds log --follow` asks for more.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);

pub fn run(args: &BuildsArgs) -> Result<()> {
    let target = registry::target()?;
    let client = registry::client(&target)?;
    registry::block_on(async {
        match &args.command {
            None => list(&client, &target, args).await,
            Some(BuildsCommand::Show { id, json }) => {
                let job = client
                    .build_job(*id)
                    .await
                    .map_err(|e| registry::explain(e, &target))?;
                if *json {
                    println!("{}", serde_json::to_string_pretty(&job)?);
                } else {
                    show(&job);
                }
                Ok(())
            }
            Some(BuildsCommand::Log { id, follow }) => log(&client, &target, *id, *follow).await,
            Some(BuildsCommand::Cancel { id }) => {
                let job = client
                    .cancel_build(*id)
                    .await
                    .map_err(|e| registry::explain(e, &target))?;
                eprintln!(
                    "build {id}: {}{}",
                    job.state.as_str(),
                    if job.state.is_final() {
                        ""
                    } else {
                        " (cancel requested: the agent stops it at its next heartbeat)"
                    }
                );
                Ok(())
            }
        }
    })?
}

fn parse_state(s: &str) -> Result<JobState> {
    Ok(match s {
        "queued" => JobState::Queued,
        "running" => JobState::Running,
        "succeeded" => JobState::Succeeded,
        "failed" => JobState::Failed,
        "cancelled" => JobState::Cancelled,
        "superseded" => JobState::Superseded,
        _ => bail!(
            "unknown state {s:?}: one of queued, running, succeeded, failed, cancelled, superseded"
        ),
    })
}

async fn list(client: &Client, target: &Target, args: &BuildsArgs) -> Result<()> {
    let state = args.state.as_deref().map(parse_state).transpose()?;
    let project = match &args.project {
        Some(name) => Some(super::project::by_name(client, target, name).await?.id),
        None => None,
    };
    let jobs = client
        .builds(project, state, Some(args.limit))
        .await
        .map_err(|e| registry::explain(e, target))?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&jobs)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:>6} {:<16} {:<10} {:<12} {:<28} {:<20} AGENT",
        "ID", "PROJECT", "STATE", "COMMIT", "RECIPE", "QUEUED"
    )?;
    for j in &jobs {
        writeln!(
            out,
            "{:>6} {:<16} {:<10} {:<12} {:<28} {:<20} {}",
            j.id,
            j.project,
            j.state.as_str(),
            &j.commit[..j.commit.len().min(12)],
            j.recipe_path,
            j.queued_at,
            j.agent.as_deref().unwrap_or("-")
        )?;
    }
    Ok(())
}

fn show(j: &BuildJob) {
    let none = || "-".to_string();
    println!("build:      {} ({})", j.id, j.state.as_str());
    println!("project:    {}", j.project);
    println!("repository: {}", crate::agent::git::redact(&j.repository));
    println!("commit:     {} ({})", j.commit, j.branch);
    println!("recipe:     {}", j.recipe_path);
    println!("image:      {}", j.reference);
    println!("attempts:   {} of {}", j.attempts, j.max_attempts);
    println!("backend:    {}", j.backend.clone().unwrap_or_else(none));
    println!("agent:      {}", j.agent.clone().unwrap_or_else(none));
    println!("queued:     {}", j.queued_at);
    println!("started:    {}", j.started_at.clone().unwrap_or_else(none));
    println!("finished:   {}", j.finished_at.clone().unwrap_or_else(none));
    if let Some(sha) = &j.image_sha256 {
        println!("sha256:     {sha}");
    }
    if j.cancel_requested && !j.state.is_final() {
        println!("cancel:     requested");
    }
    if let Some(e) = &j.error {
        println!("error:\n{e}");
    }
}

/// Prints the log; with `follow`, keeps asking from the new offset until
/// the registry says the log is complete.
async fn log(client: &Client, target: &Target, id: i64, follow: bool) -> Result<()> {
    let mut offset = 0;
    loop {
        let chunk = client
            .build_job_log(id, offset)
            .await
            .map_err(|e| registry::explain(e, target))?;
        if !chunk.bytes.is_empty() {
            let mut out = std::io::stdout().lock();
            out.write_all(&chunk.bytes)?;
            out.flush()?;
        }
        offset = chunk.next_offset;
        if !follow || chunk.complete {
            return Ok(());
        }
        if chunk.bytes.is_empty() {
            tokio::time::sleep(FOLLOW_EVERY).await;
        }
    }
}
