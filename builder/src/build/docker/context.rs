//! What of the host the build container sees: the recipe's folder, at the
//! same absolute path, so relative and absolute paths in the recipe mean
//! the same inside. Anything the recipe names outside that folder is
//! refused before a container starts, with the reason.

use std::path::{Component, Path, PathBuf};

use anyhow::{Result, bail};

use crate::build::job::Job;

/// Bootstrap agents whose `From:` is a path on the build host.
const LOCAL_SOURCES: &[&str] = &["localimage", "oci-archive", "docker-archive", "oci"];

/// The recipe's folder and the working folder of the build inside.
pub struct Context {
    pub dir: PathBuf,
    /// The host's working folder when it lies in the recipe's folder (so a
    /// relative `From:` means what it means on the host), else the folder.
    pub workdir: PathBuf,
    /// Files beside the output that must not go up: the build's own
    /// partial image, log and scratch folder.
    pub skip: Vec<PathBuf>,
}

impl Context {
    pub fn of(job: &Job<'_>) -> Result<Context> {
        let dir = normalize(&job.context_dir);
        if dir.parent().is_none() {
            bail!(
                "the recipe {} sits in /: the docker backend uploads the recipe's folder into \
                 the build container, so move the recipe into a folder of its own",
                job.recipe_path.display()
            );
        }
        let cwd = std::env::current_dir().map(|d| normalize(&d)).ok();
        let workdir = cwd
            .filter(|d| d.starts_with(&dir))
            .unwrap_or_else(|| dir.clone());
        let context = Context {
            dir,
            workdir,
            skip: [
                job.partial.as_path(),
                job.log.path(),
                job.work_dir.as_path(),
            ]
            .into_iter()
            .map(normalize)
            .collect(),
        };
        context.check(job)?;
        Ok(context)
    }

    /// Refuses `%files` sources and local `From:` paths outside the folder.
    fn check(&self, job: &Job<'_>) -> Result<()> {
        for stage in job.definition.stages() {
            for file in stage.host_files() {
                let src = self.resolve(&self.dir, &file.src);
                if !src.starts_with(&self.dir) {
                    bail!(
                        "line {}: the %files source {} lies outside the recipe's folder {}; the \
                         docker backend uploads only that folder into the build container: move \
                         the file into it (or build with another backend)",
                        file.line,
                        file.src,
                        self.dir.display()
                    );
                }
            }
            let agent = stage.bootstrap();
            if let Some(from) = stage
                .from()
                .filter(|_| LOCAL_SOURCES.contains(&agent.as_str()))
            {
                // `oci` also takes `oci:` references with a tag after a colon.
                let path = from.split(':').next().unwrap_or(from);
                let src = self.resolve(&self.workdir, path);
                if !src.starts_with(&self.dir) {
                    bail!(
                        "line {}: `From: {from}` lies outside the recipe's folder {}; the docker \
                         backend uploads only that folder into the build container: put the \
                         image in it (or build with another backend)",
                        stage.line(),
                        self.dir.display()
                    );
                }
            }
        }
        Ok(())
    }

    fn resolve(&self, base: &Path, path: &str) -> PathBuf {
        normalize(&base.join(path))
    }

    /// Which paths stay on the host: `.git` folders and the build's own files.
    pub fn skip_filter(&self) -> Box<dyn Fn(&Path) -> bool + Send> {
        let skip = self.skip.clone();
        Box::new(move |path: &Path| {
            path.file_name().is_some_and(|n| n == ".git") || skip.iter().any(|s| s == path)
        })
    }
}

/// `path` with `.` and `..` resolved by name alone (the file need not exist).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_resolves_dots_by_name() {
        assert_eq!(normalize(Path::new("/a/b/../c/./d")), Path::new("/a/c/d"));
        assert_eq!(normalize(Path::new("/a/../../x")), Path::new("/x"));
    }
}
