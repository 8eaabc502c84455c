//! `sreg-server admin build ...`: queue, list and cancel build jobs from the
//! command line (for operators, and for tests that need jobs without a
//! webhook). Jobs queued here are not reported to the forge: this process
//! has no commit-status reporter listening.

use anyhow::{Context, Result, bail};
use sqlx::AnyPool;

use crate::cli::BuildCommand;
use crate::model::builds::jobs::{self, RecipeBuild};
use crate::model::builds::projects;

pub async fn run(db: &AnyPool, command: &BuildCommand) -> Result<()> {
    match command {
        BuildCommand::Queue {
            project,
            commit,
            branch,
            recipes,
            max_attempts,
        } => {
            let p = find_project(db, project).await?;
            let recipes = recipes
                .iter()
                .map(|r| parse_recipe(r))
                .collect::<Result<Vec<_>>>()?;
            let branch = branch.as_deref().unwrap_or(&p.branch);
            let done =
                jobs::enqueue(db, &p, commit, branch, &recipes, i64::from(*max_attempts)).await?;
            for j in &done.superseded {
                eprintln!("superseded job {} ({})", j.id, j.recipe_path);
            }
            for path in &done.duplicates {
                eprintln!("not queued again: {path} at {commit} is queued, running or built");
            }
            for j in &done.queued {
                println!("{} {}", j.id, j.reference);
            }
        }
        BuildCommand::List {
            project,
            state,
            limit,
        } => {
            let ids = match project {
                Some(name) => vec![find_project(db, name).await?.id],
                None => projects::list(db).await?.iter().map(|p| p.id).collect(),
            };
            let state = match state {
                Some(s) => Some(jobs::parse_state(s).with_context(|| {
                    format!("state {s:?} is not one of queued, running, succeeded, failed, cancelled, superseded")
                })?),
                None => None,
            };
            println!(
                "{:>6}  {:<10} {:<12} {:<40} ERROR",
                "ID", "STATE", "COMMIT", "REFERENCE"
            );
            for j in jobs::list(db, &ids, state, *limit).await? {
                println!(
                    "{:>6}  {:<10} {:<12} {:<40} {}",
                    j.id,
                    j.state,
                    &j.commit_sha[..j.commit_sha.len().min(12)],
                    j.reference,
                    j.error.as_deref().unwrap_or("")
                );
            }
        }
        BuildCommand::Cancel { id } => {
            let j = jobs::cancel(db, *id, "an admin (command line)").await?;
            eprintln!("job {id} is {}", j.state);
        }
    }
    Ok(())
}

async fn find_project(db: &AnyPool, name: &str) -> Result<projects::Project> {
    projects::by_name(db, name)
        .await?
        .with_context(|| format!("no build project named {name:?}"))
}

/// `PATH:NAME:TAG`; the path may itself hold colons.
fn parse_recipe(s: &str) -> Result<RecipeBuild> {
    let mut parts = s.rsplitn(3, ':');
    let (Some(tag), Some(name), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
        bail!("--recipe {s:?} is not PATH:NAME:TAG");
    };
    if path.is_empty() || name.is_empty() || tag.is_empty() {
        bail!("--recipe {s:?} is not PATH:NAME:TAG");
    }
    Ok(RecipeBuild {
        path: path.into(),
        name: name.into(),
        tag: tag.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipes_are_path_name_tag() {
        let r = parse_recipe("a/b:c/Singularity.x:x:v1").unwrap();
        assert_eq!(
            (r.path.as_str(), r.name.as_str(), r.tag.as_str()),
            ("a/b:c/Singularity.x", "x", "v1")
        );
        assert!(parse_recipe("Singularity:x").is_err());
        assert!(parse_recipe("::v1").is_err());
    }
}
