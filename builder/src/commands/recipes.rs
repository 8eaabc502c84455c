//! `sreg recipes [DIR] [--changed-since GITREF] [--json | --format F]`.
//!
//! Lists recipes with the image name and tag each one builds. With
//! `--changed-since`, only those that must be rebuilt between GITREF and
//! `HEAD`. `--format matrix|tsv` prints what a CI pipeline iterates over: the
//! recipe and the reference to push it to. Exits non-zero, after printing, when a recipe does not parse, has
//! no valid name, or two recipes claim the same `name:tag`: a CI step should
//! stop there rather than push half a repository.

use std::io::Write;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use sreg_recipe::{ChangeSet, Conflict, DiscoverOptions, Discovery, Recipe, Rejected};

use crate::cli::{RecipesArgs, RecipesFormat};

/// The all-zero revision: "no base, every recipe".
const NO_BASE: &str = "0000000000000000000000000000000000000000";

/// Versions of the JSON documents; bumped only on incompatible changes.
const SCHEMA_LIST: &str = "sreg.recipes/v1";
const SCHEMA_CHANGES: &str = "sreg.recipes.changes/v1";

#[derive(Serialize)]
struct Document<'a, T: Serialize> {
    schema: &'static str,
    #[serde(flatten)]
    body: &'a T,
}

pub fn run(args: &RecipesArgs) -> Result<()> {
    let mut options = DiscoverOptions {
        root_name: args.name.clone(),
        ..DiscoverOptions::default()
    };
    if !args.include.is_empty() {
        options.include = args.include.clone();
    }
    options.exclude.extend(args.exclude.iter().cloned());

    let format = if args.json {
        RecipesFormat::Json
    } else {
        args.format
    };
    if matches!(format, RecipesFormat::Matrix | RecipesFormat::Tsv) && args.collection.is_none() {
        bail!(
            "--format {} needs the collection images go to: pass --collection C or set SREG_COLLECTION",
            if format == RecipesFormat::Matrix {
                "matrix"
            } else {
                "tsv"
            }
        );
    }
    let mut out = std::io::stdout().lock();
    let (recipes, conflicts, rejected): (Vec<&Recipe>, &[Conflict], &[Rejected]);
    let discovery: Discovery;
    let changes: ChangeSet;
    match &args.changed_since {
        None => {
            discovery = sreg_recipe::discover(&args.dir, &options)
                .with_context(|| format!("cannot search {} for recipes", args.dir.display()))?;
            match format {
                RecipesFormat::Json => print_json(&mut out, SCHEMA_LIST, &discovery)?,
                RecipesFormat::Table => write_table(
                    &mut out,
                    discovery.recipes.iter().map(|r| (r, String::new())),
                )?,
                _ => write_targets(&mut out, format, args, discovery.recipes.iter())?,
            }
            recipes = discovery.recipes.iter().collect();
            (conflicts, rejected) = (&discovery.conflicts, &discovery.rejected);
        }
        Some(rev) => {
            let base = if rev.trim().is_empty() { NO_BASE } else { rev };
            let changed = match sreg_recipe::changed_recipes(&args.dir, base, "HEAD", &options) {
                Err(sreg_recipe::ChangesError::BadRevision { rev: bad, .. })
                    if args.fallback_all && bad == base =>
                {
                    eprintln!(
                        "sreg: {base} is not in this clone (force-push or shallow clone?); listing every recipe"
                    );
                    sreg_recipe::changed_recipes(&args.dir, NO_BASE, "HEAD", &options)
                }
                other => other,
            };
            changes = changed.with_context(|| {
                format!(
                    "cannot tell which recipes changed in {} since {rev}",
                    args.dir.display()
                )
            })?;
            if format == RecipesFormat::Json {
                print_json(&mut out, SCHEMA_CHANGES, &changes)?;
            } else if format != RecipesFormat::Table {
                write_targets(
                    &mut out,
                    format,
                    args,
                    changes.rebuild.iter().map(|c| &c.recipe),
                )?;
            } else {
                let rows = changes.rebuild.iter().map(|c| {
                    let why: Vec<String> = c.reasons.iter().map(reason).collect();
                    (&c.recipe, why.join("; "))
                });
                write_table(&mut out, rows)?;
                for d in &changes.deleted {
                    let image = match (&d.name, &d.tag) {
                        (Some(n), Some(t)) => format!(" ({n}:{t})"),
                        _ => String::new(),
                    };
                    match &d.replaced_by {
                        Some(new) => writeln!(out, "renamed: {}{image} -> {new}", d.path)?,
                        None => writeln!(out, "deleted: {}{image}", d.path)?,
                    }
                }
            }
            recipes = changes.rebuild.iter().map(|c| &c.recipe).collect();
            (conflicts, rejected) = (&changes.conflicts, &changes.rejected);
        }
    }
    out.flush()?;
    drop(out);

    let broken: Vec<&&Recipe> = recipes.iter().filter(|r| r.error.is_some()).collect();
    for r in &broken {
        eprintln!("sreg: {}: {}", r.path, r.error.as_ref().expect("filtered"));
    }
    for c in conflicts {
        eprintln!(
            "sreg: {} recipes would all push {}:{}: {}",
            c.paths.len(),
            c.name,
            c.tag,
            c.paths.join(", ")
        );
    }
    for r in rejected {
        eprintln!("sreg: {}: {}", r.path, r.reason);
    }
    let problems = broken.len() + conflicts.len() + rejected.len();
    if problems > 0 {
        bail!(
            "{} recipe(s) with errors, {} conflict(s), {} rejected file(s)",
            broken.len(),
            conflicts.len(),
            rejected.len()
        );
    }
    Ok(())
}

fn print_json<T: Serialize>(out: &mut impl Write, schema: &'static str, body: &T) -> Result<()> {
    serde_json::to_writer_pretty(&mut *out, &Document { schema, body })?;
    writeln!(out)?;
    Ok(())
}

/// A recipe and the reference a pipeline pushes it to.
#[derive(Serialize)]
struct Target<'a> {
    recipe: &'a str,
    image: String,
}

/// Prints the recipes a pipeline must build: frozen ones are left out, and
/// broken ones too (the caller fails the run after printing).
fn write_targets<'a>(
    out: &mut impl Write,
    format: RecipesFormat,
    args: &RecipesArgs,
    recipes: impl Iterator<Item = &'a Recipe>,
) -> Result<()> {
    let collection = args.collection.as_deref().unwrap_or_default();
    let targets: Vec<Target> = recipes
        .filter(|r| !r.frozen && r.error.is_none())
        .map(|r| Target {
            recipe: &r.path,
            image: format!("{collection}/{}:{}", r.name, r.tag),
        })
        .collect();
    if format == RecipesFormat::Matrix {
        serde_json::to_writer(&mut *out, &targets)?;
        writeln!(out)?;
    } else {
        for t in &targets {
            if t.recipe.contains(['\t', '\n']) {
                bail!(
                    "{:?}: a recipe path with a tab or newline cannot be listed as tsv",
                    t.recipe
                );
            }
            writeln!(out, "{}\t{}", t.recipe, t.image)?;
        }
    }
    Ok(())
}

fn write_table<'a>(
    out: &mut impl Write,
    rows: impl Iterator<Item = (&'a Recipe, String)>,
) -> std::io::Result<()> {
    let rows: Vec<[String; 6]> = rows
        .map(|(r, why)| {
            let image = match &r.collection {
                Some(c) => format!("{c}/{}", r.name),
                None => r.name.clone(),
            };
            let mut note = why;
            if r.frozen {
                note = join(note, "frozen");
            }
            if r.error.is_some() {
                note = join(note, "ERROR");
            }
            [
                r.path.clone(),
                image,
                r.tag.clone(),
                r.bootstrap.clone().unwrap_or_else(|| "-".into()),
                r.from.clone().unwrap_or_else(|| "-".into()),
                note,
            ]
        })
        .collect();
    let header = ["PATH", "NAME", "TAG", "BOOTSTRAP", "FROM", ""];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 6]| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        s.trim_end().to_string()
    };
    writeln!(out, "{}", line(header))?;
    for row in &rows {
        writeln!(out, "{}", line(row.each_ref().map(String::as_str)))?;
    }
    Ok(())
}

fn join(a: String, b: &str) -> String {
    if a.is_empty() {
        b.into()
    } else {
        format!("{a}; {b}")
    }
}

fn reason(r: &sreg_recipe::Reason) -> String {
    use sreg_recipe::Reason::*;
    match r {
        Added => "added".into(),
        Modified => "modified".into(),
        Renamed { from } => format!("renamed from {from}"),
        FilesChanged { source, path } => format!("%files source {source} changed ({path})"),
    }
}
