//! The slurm backend: the build runs as a Slurm batch job on a compute
//! node, as `sreg build --backend <--slurm-backend>` of the same recipe into
//! the build's work folder; this side submits it (`sbatch`), follows it to
//! the end (`scontrol`, `sacct` once the controller has forgotten it) while
//! copying its output into the log, cancels it (`scancel`) on timeout or
//! Ctrl-C, and takes the image when it has completed.
//!
//! The compute node must see the same paths as the submitting host: the
//! `sreg` binary (or `SREG_SLURM_SREG`), the recipe with its `%files`, and
//! the output folder, where the work folder is (or `--tmpdir`). That is a
//! shared filesystem, as HPC sites have.

mod follow;
mod state;
mod submit;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use tokio::process::Command;

use super::apptainer::version_of;
use super::job::{BackendInfo, Job};
use super::record::{self, BuildRecord};
use super::tools;
use crate::cli::BackendKind;
use follow::OutputTail;
use state::JobState;
use submit::{InnerBuild, Submission};

/// How often the job's output is copied into the log.
const TAIL_EVERY: Duration = Duration::from_millis(250);
/// How often the controller is asked about the job, in [`TAIL_EVERY`]s.
const ASK_EVERY: u32 = 4;
/// How long a cancelled job has to leave the queue.
const CANCEL_WAIT: Duration = Duration::from_secs(50);
/// How long the controller may fail to answer before the build gives up
/// (and cancels the job).
const UNREACHABLE_LIMIT: Duration = Duration::from_secs(300);
/// A Slurm command that takes longer than this has a controller problem.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

pub async fn build(job: &Job<'_>) -> Result<BackendInfo> {
    let inner_backend = job.args.slurm_backend;
    if inner_backend == BackendKind::Slurm {
        bail!(
            "--slurm-backend slurm would submit another job from the job: choose auto, native, apptainer, singularity or docker"
        );
    }
    let sbatch = tools::find("sbatch")?;
    let scontrol = tools::find("scontrol")?;
    let scancel = tools::find("scancel")?;
    let version = version_of(&sbatch).await;
    let sreg = match std::env::var_os("SREG_SLURM_SREG") {
        Some(p) => PathBuf::from(p),
        None => std::env::current_exe().context("cannot find the sreg binary to run in the job")?,
    };

    let work = &job.work_dir;
    let script = work.join("sreg-build.sh");
    std::fs::write(&script, submit::SCRIPT)
        .and_then(|()| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
        })
        .with_context(|| format!("cannot write {}", script.display()))?;
    let inner_image = work.join("image.sif");
    let output = work.join("slurm.out");
    let inner = InnerBuild {
        sreg: &sreg,
        backend: inner_backend,
        recipe: &job.recipe_path,
        image: &inner_image,
        build_args: &job.build_args,
        notest: job.notest,
        nohttps: job.nohttps,
        isolation: job.isolation,
        docker_image: job.args.docker_image.as_deref(),
    };
    let submission = Submission {
        job_name: submit::job_name(&job.partial),
        output: &output,
        work_dir: work,
        partition: job.args.slurm_partition.as_deref(),
        time: job.args.slurm_time.as_deref(),
        extra: &job.args.slurm_args,
        script: &script,
        inner: inner.command(),
    };
    let mut cmd = Command::new(&sbatch);
    cmd.args(submission.args());
    let submitted = tokio::select! {
        out = capture(cmd) => out?,
        () = job.cancel.cancelled() => bail!("cancelled before the job was submitted"),
    };
    if !submitted.status.success() {
        bail!(
            "sbatch refused the job ({}): {}",
            submitted.status,
            String::from_utf8_lossy(&submitted.stderr).trim()
        );
    }
    let stdout = String::from_utf8_lossy(&submitted.stdout);
    let id = submit::parse_job_id(&stdout)
        .ok_or_else(|| anyhow!("sbatch printed no job id: {:?}", stdout.trim()))?;
    job.log.line(format!(
        "slurm {}: submitted job {id} ({}); it runs {} build --backend {}",
        version.as_deref().unwrap_or("(version unknown)"),
        submission.job_name,
        sreg.display(),
        super::backend_name(inner_backend)
    ));

    let watcher = Watcher {
        id: id.clone(),
        scontrol,
        tail: OutputTail::new(output),
        seen: None,
    };
    let end = follow_job(job, watcher, &scancel).await?;

    if !end.succeeded() {
        let mut message = format!("Slurm job {id} ended {}", end.describe());
        if let Some(line) = last_sreg_error(&job.log.tail(40)) {
            message.push_str(": ");
            message.push_str(line);
        }
        bail!(message);
    }
    if !inner_image.is_file() {
        bail!(
            "Slurm job {id} completed but wrote no image at {}: is {} on a filesystem the compute node shares?",
            inner_image.display(),
            work.display()
        );
    }
    move_file(&inner_image, &job.partial)?;

    let mut info = BackendInfo::new("slurm", version);
    info.details.insert("job_id".into(), id);
    if let Some(p) = end.partition {
        info.details.insert("partition".into(), p);
    }
    if let Some(n) = end.node {
        info.details.insert("node".into(), n);
    }
    let (inner_record, _) = record::paths_for(&inner_image);
    match BuildRecord::read(&inner_record) {
        Ok(Some(r)) => {
            info.details.insert("inner_backend".into(), r.backend);
            if let Some(v) = r.backend_version {
                info.details.insert("inner_backend_version".into(), v);
            }
        }
        Ok(None) => job.log.line("slurm: the job wrote no build record"),
        Err(e) => job.log.line(format!("slurm: {e:#}")),
    }
    Ok(info)
}

/// Looks at one job and copies its output.
struct Watcher {
    id: String,
    scontrol: PathBuf,
    tail: OutputTail,
    /// The state last logged.
    seen: Option<String>,
}

impl Watcher {
    /// The job's state now, logging changes; `None` when Slurm does not
    /// know the job (any more).
    async fn look(&mut self, job: &Job<'_>) -> Result<Option<JobState>> {
        self.tail.poll(&job.log);
        let state = job_state(&self.scontrol, &self.id).await?;
        if let Some(s) = &state {
            let shown = s.describe();
            if self.seen.as_ref() != Some(&shown) {
                job.log.line(format!("slurm: job {} {shown}", self.id));
                self.seen = Some(shown);
            }
        }
        Ok(state)
    }
}

/// Follows the job until it ends (its final state), or cancels it when the
/// build is cancelled and returns an error once it has left the queue.
async fn follow_job(job: &Job<'_>, mut w: Watcher, scancel: &Path) -> Result<JobState> {
    let mut tick = 0u32;
    // Since when the controller has not answered (a busy or restarting
    // controller is no reason to give up a build at once).
    let mut failing_since: Option<tokio::time::Instant> = None;
    let why = loop {
        if tick % ASK_EVERY == 0 {
            let state = tokio::select! {
                s = w.look(job) => s,
                () = job.cancel.cancelled() => break None,
            };
            match state {
                Ok(Some(s)) if s.is_terminal() => {
                    w.tail.finish(&job.log);
                    return Ok(s);
                }
                Ok(Some(_)) => failing_since = None,
                Ok(None) => {
                    w.tail.finish(&job.log);
                    return Ok(forgotten(job, &w.id));
                }
                Err(e) => {
                    let since = *failing_since.get_or_insert_with(tokio::time::Instant::now);
                    if since.elapsed() >= UNREACHABLE_LIMIT {
                        break Some(e.context(format!(
                            "Slurm did not answer about job {} for {}",
                            w.id,
                            humantime::format_duration(UNREACHABLE_LIMIT)
                        )));
                    }
                    job.log.line(format!("slurm: {e:#} (trying again)"));
                }
            }
        } else {
            w.tail.poll(&job.log);
        }
        tick = tick.wrapping_add(1);
        tokio::select! {
            () = tokio::time::sleep(TAIL_EVERY) => {}
            () = job.cancel.cancelled() => break None,
        }
    };
    cancel_job(job, &mut w, scancel).await;
    match why {
        Some(e) => Err(e),
        None => bail!("cancelled (Slurm job {})", w.id),
    }
}

/// `scancel`s the job and waits (up to [`CANCEL_WAIT`]) until it has left
/// the queue, so nothing runs on in a work folder about to be removed.
async fn cancel_job(job: &Job<'_>, w: &mut Watcher, scancel: &Path) {
    job.log.line(format!("slurm: cancelling job {}", w.id));
    let mut cmd = Command::new(scancel);
    cmd.arg(&w.id);
    match capture(cmd).await {
        Ok(out) if !out.status.success() => job.log.line(format!(
            "slurm: scancel {}: {}",
            w.id,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => job.log.line(format!("slurm: {e:#}")),
        Ok(_) => {}
    }
    let deadline = tokio::time::Instant::now() + CANCEL_WAIT;
    while tokio::time::Instant::now() < deadline {
        match w.look(job).await {
            Ok(Some(s)) if !s.is_terminal() => {}
            Ok(_) => break,
            Err(e) => job.log.line(format!("slurm: {e:#}")),
        }
        tokio::time::sleep(TAIL_EVERY * ASK_EVERY).await;
    }
    w.tail.finish(&job.log);
}

/// The controller no longer knows the job (it ended more than MinJobAge
/// ago): without accounting, the job's own build record tells whether it
/// finished its work.
fn forgotten(job: &Job<'_>, id: &str) -> JobState {
    let inner_image = job.work_dir.join("image.sif");
    let (inner_record, _) = record::paths_for(&inner_image);
    let done = inner_record.is_file() && inner_image.is_file();
    job.log.line(format!(
        "slurm: Slurm no longer knows job {id} and sacct has no record of it; {}",
        if done {
            "its build record says it completed"
        } else {
            "it left no image"
        }
    ));
    JobState {
        state: if done { "COMPLETED" } else { "UNKNOWN" }.into(),
        ..JobState::default()
    }
}

/// `scontrol show job -o ID`, else `sacct -j ID`; `None` when neither
/// knows the job.
async fn job_state(scontrol: &Path, id: &str) -> Result<Option<JobState>> {
    let mut cmd = Command::new(scontrol);
    cmd.args(["show", "job", "-o", id]);
    let out = capture(cmd).await?;
    let text = String::from_utf8_lossy(&out.stdout);
    if out.status.success() {
        return state::parse_scontrol(&text)
            .map(Some)
            .ok_or_else(|| anyhow!("cannot read scontrol's answer about job {id}: {text:?}"));
    }
    let err = String::from_utf8_lossy(&out.stderr);
    if !err.contains("Invalid job id") {
        // The controller is unreachable or busy: Slurm's clients say so.
        bail!("scontrol show job {id}: {}", err.trim());
    }
    let Ok(sacct) = tools::find("sacct") else {
        return Ok(None);
    };
    let mut cmd = Command::new(sacct);
    cmd.args(["-j", id]).args(state::SACCT_ARGS);
    match capture(cmd).await {
        Ok(out) if out.status.success() => {
            Ok(state::parse_sacct(&String::from_utf8_lossy(&out.stdout)))
        }
        _ => Ok(None),
    }
}

/// Runs a short Slurm command and collects its output.
async fn capture(mut cmd: Command) -> Result<Output> {
    let shown = format!("{:?}", cmd.as_std());
    cmd.stdin(std::process::Stdio::null()).kill_on_drop(true);
    tokio::time::timeout(COMMAND_TIMEOUT, cmd.output())
        .await
        .map_err(|_| anyhow!("{shown} did not answer within {COMMAND_TIMEOUT:?}"))?
        .with_context(|| format!("cannot run {shown}"))
}

/// Why the inner sreg failed: its last error line (`sreg: ...`), without
/// the path of its own log, which goes with the work folder (its lines are
/// in this build's log).
fn last_sreg_error(tail: &str) -> Option<&str> {
    let line = tail
        .lines()
        .rev()
        .find(|l| l.starts_with("sreg: ") && !l.starts_with("sreg: Slurm job"))?;
    let line = line.strip_prefix("sreg: ").unwrap_or(line);
    Some(match line.split_once("; its log is ") {
        Some((_, rest)) => rest.split_once(": ").map_or(line, |(_, why)| why),
        None => line,
    })
}

/// Renames, or copies where the work folder is on another filesystem
/// (`--tmpdir`).
fn move_file(from: &Path, to: &Path) -> Result<()> {
    if std::fs::rename(from, to).is_ok() {
        return Ok(());
    }
    std::fs::copy(from, to)
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    std::fs::remove_file(from).with_context(|| format!("cannot remove {}", from.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_inner_builds_reason_is_kept_without_its_log_path() {
        let tail = "sreg: Slurm job 1 on vm\n+ exit 3\nsreg: the build failed; its log is /w/image.build.log: %post of stage 1 (line 1) failed with exit code 3\nslurm: job 1 FAILED";
        assert_eq!(
            last_sreg_error(tail),
            Some("%post of stage 1 (line 1) failed with exit code 3")
        );
        assert_eq!(
            last_sreg_error("sreg: cannot read the recipe /r/S: No such file"),
            Some("cannot read the recipe /r/S: No such file")
        );
        assert_eq!(last_sreg_error("sreg: Slurm job 1 on vm\nbye"), None);
    }
}
