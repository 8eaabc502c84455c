//! The apptainer and singularity backends: `apptainer build` (or
//! `singularity build`) of the recipe, with the program found on PATH.
//!
//! The recipe is given as written: Apptainer substitutes the build
//! arguments itself (`--build-arg`), and resolves relative `%files` sources
//! from its working directory, the recipe's folder.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use anyhow::{Result, bail};
use tokio::process::Command;

use super::job::{BackendInfo, Job};
use super::tools;

/// What goes on the `build` command line.
#[derive(Debug)]
pub struct BuildCommand<'a> {
    /// Not root: Apptainer needs `--fakeroot` to build unprivileged.
    pub fakeroot: bool,
    pub notest: bool,
    pub nohttps: bool,
    pub build_args: &'a BTreeMap<String, String>,
    /// Apptainer's own scratch space (the build's work folder, on the same
    /// filesystem as the image and removed afterwards).
    pub tmpdir: &'a Path,
    pub image: &'a Path,
    pub recipe: &'a Path,
}

impl BuildCommand<'_> {
    /// The arguments after the program name.
    pub fn args(&self) -> Vec<OsString> {
        let mut out: Vec<OsString> = vec!["build".into()];
        if self.fakeroot {
            out.push("--fakeroot".into());
        }
        if self.notest {
            out.push("--notest".into());
        }
        if self.nohttps {
            out.push("--nohttps".into());
        }
        out.push("--tmpdir".into());
        out.push(self.tmpdir.into());
        for (name, value) in self.build_args {
            out.push("--build-arg".into());
            out.push(format!("{name}={value}").into());
        }
        out.push(self.image.into());
        out.push(self.recipe.into());
        out
    }
}

pub async fn build(job: &Job<'_>, program: &str) -> Result<BackendInfo> {
    let exe = tools::find(program)?;
    let version = version_of(&exe).await;
    let command = BuildCommand {
        fakeroot: !nix::unistd::geteuid().is_root(),
        notest: job.notest,
        nohttps: job.nohttps,
        build_args: &job.build_args,
        tmpdir: &job.work_dir,
        image: &job.partial,
        recipe: &job.recipe_path,
    };
    let args = command.args();
    job.log.line(format!(
        "{} {}: {} {}",
        exe.display(),
        version.as_deref().unwrap_or("(version unknown)"),
        program,
        args.iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    ));
    let mut cmd = Command::new(&exe);
    cmd.args(&args).current_dir(&job.context_dir);
    let status = job.log.run(cmd, &job.cancel).await?;
    if !status.success() {
        let mut message = format!("{program} build failed ({status})");
        if let Some(line) = last_error_line(&job.log.tail(40)) {
            message.push_str(": ");
            message.push_str(line.trim());
        }
        bail!(message);
    }
    if !job.partial.is_file() {
        bail!(
            "{program} build succeeded but wrote no image at {}",
            job.partial.display()
        );
    }
    Ok(BackendInfo::new(program, version))
}

/// The version `PROGRAM --version` prints (`apptainer version 1.3.4` →
/// `1.3.4`), or `None` when it cannot be run.
pub async fn version_of(exe: &Path) -> Option<String> {
    let output = tokio::time::timeout(
        Duration::from_secs(20),
        Command::new(exe)
            .arg("--version")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .ok()?
    .ok()?;
    if !output.status.success() {
        return None;
    }
    version_from(&String::from_utf8_lossy(&output.stdout))
}

/// The last word of the first line: `apptainer version 1.3.4`,
/// `singularity-ce version 4.1.0`, `slurm-wlm 22.05.8`.
pub fn version_from(text: &str) -> Option<String> {
    text.lines()
        .next()?
        .split_whitespace()
        .last()
        .map(str::to_string)
}

/// Apptainer's last `FATAL:` or `ERROR:` line, which says why a build
/// failed, for the error message.
fn last_error_line(tail: &str) -> Option<&str> {
    tail.lines()
        .rev()
        .find(|l| l.starts_with("FATAL") || l.starts_with("ERROR"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(fakeroot: bool, notest: bool, args: &BTreeMap<String, String>) -> Vec<String> {
        BuildCommand {
            fakeroot,
            notest,
            nohttps: false,
            build_args: args,
            tmpdir: Path::new("/w"),
            image: Path::new("/out/.x.sif.partial-1"),
            recipe: Path::new("/r/Singularity"),
        }
        .args()
        .into_iter()
        .map(|a| a.into_string().unwrap())
        .collect()
    }

    #[test]
    fn root_builds_without_fakeroot() {
        assert_eq!(
            command(false, false, &BTreeMap::new()),
            [
                "build",
                "--tmpdir",
                "/w",
                "/out/.x.sif.partial-1",
                "/r/Singularity"
            ]
        );
    }

    #[test]
    fn non_root_builds_with_fakeroot_and_passes_notest_and_build_args() {
        let args = BTreeMap::from([
            ("VERSION".to_string(), "1.2 beta".to_string()),
            ("A".to_string(), "x=y".to_string()),
        ]);
        assert_eq!(
            command(true, true, &args),
            [
                "build",
                "--fakeroot",
                "--notest",
                "--tmpdir",
                "/w",
                "--build-arg",
                "A=x=y",
                "--build-arg",
                "VERSION=1.2 beta",
                "/out/.x.sif.partial-1",
                "/r/Singularity"
            ]
        );
    }

    #[test]
    fn versions_are_the_last_word_of_the_first_line() {
        assert_eq!(
            version_from("apptainer version 1.3.4\n").as_deref(),
            Some("1.3.4")
        );
        assert_eq!(
            version_from("singularity-ce version 4.1.0-jammy\n").as_deref(),
            Some("4.1.0-jammy")
        );
        assert_eq!(
            version_from("slurm-wlm 22.05.8\n").as_deref(),
            Some("22.05.8")
        );
        assert_eq!(version_from(""), None);
    }

    #[test]
    fn the_last_fatal_line_explains_a_failure() {
        let tail = "INFO: Starting build...\nFATAL: first\nsome noise\nFATAL:   While performing build: conveyor failed\nbye";
        assert_eq!(
            last_error_line(tail),
            Some("FATAL:   While performing build: conveyor failed")
        );
        assert_eq!(last_error_line("all fine"), None);
    }
}
