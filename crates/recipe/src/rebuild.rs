//! `changed_recipes`: recipes to rebuild between two git revisions.

use std::collections::HashSet;
use std::path::Path;

use serde::Serialize;

use crate::changes::{Reason, RecipeSources, affected_recipes};
use crate::discover::{
    Conflict, DiscoverOptions, Recipe, RecipeError, RecipeMatcher, Rejected, find_conflicts,
    is_frozen, make_recipe, parse_bytes, root_name,
};
use crate::error::ChangesError;
use crate::git;
use crate::naming;

/// A recipe to rebuild, with the reasons.
#[derive(Debug, Clone, Serialize)]
pub struct ChangedRecipe {
    #[serde(flatten)]
    pub recipe: Recipe,
    pub reasons: Vec<Reason>,
}

/// A recipe that existed at the old revision and is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeletedRecipe {
    pub path: String,
    /// Name and tag it had; `None` when its path cannot be named.
    pub name: Option<String>,
    pub tag: Option<String>,
    /// A recipe at the new revision that gives the same `name:tag` (a file
    /// renamed within its directory, say): the image is not gone.
    pub replaced_by: Option<String>,
}

/// What changed between two revisions.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeSet {
    /// Commit ids; `from` is `None` for a new branch (everything is rebuilt).
    pub from: Option<String>,
    pub to: String,
    pub rebuild: Vec<ChangedRecipe>,
    pub deleted: Vec<DeletedRecipe>,
    /// Conflicts among all recipes at `to` (not only the changed ones).
    pub conflicts: Vec<Conflict>,
    /// Recipes at `to` whose path gives no valid name or tag.
    pub rejected: Vec<Rejected>,
}

/// Recipes to rebuild between `from_rev` and `to_rev` of the repository at
/// `repo`, read from git objects (the work tree may be anywhere). An all-zero
/// `from_rev` (a new branch in a push event) rebuilds every recipe. Paths are
/// relative to the top level of the repository, which is also the root whose
/// name recipes at the top take.
pub fn changed_recipes(
    repo: &Path,
    from_rev: &str,
    to_rev: &str,
    options: &DiscoverOptions,
) -> Result<ChangeSet, ChangesError> {
    let top = git::toplevel(repo)?;
    let matcher = RecipeMatcher::new(options)?;
    let root_name = root_name(&top, options)?;
    let to = git::commit_id(&top, to_rev)?;
    let from = if git::is_zero_rev(from_rev) {
        None
    } else {
        Some(git::commit_id(&top, from_rev)?)
    };

    let files: HashSet<String> = git::ls_tree(&top, &to)?.into_iter().collect();
    let mut paths: Vec<String> = files
        .iter()
        .filter(|p| matcher.is_recipe(p))
        .cloned()
        .collect();
    paths.sort();
    let blobs = git::read_blobs(&top, &to, &paths)?;
    let parsed: Vec<Result<crate::Definition, RecipeError>> = blobs
        .into_iter()
        .map(|b| match b {
            Some(bytes) => parse_bytes(bytes),
            None => Err(RecipeError::Read {
                message: "not a readable file in git".to_owned(),
            }),
        })
        .collect();

    let sources: Vec<RecipeSources> = paths
        .iter()
        .zip(&parsed)
        .map(|(path, def)| RecipeSources {
            path: path.clone(),
            sources: def.as_ref().map_or_else(
                |_| Vec::new(),
                |d| {
                    d.stages()
                        .iter()
                        .flat_map(|s| s.host_files())
                        .map(|f| f.src)
                        .collect()
                },
            ),
        })
        .collect();

    let affected = match &from {
        None => crate::changes::Affected {
            rebuild: paths
                .iter()
                .map(|p| (p.clone(), vec![Reason::Added]))
                .collect(),
            deleted: Vec::new(),
        },
        Some(from) => affected_recipes(&sources, &git::diff(&top, from, &to)?, &matcher),
    };

    let mut all = Vec::with_capacity(paths.len());
    let mut rebuild = Vec::new();
    let mut rejected = Vec::new();
    for (path, def) in paths.into_iter().zip(parsed) {
        let image = match naming::derive(Path::new(&path), &root_name) {
            Ok(i) => i,
            Err(e) => {
                rejected.push(Rejected {
                    path,
                    reason: e.to_string(),
                });
                continue;
            }
        };
        let frozen = is_frozen(&path, &files);
        let recipe = make_recipe(path, image, frozen, Some(def));
        if let Some(reasons) = affected.rebuild.get(&recipe.path) {
            rebuild.push(ChangedRecipe {
                recipe: recipe.clone(),
                reasons: reasons.clone(),
            });
        }
        all.push(recipe);
    }
    let deleted = affected
        .deleted
        .into_iter()
        .map(|path| {
            let image = naming::derive(Path::new(&path), &root_name).ok();
            let replaced_by = image.as_ref().and_then(|i| {
                all.iter()
                    .find(|r| r.name == i.name && r.tag == i.tag)
                    .map(|r| r.path.clone())
            });
            DeletedRecipe {
                name: image.as_ref().map(|i| i.name.clone()),
                tag: image.map(|i| i.tag),
                replaced_by,
                path,
            }
        })
        .collect();
    Ok(ChangeSet {
        from,
        to,
        rebuild,
        deleted,
        conflicts: find_conflicts(&all),
        rejected,
    })
}
