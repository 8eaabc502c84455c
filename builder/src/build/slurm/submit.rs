//! The batch job: a small script that runs `sreg build` on the compute
//! node, and the `sbatch` command line that submits it.
//!
//! The inner command travels as the script's arguments (sbatch keeps them
//! as a list), so nothing is quoted for a shell.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;

use clap::ValueEnum;

use crate::build::backend_name;
use crate::cli::{BackendKind, Isolation};

/// The batch script: says where it runs, then runs its arguments.
pub const SCRIPT: &str = "#!/bin/sh
# Written by sreg build: runs the build on the compute node.
echo \"sreg: Slurm job $SLURM_JOB_ID on $(hostname)\"
exec \"$@\"
";

/// `sreg build` as the compute node runs it.
pub struct InnerBuild<'a> {
    pub sreg: &'a Path,
    pub backend: BackendKind,
    pub recipe: &'a Path,
    pub image: &'a Path,
    pub build_args: &'a BTreeMap<String, String>,
    pub notest: bool,
    pub nohttps: bool,
    pub isolation: Isolation,
    pub docker_image: Option<&'a str>,
}

impl InnerBuild<'_> {
    pub fn command(&self) -> Vec<OsString> {
        let mut out: Vec<OsString> = vec![
            self.sreg.into(),
            "build".into(),
            "--backend".into(),
            backend_name(self.backend).into(),
            self.recipe.into(),
            "-o".into(),
            self.image.into(),
        ];
        for (name, value) in self.build_args {
            out.push("--build-arg".into());
            out.push(format!("{name}={value}").into());
        }
        if self.notest {
            out.push("--notest".into());
        }
        if self.nohttps {
            out.push("--nohttps".into());
        }
        if self.isolation != Isolation::Auto
            && let Some(v) = self.isolation.to_possible_value()
        {
            out.push("--isolation".into());
            out.push(v.get_name().into());
        }
        if let Some(image) = self.docker_image {
            out.push("--docker-image".into());
            out.push(image.into());
        }
        out
    }
}

/// `sbatch` and its arguments.
pub struct Submission<'a> {
    pub job_name: String,
    /// The job's stdout and stderr.
    pub output: &'a Path,
    /// Where the script starts (the build's work folder).
    pub work_dir: &'a Path,
    pub partition: Option<&'a str>,
    pub time: Option<&'a str>,
    /// `--slurm-arg`s, passed as given.
    pub extra: &'a [String],
    pub script: &'a Path,
    pub inner: Vec<OsString>,
}

impl Submission<'_> {
    pub fn args(&self) -> Vec<OsString> {
        let mut out: Vec<OsString> = vec![
            "--parsable".into(),
            "--job-name".into(),
            self.job_name.clone().into(),
            "--output".into(),
            self.output.into(),
            "--chdir".into(),
            self.work_dir.into(),
        ];
        if let Some(p) = self.partition {
            out.push("--partition".into());
            out.push(p.into());
        }
        if let Some(t) = self.time {
            out.push("--time".into());
            out.push(t.into());
        }
        out.extend(self.extra.iter().map(OsString::from));
        out.push(self.script.into());
        out.extend(self.inner.iter().cloned());
        out
    }
}

/// `sreg-build-NAME` from the partial file `.NAME.sif.partial-PID` (the
/// name of OUT without `.sif`).
pub fn job_name(partial: &Path) -> String {
    let file = partial
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let file = file.strip_prefix('.').unwrap_or(&file);
    let file = file.rsplit_once(".partial-").map_or(file, |(f, _)| f);
    let name = file.strip_suffix(".sif").unwrap_or(file);
    format!("sreg-build-{name}")
}

/// The job id `sbatch --parsable` prints: `ID` or `ID;CLUSTER`.
pub fn parse_job_id(stdout: &str) -> Option<String> {
    let id = stdout.trim().split(';').next()?.trim();
    (!id.is_empty() && id.chars().all(|c| c.is_ascii_digit())).then(|| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: Vec<OsString>) -> Vec<String> {
        v.into_iter().map(|s| s.into_string().unwrap()).collect()
    }

    #[test]
    fn the_inner_build_gets_every_option_that_shapes_the_image() {
        let args = BTreeMap::from([("V".to_string(), "1 2".to_string())]);
        let inner = InnerBuild {
            sreg: Path::new("/opt/sreg"),
            backend: BackendKind::Native,
            recipe: Path::new("/shared/r/Singularity"),
            image: Path::new("/shared/out/.sreg-build-x/image.sif"),
            build_args: &args,
            notest: true,
            nohttps: true,
            isolation: Isolation::Proot,
            docker_image: None,
        };
        assert_eq!(
            strings(inner.command()),
            [
                "/opt/sreg",
                "build",
                "--backend",
                "native",
                "/shared/r/Singularity",
                "-o",
                "/shared/out/.sreg-build-x/image.sif",
                "--build-arg",
                "V=1 2",
                "--notest",
                "--nohttps",
                "--isolation",
                "proot"
            ]
        );
    }

    #[test]
    fn sbatch_gets_name_output_folder_partition_time_and_extra_args() {
        let extra = vec!["--mem=8G".to_string()];
        let s = Submission {
            job_name: "sreg-build-x".into(),
            output: Path::new("/w/slurm.out"),
            work_dir: Path::new("/w"),
            partition: Some("long"),
            time: Some("2:00:00"),
            extra: &extra,
            script: Path::new("/w/sreg-build.sh"),
            inner: vec!["/opt/sreg".into(), "build".into()],
        };
        assert_eq!(
            strings(s.args()),
            [
                "--parsable",
                "--job-name",
                "sreg-build-x",
                "--output",
                "/w/slurm.out",
                "--chdir",
                "/w",
                "--partition",
                "long",
                "--time",
                "2:00:00",
                "--mem=8G",
                "/w/sreg-build.sh",
                "/opt/sreg",
                "build"
            ]
        );
    }

    #[test]
    fn job_names_and_ids() {
        assert_eq!(
            job_name(Path::new("/o/.lolcow_latest.sif.partial-123")),
            "sreg-build-lolcow_latest"
        );
        assert_eq!(job_name(Path::new("/o/.img.partial-9")), "sreg-build-img");
        assert_eq!(parse_job_id("42\n").as_deref(), Some("42"));
        assert_eq!(parse_job_id("42;cluster\n").as_deref(), Some("42"));
        assert_eq!(parse_job_id("Submitted batch job 42"), None);
    }
}
