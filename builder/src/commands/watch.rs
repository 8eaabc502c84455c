//! `sreg watch REPO_URL... [--collection C] [--branch B] [--once]`: build
//! and push whatever recipes changed, for one user on a machine of their
//! own, with no project on the registry.
//!
//! For each repository a clone is kept under the state folder (one folder
//! per URL hash) with `state.json`, which records per recipe the commit it
//! was last built and pushed at. A pass fetches the branch, asks
//! `sreg_recipe::changed_recipes` what changed since each recipe's commit
//! (a recipe never built is built), checks the new commit out, builds each
//! such recipe with `sreg build` and pushes it to `COLLECTION/NAME:TAG`
//! with `sreg push`. Only successes are recorded, so a recipe that failed
//! is tried again next pass and the others are not rebuilt.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sreg_recipe::DiscoverOptions;

use crate::agent::{child, git};
use crate::build::log::{last_lines, tail_of_file};
use crate::cli::WatchArgs;

/// `from` of a first pass: git's "no commit", which rebuilds everything.
const NO_COMMIT: &str = "0000000000000000000000000000000000000000";

/// What was built of one repository (`state.json`).
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    /// The URL without credentials, for whoever reads the file.
    repository: String,
    branch: Option<String>,
    /// The commit of the last pass.
    last_commit: Option<String>,
    /// Recipe path → the commit it was last built and pushed at.
    #[serde(default)]
    built: BTreeMap<String, String>,
}

impl State {
    fn read(path: &Path) -> Result<State> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text)
                .with_context(|| format!("{} is not a watch state file", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Written beside, then renamed: a crash leaves the old or the new file.
    fn write(&self, path: &Path) -> Result<()> {
        let temp = path.with_extension("json.tmp");
        let text = serde_json::to_vec_pretty(self).context("cannot serialize the state")?;
        std::fs::write(&temp, text)
            .and_then(|()| std::fs::File::open(&temp)?.sync_all())
            .and_then(|()| std::fs::rename(&temp, path))
            .with_context(|| format!("cannot write {}", path.display()))
    }
}

pub fn run(args: &WatchArgs) -> Result<()> {
    let state_dir = match &args.state_dir {
        Some(d) => d.clone(),
        None => default_state_dir()?,
    };
    loop {
        let mut failures = 0;
        for url in &args.repositories {
            match pass(args, &state_dir, url) {
                Ok(n) => failures += n,
                Err(e) => {
                    eprintln!("sreg watch: {}: {e:#}", git::redact(url));
                    failures += 1;
                }
            }
        }
        if args.once {
            if failures > 0 {
                bail!("{failures} build(s) or repositories failed");
            }
            return Ok(());
        }
        std::thread::sleep(args.interval);
    }
}

/// `$XDG_STATE_HOME/sreg/watch` or `~/.local/state/sreg/watch`.
fn default_state_dir() -> Result<PathBuf> {
    let base = match std::env::var_os("XDG_STATE_HOME").map(PathBuf::from) {
        Some(p) if p.is_absolute() => p,
        _ => dirs::home_dir()
            .ok_or_else(|| anyhow!("cannot find your home folder: give --state-dir"))?
            .join(".local/state"),
    };
    Ok(base.join("sreg").join("watch"))
}

/// One pass over one repository; returns how many recipes failed.
fn pass(args: &WatchArgs, state_dir: &Path, url: &str) -> Result<usize> {
    let shown = git::redact(url);
    let name = git::repo_name(url);
    let hash = hex::encode(&Sha256::digest(url.as_bytes())[..8]);
    let home = state_dir.join(format!("{name}-{hash}"));
    // The clone's folder carries the repository's name: recipes at its top
    // are named after it, as `sreg recipes` names them in any clone.
    let clone = home.join(&name);
    let out_dir = home.join("out");
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let state_path = home.join("state.json");
    let mut state = State::read(&state_path)?;
    state.repository = shown.clone();

    let branch = match &args.branch {
        Some(b) => b.clone(),
        None => git::remote_head(&home, url)?,
    };
    let head = git::fetch_branch(&clone, url, &branch)?;
    state.branch = Some(branch.clone());
    let options = DiscoverOptions {
        root_name: Some(name.clone()),
        ..DiscoverOptions::default()
    };

    // Every recipe at the new commit, then which of them changed since the
    // commit each was last built at (a recipe never built: all of it).
    let all = sreg_recipe::changed_recipes(&clone, NO_COMMIT, &head, &options)
        .context("cannot list the recipes")?;
    let present: BTreeSet<&str> = all.rebuild.iter().map(|c| c.recipe.path.as_str()).collect();
    let mut from_commits: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut todo: BTreeSet<String> = BTreeSet::new();
    for path in &present {
        match state.built.get(*path) {
            Some(c) if c == &head => {}
            Some(c) => from_commits.entry(c.as_str()).or_default().push(path),
            None => {
                todo.insert(path.to_string());
            }
        }
    }
    for (from, paths) in &from_commits {
        match sreg_recipe::changed_recipes(&clone, from, &head, &options) {
            Ok(changes) => {
                let changed: BTreeSet<&str> = changes
                    .rebuild
                    .iter()
                    .map(|c| c.recipe.path.as_str())
                    .collect();
                todo.extend(
                    paths
                        .iter()
                        .filter(|p| changed.contains(*p))
                        .map(|p| p.to_string()),
                );
            }
            // The old commit is gone (a force push): build them again.
            Err(e) => {
                eprintln!("sreg watch: {shown}: cannot compare with {from} ({e}); rebuilding");
                todo.extend(paths.iter().map(|p| p.to_string()));
            }
        }
    }
    // Recipes that are gone are forgotten; their images stay.
    state.built.retain(|p, _| present.contains(p.as_str()));

    let conflicted: BTreeSet<&str> = all
        .conflicts
        .iter()
        .flat_map(|c| c.paths.iter().map(String::as_str))
        .collect();
    let collection = args.collection.clone().unwrap_or_else(|| name.clone());
    eprintln!(
        "sreg watch: {shown} {branch} at {}: {} recipe(s) to build",
        &head[..head.len().min(12)],
        todo.len()
    );
    let mut failures = 0;
    if !todo.is_empty() {
        git::git(
            &clone,
            &["checkout", "-q", "--force", "--detach", &head, "--"],
            Some(url),
        )?;
    }
    for changed in all.rebuild.iter().filter(|c| todo.contains(&c.recipe.path)) {
        let recipe = &changed.recipe;
        if recipe.frozen {
            eprintln!("sreg watch: {}: frozen, not built", recipe.path);
            continue;
        }
        if conflicted.contains(recipe.path.as_str()) {
            eprintln!(
                "sreg watch: {}: another recipe is also {}:{}; not built",
                recipe.path, recipe.name, recipe.tag
            );
            failures += 1;
            continue;
        }
        let reference = format!("{collection}/{}:{}", recipe.name, recipe.tag);
        match build_and_push(
            args,
            &clone,
            &out_dir,
            &recipe.path,
            &reference,
            url,
            &branch,
        ) {
            Ok(()) => {
                eprintln!("sreg watch: {}: pushed {reference}", recipe.path);
                state.built.insert(recipe.path.clone(), head.clone());
                // Saved after each success: an interrupted pass keeps its work.
                state.write(&state_path)?;
            }
            Err(e) => {
                eprintln!("sreg watch: {}: {e:#}", recipe.path);
                failures += 1;
            }
        }
    }
    state.last_commit = Some(head);
    state.write(&state_path)?;
    Ok(failures)
}

fn build_and_push(
    args: &WatchArgs,
    clone: &Path,
    out_dir: &Path,
    recipe_path: &str,
    reference: &str,
    url: &str,
    branch: &str,
) -> Result<()> {
    let exe = child::sreg_exe()?;
    let stem: String = reference
        .rsplit('/')
        .next()
        .unwrap_or(reference)
        .replace(':', "_");
    let image = out_dir.join(format!("{stem}.sif"));
    eprintln!("sreg watch: {recipe_path}: building");
    let out = Command::new(&exe)
        .args(child::build_args(
            &clone.join(recipe_path),
            &image,
            crate::build::backend_name(args.backend),
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .output()
        .context("cannot run sreg build")?;
    if !out.status.success() {
        let (_, log) = crate::build::record::paths_for(&image);
        bail!(
            "the build failed ({}):\n{}\n{}",
            out.status,
            tail_of_file(&log, 20).unwrap_or_default(),
            last_lines(&String::from_utf8_lossy(&out.stderr), 5)
        );
    }
    let repository = git::redact(url);
    let out = Command::new(&exe)
        .args(child::push_args(
            &image,
            reference,
            &[("branch", branch), ("repository", &repository)],
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .output()
        .context("cannot run sreg push")?;
    if !out.status.success() {
        bail!(
            "the push failed: {}",
            last_lines(&String::from_utf8_lossy(&out.stderr), 5)
        );
    }
    // The image is in the registry now; the record and log stay for a look.
    let _ = std::fs::remove_file(&image);
    Ok(())
}
