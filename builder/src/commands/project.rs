//! `sreg project create|list|show|delete`: the registry's build projects.
//! Projects are named on the command line and found by name.

use std::io::Write;

use anyhow::{Context, Result, anyhow, bail};
use sreg_api::builds::{BuildProject, ForgeKind, NewBuildProject};
use sreg_api::client::Client;

use crate::cli::{ForgeArg, ProjectCommand, ProjectCreateArgs};
use crate::registry::{self, Target};

pub fn run(command: &ProjectCommand) -> Result<()> {
    let target = registry::target()?;
    let client = registry::client(&target)?;
    registry::block_on(async {
        match command {
            ProjectCommand::Create(args) => create(&client, &target, args).await,
            ProjectCommand::List(a) => list(&client, &target, a.json).await,
            ProjectCommand::Show(a) => {
                let p = by_name(&client, &target, &a.name).await?;
                if a.json {
                    println!("{}", serde_json::to_string_pretty(&p)?);
                } else {
                    show(&p);
                }
                Ok(())
            }
            ProjectCommand::Delete(a) => {
                let p = by_name(&client, &target, &a.name).await?;
                client
                    .delete_project(p.id)
                    .await
                    .map_err(|e| registry::explain(e, &target))?;
                eprintln!("deleted the build project {} with its builds", p.name);
                Ok(())
            }
        }
    })?
}

/// The project called `name`.
pub async fn by_name(client: &Client, target: &Target, name: &str) -> Result<BuildProject> {
    client
        .projects()
        .await
        .map_err(|e| registry::explain(e, target))?
        .into_iter()
        .find(|p| p.name == name)
        .ok_or_else(|| anyhow!("no build project {name:?} (see `sreg project list`)"))
}

async fn create(client: &Client, target: &Target, args: &ProjectCreateArgs) -> Result<()> {
    // The forge token is read from a variable: a command line is visible
    // to every user of the machine.
    let forge_token = match &args.forge_token_env {
        Some(var) => Some(
            std::env::var(var)
                .ok()
                .filter(|t| !t.trim().is_empty())
                .with_context(|| format!("the variable {var} (--forge-token-env) is not set"))?,
        ),
        None => None,
    };
    if forge_token.is_some() && args.forge.is_none() {
        bail!("--forge-token-env needs --forge");
    }
    let poll = match args.poll {
        Some(d) if d.as_secs() == 0 => bail!("--poll must be at least a second"),
        Some(d) => Some(i64::try_from(d.as_secs()).context("--poll is too long")?),
        None => None,
    };
    let new = NewBuildProject {
        name: Some(args.name.clone()),
        repository: Some(args.repository.clone()),
        branch: args.branch.clone(),
        recipe_globs: (!args.recipes.is_empty()).then(|| args.recipes.clone()),
        collection: Some(args.collection.clone()),
        backend: args.backend.clone(),
        agent_labels: (!args.labels.is_empty()).then(|| args.labels.clone()),
        forge: args.forge.map(|f| match f {
            ForgeArg::Github => ForgeKind::Github,
            ForgeArg::Gitlab => ForgeKind::Gitlab,
            ForgeArg::Gitea => ForgeKind::Gitea,
        }),
        forge_api_url: args.forge_api_url.clone(),
        forge_repository: args.forge_repository.clone(),
        forge_token,
        webhook_secret: None,
        poll_interval_seconds: poll,
    };
    let created = client
        .create_project(&new)
        .await
        .map_err(|e| registry::explain(e, target))?;
    show(&created.project);
    let mut out = std::io::stdout().lock();
    writeln!(out, "webhook secret: {}", created.webhook_secret)?;
    writeln!(
        out,
        "  (shown once: give it to the forge's webhook settings now)"
    )?;
    for url in &created.webhook_urls {
        writeln!(out, "webhook URL:    {url}")?;
    }
    Ok(())
}

async fn list(client: &Client, target: &Target, json: bool) -> Result<()> {
    let projects = client
        .projects()
        .await
        .map_err(|e| registry::explain(e, target))?;
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&projects)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<20} {:<24} {:<10} {:<12} REPOSITORY",
        "NAME", "COLLECTION", "BRANCH", "LAST COMMIT"
    )?;
    for p in &projects {
        writeln!(
            out,
            "{:<20} {:<24} {:<10} {:<12} {}",
            p.name,
            p.collection,
            p.branch,
            p.last_commit
                .as_deref()
                .map_or("-", |c| &c[..c.len().min(12)]),
            crate::agent::git::redact(&p.repository)
        )?;
    }
    Ok(())
}

fn show(p: &BuildProject) {
    let none = || "-".to_string();
    println!("name:        {} (id {})", p.name, p.id);
    println!("repository:  {}", crate::agent::git::redact(&p.repository));
    println!("branch:      {}", p.branch);
    println!("collection:  {}", p.collection);
    println!(
        "recipes:     {}",
        if p.recipe_globs.is_empty() {
            "(the defaults of sreg recipes)".to_string()
        } else {
            p.recipe_globs.join(" ")
        }
    );
    println!("backend:     {}", p.backend.clone().unwrap_or_else(none));
    println!("labels:      {}", p.agent_labels.join(","));
    if let Some(f) = p.forge {
        println!(
            "forge:       {f:?} {} {} (token: {})",
            p.forge_api_url.clone().unwrap_or_else(none),
            p.forge_repository.clone().unwrap_or_else(none),
            if p.has_forge_token { "set" } else { "none" }
        );
    }
    println!(
        "polling:     {}",
        p.poll_interval_seconds
            .map_or("webhooks only".to_string(), |s| format!("every {s}s"))
    );
    println!(
        "last commit: {}",
        p.last_commit.clone().unwrap_or_else(none)
    );
    println!("owner:       {} (created {})", p.owner, p.created_at);
}
