//! Running the recipe's scripts: `%setup` on the host, `%post` and `%test`
//! inside the root filesystem (through `sreg __run-in-rootfs`, see
//! [`super::isolation`]), with the environment Apptainer gives them.

use std::path::Path;
use std::process::ExitStatus;

use anyhow::{Context, Result, bail};
use tokio::process::Command;

use super::isolation::{self, PROOT_VAR};
use super::metadata::{BUILD_LABELS, POST_ENVIRONMENT};
use super::paths::{inside, replace_file};
use crate::build::job::Job;

/// PATH inside the image while it is built.
const IMAGE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Host variables a script inside the image still sees (downloads need them).
const PASSED_THROUGH: &[&str] = &[
    "http_proxy",
    "https_proxy",
    "ftp_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "FTP_PROXY",
    "NO_PROXY",
    "SOURCE_DATE_EPOCH",
];

/// The interpreter of a script section: `-c SHELL [ARGS]` on the section,
/// else `/bin/sh -e -x` (stop at the first failing command, show each).
pub fn interpreter(shell: Option<&str>) -> Vec<String> {
    match shell {
        Some(sh) => sh.split_whitespace().map(String::from).collect(),
        None => vec!["/bin/sh".into(), "-e".into(), "-x".into()],
    }
}

/// Runs `%setup` (or any host script) with the root filesystem in
/// `$APPTAINER_ROOTFS`, from the recipe's folder.
pub async fn run_on_host(
    job: &Job<'_>,
    rootfs: &Path,
    what: &str,
    body: &str,
    shell: Option<&str>,
) -> Result<()> {
    let script = job
        .work_dir
        .join(format!("{}.sh", what.replace([' ', '%'], "_")));
    std::fs::write(&script, body).with_context(|| format!("cannot write {}", script.display()))?;
    let argv = interpreter(shell);
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .arg(&script)
        .current_dir(&job.context_dir)
        .env("APPTAINER_ROOTFS", rootfs)
        .env("SINGULARITY_ROOTFS", rootfs)
        .env("APPTAINER_ENVIRONMENT", POST_ENVIRONMENT)
        .env("SINGULARITY_ENVIRONMENT", POST_ENVIRONMENT);
    job.log.line(format!("running {what} on the host"));
    let status = job.log.run(cmd, &job.cancel).await;
    let _ = std::fs::remove_file(&script);
    check(what, status?)
}

/// Runs `%post` inside the root filesystem: the script goes to
/// `/.post.script`, run by the image's exec action (which reads the
/// image's environment scripts first, as `apptainer exec` would).
pub async fn run_post(
    job: &Job<'_>,
    rootfs: &Path,
    what: &str,
    body: &str,
    shell: Option<&str>,
) -> Result<()> {
    let script = inside(rootfs, "/.post.script")?;
    replace_file(&script, body.as_bytes(), 0o755)?;
    let mut command = vec!["/.singularity.d/actions/exec".to_string()];
    command.extend(interpreter(shell));
    command.push("/.post.script".into());
    let status = run_inside(job, rootfs, what, &command, false).await;
    let _ = std::fs::remove_file(&script);
    check(what, status?)
}

/// Runs the image's `%test` (its test action) on a read-only root filesystem.
pub async fn run_test(job: &Job<'_>, rootfs: &Path, what: &str) -> Result<()> {
    let command = vec!["/.singularity.d/actions/test".to_string()];
    let status = run_inside(job, rootfs, what, &command, true).await?;
    check(what, status)
}

/// Starts `sreg __run-in-rootfs` for `command`, its output into the log.
async fn run_inside(
    job: &Job<'_>,
    rootfs: &Path,
    what: &str,
    command: &[String],
    read_only: bool,
) -> Result<ExitStatus> {
    // The running program itself, even if a new build replaced its file.
    let exe = match Path::new("/proc/self/exe") {
        p if p.exists() => p.to_path_buf(),
        _ => std::env::current_exe().context("cannot find the sreg program itself")?,
    };
    let mut cmd = Command::new(exe);
    cmd.args(isolation::child_args(
        rootfs,
        job.isolation,
        read_only,
        "/",
        command,
    ))
    .current_dir("/")
    .env_clear()
    .env("PATH", IMAGE_PATH)
    .env("HOME", "/root")
    .env("LANG", "C")
    .env("APPTAINER_ENVIRONMENT", POST_ENVIRONMENT)
    .env("SINGULARITY_ENVIRONMENT", POST_ENVIRONMENT)
    .env("APPTAINER_LABELS", BUILD_LABELS)
    .env("SINGULARITY_LABELS", BUILD_LABELS)
    .env("APPTAINER_CONTAINER", rootfs)
    .env("SINGULARITY_CONTAINER", rootfs);
    for name in PASSED_THROUGH {
        if let Some(v) = std::env::var_os(name) {
            cmd.env(name, v);
        }
    }
    if let Ok(proot) = which::which("proot") {
        cmd.env(PROOT_VAR, proot);
    }
    job.log.line(format!(
        "running {what} in the image (isolation {})",
        isolation::isolation_name(job.isolation)
    ));
    job.log.run(cmd, &job.cancel).await
}

fn check(what: &str, status: ExitStatus) -> Result<()> {
    if status.success() {
        return Ok(());
    }
    match status.code() {
        Some(code) => bail!("{what} failed with exit code {code}"),
        None => bail!("{what} was stopped ({status})"),
    }
}
