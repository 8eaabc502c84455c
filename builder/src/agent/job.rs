//! One leased job: clone at the commit, `sreg build`, `sreg push`, finish;
//! a heartbeat and the log stream run alongside. The job's folder is
//! removed afterwards, whatever happened.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use sreg_api::builds::{BUILD_JOB_META, FinishRequest, Lease, LeaseRef, Outcome};
use tokio_util::sync::CancellationToken;

use super::logstream::{self, LogSender};
use super::{Agent, child, git, retry};
use crate::build::log::tail_of_file;
use crate::build::record::{self, BuildRecord};

/// A build stopped by SIGINT gets this long to clean up before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(70);
/// Lines of the log's end that go into a failed job's error.
const TAIL_LINES: usize = 20;

/// Why a job's work was stopped before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// Someone asked the registry to cancel the job.
    Cancelled,
    /// The lease expired or went to another agent: drop the job.
    LeaseLost,
    /// The agent was told twice to stop.
    Shutdown,
}

/// What stops a job: a token and the first reason given.
#[derive(Clone)]
struct Stopper {
    token: CancellationToken,
    why: Arc<Mutex<Option<Stop>>>,
}

impl Stopper {
    fn stop(&self, why: Stop) {
        if let Ok(mut w) = self.why.lock() {
            w.get_or_insert(why);
        }
        self.token.cancel();
    }

    fn why(&self) -> Option<Stop> {
        self.why.lock().ok().and_then(|w| *w)
    }
}

/// How the work ended, before the job is finished.
enum Ended {
    Built { sha256: String },
    Failed(String),
    Stopped(Stop),
}

pub async fn run(agent: Arc<Agent>, lease: Lease) {
    let job = &lease.job;
    let id = job.id;
    eprintln!(
        "sreg agent: job {id}: {} at {} of {} -> {}",
        job.recipe_path,
        short(&job.commit),
        git::redact(&job.repository),
        job.reference
    );
    let dir = agent.work_dir.join(format!("job-{id}"));
    let _ = std::fs::remove_dir_all(&dir);

    let stopper = Stopper {
        token: CancellationToken::new(),
        why: Arc::default(),
    };
    let lost = CancellationToken::new();
    let heartbeat_done = CancellationToken::new();
    let heartbeat = tokio::spawn(heartbeat(
        agent.clone(),
        lease.clone(),
        stopper.clone(),
        lost.clone(),
        heartbeat_done.clone(),
    ));
    let shutdown = {
        let (agent, stopper, done) = (agent.clone(), stopper.clone(), heartbeat_done.clone());
        tokio::spawn(async move {
            tokio::select! {
                () = agent.cancel_builds.cancelled() => stopper.stop(Stop::Shutdown),
                () = done.cancelled() => {}
            }
        })
    };

    let mut log = LogSender {
        client: agent.client.clone(),
        job: id,
        lease_id: lease.lease_id.clone(),
        offset: u64::try_from(job.log_size).unwrap_or(0),
        lost: lost.clone(),
        broken: false,
    };
    let ended = work(&agent, &lease, &dir, &stopper, &mut log).await;
    let ended = match (ended, stopper.why()) {
        (Ended::Failed(_), Some(why)) => Ended::Stopped(why),
        (e, _) => e,
    };

    let finish = |outcome, error: Option<String>, image_sha256| FinishRequest {
        lease_id: lease.lease_id.clone(),
        outcome,
        error,
        image_sha256,
    };
    let request = match ended {
        Ended::Built { sha256 } => {
            eprintln!("sreg agent: job {id}: built and pushed {}", job.reference);
            Some(finish(Outcome::Succeeded, None, Some(sha256)))
        }
        Ended::Failed(error) => {
            eprintln!("sreg agent: job {id}: failed");
            log.send(format!("\n== sreg agent: the job failed:\n{error}\n").as_bytes())
                .await;
            Some(finish(Outcome::Failed, Some(error), None))
        }
        Ended::Stopped(Stop::LeaseLost) => {
            eprintln!("sreg agent: job {id}: the lease is lost; the job is dropped");
            None
        }
        Ended::Stopped(why) => {
            let error = match why {
                Stop::Cancelled => "cancelled on request",
                _ => "the agent was stopped",
            };
            eprintln!("sreg agent: job {id}: stopped: {error}");
            log.send(format!("\n== sreg agent: {error}\n").as_bytes())
                .await;
            Some(finish(Outcome::Failed, Some(error.to_string()), None))
        }
    };
    if let Some(request) = request {
        // The heartbeat keeps the lease while the registry is unreachable;
        // once the lease is lost, finishing is pointless.
        let r = retry::call("finishing the job", None, &lost, || {
            agent.client.agent_finish(id, &request)
        })
        .await;
        match r {
            Ok(done) => eprintln!("sreg agent: job {id}: {}", done.state.as_str()),
            Err(e) => eprintln!("sreg agent: job {id}: cannot finish it: {e}"),
        }
    }
    heartbeat_done.cancel();
    let _ = heartbeat.await;
    let _ = shutdown.await;
    if let Err(e) = std::fs::remove_dir_all(&dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        eprintln!("sreg agent: job {id}: cannot remove {}: {e}", dir.display());
    }
}

/// Clones, builds and pushes; streams the log meanwhile.
async fn work(
    agent: &Agent,
    lease: &Lease,
    dir: &Path,
    stopper: &Stopper,
    log: &mut LogSender,
) -> Ended {
    let job = &lease.job;
    let header = format!(
        "== sreg agent {}: job {}, {} at {} of {}\n",
        agent.name,
        job.id,
        job.recipe_path,
        job.commit,
        git::redact(&job.repository)
    );
    log.send(header.as_bytes()).await;

    let src = dir.join("src");
    let clone = {
        let (src, url, commit) = (src.clone(), job.repository.clone(), job.commit.clone());
        tokio::task::spawn_blocking(move || git::checkout_commit(&src, &url, &commit))
    };
    let cloned = tokio::select! {
        r = clone => r,
        () = stopper.token.cancelled() => return Ended::Stopped(stopper.why().unwrap_or(Stop::Shutdown)),
    };
    match cloned {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Ended::Failed(format!("cannot check out the commit: {e:#}")),
        Err(e) => return Ended::Failed(format!("cannot check out the commit: {e}")),
    }

    let exe = match child::sreg_exe() {
        Ok(e) => e,
        Err(e) => return Ended::Failed(format!("{e:#}")),
    };
    let out_dir = dir.join("out");
    let image = out_dir.join("image.sif");
    let (record_path, log_path) = record::paths_for(&image);
    if let Err(e) = std::fs::create_dir_all(&out_dir) {
        return Ended::Failed(format!("cannot create {}: {e}", out_dir.display()));
    }
    let backend = job
        .backend
        .clone()
        .unwrap_or_else(|| crate::build::backend_name(agent.backend).to_string());
    let stderr_path = dir.join("build.stderr");
    let mut build = tokio::process::Command::new(&exe);
    build
        .args(child::build_args(
            &src.join(&job.recipe_path),
            &image,
            &backend,
        ))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let build = run_child(build, &stderr_path, stopper, Some((log, log_path.clone()))).await;
    match build {
        ChildEnd::Exited(true) => {}
        ChildEnd::Exited(false) => {
            let mut error = tail_of_file(&log_path, TAIL_LINES).unwrap_or_default();
            let stderr = tail_of_file(&stderr_path, 5).unwrap_or_default();
            if !stderr.is_empty() {
                error = format!("{error}\n{stderr}");
            }
            return Ended::Failed(error.trim().to_string());
        }
        ChildEnd::Stopped => return Ended::Stopped(stopper.why().unwrap_or(Stop::Shutdown)),
        ChildEnd::NotStarted(e) => return Ended::Failed(e),
    }

    log.send(format!("\n== sreg agent: pushing {}\n", job.reference).as_bytes())
        .await;
    let job_id = job.id.to_string();
    let repository = git::redact(&job.repository);
    let mut push = tokio::process::Command::new(&exe);
    push.args(child::push_args(
        &image,
        &job.reference,
        &[
            (BUILD_JOB_META, &job_id),
            ("branch", &job.branch),
            ("repository", &repository),
        ],
    ))
    .current_dir(dir)
    .env(crate::registry::ENV_REGISTRY, &agent.registry)
    .env(crate::registry::ENV_TOKEN, &agent.token)
    .stdin(Stdio::null())
    .stdout(Stdio::null());
    let push_err = dir.join("push.stderr");
    match run_child(push, &push_err, stopper, None).await {
        ChildEnd::Exited(true) => {}
        ChildEnd::Exited(false) => {
            return Ended::Failed(format!(
                "the push failed: {}",
                tail_of_file(&push_err, 5).unwrap_or_default()
            ));
        }
        ChildEnd::Stopped => return Ended::Stopped(stopper.why().unwrap_or(Stop::Shutdown)),
        ChildEnd::NotStarted(e) => return Ended::Failed(e),
    }
    match BuildRecord::read(&record_path) {
        Ok(Some(r)) => Ended::Built {
            sha256: r.image.sha256,
        },
        Ok(None) => Ended::Failed(format!("the build wrote no {}", record_path.display())),
        Err(e) => Ended::Failed(format!("{e:#}")),
    }
}

enum ChildEnd {
    Exited(bool),
    Stopped,
    NotStarted(String),
}

/// Runs a child in a process group of its own (a Ctrl-C meant for the
/// agent does not reach it, and a stop reaches all of its processes), its
/// stderr into `stderr`; follows `log` while it runs.
async fn run_child(
    mut cmd: tokio::process::Command,
    stderr: &Path,
    stopper: &Stopper,
    log: Option<(&mut LogSender, PathBuf)>,
) -> ChildEnd {
    let file = match std::fs::File::create(stderr) {
        Ok(f) => f,
        Err(e) => return ChildEnd::NotStarted(format!("cannot create {}: {e}", stderr.display())),
    };
    cmd.stderr(file).process_group(0).kill_on_drop(true);
    let mut process = match cmd.spawn() {
        Ok(p) => p,
        Err(e) => return ChildEnd::NotStarted(format!("cannot run sreg: {e}")),
    };
    let pid = process.id();
    let done = CancellationToken::new();
    let follow = async {
        match log {
            Some((sender, path)) => {
                // The follower owns a sender for a while; the acknowledged
                // offset comes back when it ends.
                let moved = LogSender {
                    client: sender.client.clone(),
                    job: sender.job,
                    lease_id: sender.lease_id.clone(),
                    offset: sender.offset,
                    lost: sender.lost.clone(),
                    broken: sender.broken,
                };
                let back = logstream::follow(moved, path, done.clone()).await;
                sender.offset = back.offset;
                sender.broken = back.broken;
            }
            None => done.cancelled().await,
        }
    };
    let wait = async {
        let end = tokio::select! {
            status = process.wait() => ChildEnd::Exited(status.is_ok_and(|s| s.success())),
            () = stopper.token.cancelled() => {
                if let Some(pid) = pid {
                    // `sreg build` stops its backend cleanly on SIGINT.
                    let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGINT);
                    if tokio::time::timeout(STOP_GRACE, process.wait()).await.is_err() {
                        let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
                        let _ = process.wait().await;
                    }
                }
                ChildEnd::Stopped
            }
        };
        done.cancel();
        end
    };
    let (end, ()) = tokio::join!(wait, follow);
    end
}

/// Heartbeats every `heartbeat_seconds`, retried while the registry is
/// unreachable until the lease would have ended; a cancel answer stops the
/// build, a lost lease stops it and drops the job.
async fn heartbeat(
    agent: Arc<Agent>,
    lease: Lease,
    stopper: Stopper,
    lost: CancellationToken,
    done: CancellationToken,
) {
    let every = Duration::from_secs(lease.heartbeat_seconds.clamp(1, 3600) as u64);
    let mut lease_for = Duration::from_secs(lease.lease_seconds.max(1) as u64);
    let mut last_ok = tokio::time::Instant::now();
    let lease_ref = LeaseRef {
        lease_id: lease.lease_id.clone(),
    };
    let id = lease.job.id;
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = done.cancelled() => return,
        }
        let r = retry::call("heartbeat", Some(last_ok + lease_for), &done, || {
            agent.client.agent_heartbeat(id, &lease_ref)
        })
        .await;
        match r {
            Ok(answer) => {
                last_ok = tokio::time::Instant::now();
                lease_for = Duration::from_secs(answer.lease_seconds.max(1) as u64);
                if answer.cancel && !stopper.token.is_cancelled() {
                    eprintln!("sreg agent: job {id}: cancel requested; stopping the build");
                    stopper.stop(Stop::Cancelled);
                }
            }
            Err(_) if done.is_cancelled() => return,
            Err(e) => {
                eprintln!("sreg agent: job {id}: lease lost ({e}); stopping the build");
                stopper.stop(Stop::LeaseLost);
                lost.cancel();
                return;
            }
        }
    }
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}
