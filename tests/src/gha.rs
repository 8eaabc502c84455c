//! A local stand-in for GitHub's Actions runner, since GitHub itself cannot
//! run here: enough to execute our workflow (`ci-templates/github`) and our
//! composite actions (`actions/`) for real, step by step, and honest about
//! the rest.
//!
//! What it does: parses the workflow (serde_yaml_ng), runs jobs one at a time
//! in `needs` order, expands `strategy.matrix` (lists, `fromJSON(...)`), and
//! for each step evaluates `if:`, merges `env` (workflow < job < `GITHUB_ENV`
//! < step) and
//! - runs `run:` scripts as GitHub does (`bash --noprofile --norc -eo
//!   pipefail FILE`) in the workspace with the default `GITHUB_*`/`RUNNER_*`
//!   variables and fresh `GITHUB_OUTPUT`, `GITHUB_ENV`, `GITHUB_PATH` and
//!   `GITHUB_STEP_SUMMARY` files, read back afterwards;
//! - runs local composite actions (`uses: ./path`) with their inputs and
//!   outputs;
//! - does not run remote actions: `actions/checkout` because the workspace
//!   already is the checkout at the event's commit, any other (such as
//!   `actions/cache`) recorded in the report as not run.
//!
//! Not supported, and an error when a workflow uses it: other shells,
//! `container`, `services`, `defaults`, reusable workflows,
//! `continue-on-error`, matrix `include`/`exclude`, expressions outside
//! [`expr`]'s subset. Ignored: `runs-on` (steps run on this machine),
//! `timeout-minutes`, `permissions`, `concurrency`. Jobs and matrix legs
//! run one after another; workflow commands printed on stdout (`::error::`,
//! `::add-mask::`) are left in the log as printed, so nothing is masked: a
//! test can check that a secret never reaches the output at all.

pub mod expr;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Map, Value, json};

use expr::Scope;

/// The event that triggered the run, as a workflow sees it.
#[derive(Debug, Clone)]
pub struct Event {
    /// `push`, `pull_request`, `workflow_dispatch`.
    pub name: String,
    /// `GITHUB_SHA`: the commit checked out.
    pub sha: String,
    /// `GITHUB_REF`, such as `refs/heads/main`.
    pub git_ref: String,
    /// `GITHUB_HEAD_REF`/`GITHUB_BASE_REF` of a pull request.
    pub head_ref: Option<String>,
    pub base_ref: Option<String>,
    /// `github.event`: the webhook payload.
    pub payload: Value,
}

impl Event {
    /// A push of `after` to `branch`, whose tip was `before`.
    pub fn push(branch: &str, before: &str, after: &str) -> Self {
        Self {
            name: "push".into(),
            sha: after.into(),
            git_ref: format!("refs/heads/{branch}"),
            head_ref: None,
            base_ref: None,
            payload: json!({"ref": format!("refs/heads/{branch}"), "before": before, "after": after}),
        }
    }

    /// Pull request `number` of `head_ref` (at `head_sha`) into `base_ref`
    /// (at `base_sha`). GitHub checks out a merge commit; here the head
    /// commit stands for it.
    pub fn pull_request(
        number: u64,
        base_ref: &str,
        base_sha: &str,
        head_ref: &str,
        head_sha: &str,
    ) -> Self {
        Self {
            name: "pull_request".into(),
            sha: head_sha.into(),
            git_ref: format!("refs/pull/{number}/merge"),
            head_ref: Some(head_ref.into()),
            base_ref: Some(base_ref.into()),
            payload: json!({
                "number": number,
                "pull_request": {
                    "number": number,
                    "base": {"ref": base_ref, "sha": base_sha},
                    "head": {"ref": head_ref, "sha": head_sha},
                },
            }),
        }
    }

    fn ref_name(&self) -> String {
        let r = &self.git_ref;
        r.strip_prefix("refs/heads/")
            .or_else(|| r.strip_prefix("refs/tags/"))
            .or_else(|| r.strip_prefix("refs/"))
            .unwrap_or(r)
            .to_string()
    }
}

/// Runs workflows of the repository checked out in `workspace`.
pub struct LocalRunner {
    pub workspace: PathBuf,
    /// `owner/name`.
    pub repository: String,
    pub server_url: String,
    pub run_id: u64,
    pub event: Event,
    pub secrets: BTreeMap<String, String>,
    pub vars: BTreeMap<String, String>,
    /// Workflow-level `env` values replaced for this run: the declared
    /// substitutions (such as a backend that can run here).
    pub env_overrides: BTreeMap<String, String>,
    /// `PATH` that steps start from (a runner's system path); `GITHUB_PATH`
    /// entries go in front.
    pub base_path: String,
    temp: tempfile::TempDir,
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq)]
pub enum StepOutcome {
    Success,
    /// With the reason (exit status, or what the runner could not do).
    Failure(String),
    /// Its `if:` was false.
    Skipped,
    /// `actions/checkout`: the workspace already is the checkout.
    CheckoutStandIn,
    /// A remote action this runner does not run (recorded, never silent).
    RemoteActionNotRun(String),
}

#[derive(Debug, Clone)]
pub struct StepRun {
    pub id: String,
    pub name: String,
    pub outcome: StepOutcome,
    pub outputs: BTreeMap<String, String>,
    /// stdout and stderr, interleaved.
    pub log: String,
    /// What it wrote to `GITHUB_STEP_SUMMARY`.
    pub summary: String,
    /// The steps of a composite action.
    pub steps: Vec<StepRun>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobResult {
    Success,
    Failure,
    Skipped,
    /// A matrix leg not started after another failed (fail-fast).
    Cancelled,
}

#[derive(Debug, Clone)]
pub struct JobRun {
    pub id: String,
    pub name: String,
    /// This leg's `matrix` (null without a matrix).
    pub matrix: Value,
    pub result: JobResult,
    pub outputs: BTreeMap<String, String>,
    pub steps: Vec<StepRun>,
    /// What failed the job outside a step (an expression, a bad matrix).
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct RunReport {
    pub jobs: Vec<JobRun>,
    /// Workflow `env` values this run replaced ([`LocalRunner::env_overrides`]).
    pub substitutions: Vec<String>,
}

impl RunReport {
    pub fn success(&self) -> bool {
        self.jobs
            .iter()
            .all(|j| matches!(j.result, JobResult::Success | JobResult::Skipped))
    }

    /// Every run (matrix leg) of job `id`.
    pub fn runs_of(&self, id: &str) -> Vec<&JobRun> {
        self.jobs.iter().filter(|j| j.id == id).collect()
    }

    /// Every step, composite steps included, depth first.
    pub fn all_steps(&self) -> Vec<&StepRun> {
        fn walk<'a>(steps: &'a [StepRun], out: &mut Vec<&'a StepRun>) {
            for s in steps {
                out.push(s);
                walk(&s.steps, out);
            }
        }
        let mut out = Vec::new();
        for j in &self.jobs {
            walk(&j.steps, &mut out);
        }
        out
    }

    /// All the output every step printed.
    pub fn all_logs(&self) -> String {
        self.all_steps()
            .iter()
            .map(|s| s.log.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The remote actions that were not run, as `uses` values.
    pub fn not_run(&self) -> Vec<String> {
        self.all_steps()
            .iter()
            .filter_map(|s| match &s.outcome {
                StepOutcome::RemoteActionNotRun(u) => Some(u.clone()),
                _ => None,
            })
            .collect()
    }

    /// A readable account of the run, for assertion messages.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for sub in &self.substitutions {
            out.push_str(&format!("substitution: {sub}\n"));
        }
        for j in &self.jobs {
            out.push_str(&format!("job {} ({}): {:?}\n", j.id, j.name, j.result));
            if let Some(e) = &j.error {
                out.push_str(&format!("  error: {e}\n"));
            }
            render_steps(&mut out, &j.steps, 1);
        }
        out
    }
}

fn render_steps(out: &mut String, steps: &[StepRun], depth: usize) {
    let pad = "  ".repeat(depth);
    for s in steps {
        out.push_str(&format!("{pad}- {} [{}]: {:?}\n", s.name, s.id, s.outcome));
        let tail: Vec<&str> = s.log.lines().rev().take(15).collect();
        for line in tail.into_iter().rev() {
            out.push_str(&format!("{pad}    | {line}\n"));
        }
        render_steps(out, &s.steps, depth + 1);
    }
}

/// One job leg's state while its steps run.
struct JobState {
    /// Workflow and job `env`, then `GITHUB_ENV` additions.
    env: BTreeMap<String, String>,
    /// `GITHUB_PATH` additions, newest first.
    path_prefix: Vec<String>,
    matrix: Value,
    needs: Value,
    job_id: String,
    step_counter: usize,
}

/// The steps being run: a job's, or a composite action's.
struct Frame {
    inputs: Option<Value>,
    steps_ctx: Map<String, Value>,
    failed: bool,
    /// The calling step's `env` (composite steps inherit it).
    inherited_env: BTreeMap<String, String>,
    /// `GITHUB_ACTION_PATH` of a composite action.
    action_path: Option<PathBuf>,
}

impl LocalRunner {
    /// A runner for the checkout in `workspace`, on `event`.
    pub fn new(workspace: &Path, repository: &str, event: Event) -> Self {
        Self {
            workspace: workspace.to_path_buf(),
            repository: repository.into(),
            server_url: "https://github.com".into(),
            run_id: 4_200_000_000 + u64::from(std::process::id()),
            event,
            secrets: BTreeMap::new(),
            vars: BTreeMap::new(),
            env_overrides: BTreeMap::new(),
            base_path: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            temp: tempfile::Builder::new()
                .prefix("gha-runner-")
                .tempdir()
                .expect("runner temp dir"),
        }
    }

    /// `RUNNER_TEMP`.
    pub fn runner_temp(&self) -> PathBuf {
        self.temp.path().join("temp")
    }

    /// Runs the workflow file at `path` (relative to the workspace or absolute).
    pub fn run_workflow(&self, path: &Path) -> Result<RunReport, String> {
        let file = self.workspace.join(path);
        let text = fs::read_to_string(&file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let wf: Value = serde_yaml_ng::from_str(&text)
            .map_err(|e| format!("{} is not YAML: {e}", file.display()))?;
        self.run(&wf)
    }

    /// Runs a parsed workflow. Err only for a workflow the runner cannot
    /// start; a failing job is in the report.
    pub fn run(&self, wf: &Value) -> Result<RunReport, String> {
        for dir in ["temp", "home", "tool-cache", "files"] {
            fs::create_dir_all(self.temp.path().join(dir)).map_err(|e| e.to_string())?;
        }
        check_keys(
            wf,
            &[
                "name",
                "run-name",
                "on",
                "true",
                "permissions",
                "concurrency",
                "env",
                "jobs",
            ],
            "workflow",
        )?;
        let mut report = RunReport::default();
        let scope = self.scope(
            &BTreeMap::new(),
            &Value::Null,
            &Value::Null,
            None,
            &Map::new(),
            false,
        );
        let mut wf_env = BTreeMap::new();
        for (k, v) in obj(wf.get("env")) {
            wf_env.insert(k.clone(), expr::interpolate(&text_of(&v)?, &scope)?);
        }
        for (k, v) in &self.env_overrides {
            let Some(old) = wf_env.insert(k.clone(), v.clone()) else {
                return Err(format!(
                    "env override {k}: the workflow has no env {k} to replace"
                ));
            };
            report
                .substitutions
                .push(format!("env.{k}: {old:?} -> {v:?}"));
        }

        let jobs = obj(wf.get("jobs"));
        let order = job_order(&jobs)?;
        let mut results: BTreeMap<String, (JobResult, BTreeMap<String, String>)> = BTreeMap::new();
        for id in order {
            let job = &jobs[&id];
            let needs = needs_of(job);
            let mut needs_ctx = Map::new();
            let mut needs_failed = false;
            for n in &needs {
                let (result, outputs) = &results[n];
                needs_failed |= *result != JobResult::Success;
                needs_ctx.insert(
                    n.clone(),
                    json!({"result": result_name(*result), "outputs": outputs}),
                );
            }
            let runs = self.run_job(&id, job, &wf_env, Value::Object(needs_ctx), needs_failed);
            let result = if runs.iter().any(|r| r.result == JobResult::Failure) {
                JobResult::Failure
            } else if runs.iter().all(|r| r.result == JobResult::Skipped) {
                JobResult::Skipped
            } else {
                JobResult::Success
            };
            // Matrix legs' outputs: a later leg's non-empty value wins.
            let mut outputs = BTreeMap::new();
            for r in &runs {
                for (k, v) in &r.outputs {
                    if !v.is_empty() || !outputs.contains_key(k) {
                        outputs.insert(k.clone(), v.clone());
                    }
                }
            }
            results.insert(id.clone(), (result, outputs));
            report.jobs.extend(runs);
        }
        Ok(report)
    }

    fn run_job(
        &self,
        id: &str,
        job: &Value,
        wf_env: &BTreeMap<String, String>,
        needs: Value,
        needs_failed: bool,
    ) -> Vec<JobRun> {
        let failed_run = |error: String, matrix: Value| JobRun {
            id: id.into(),
            name: id.into(),
            matrix,
            result: JobResult::Failure,
            outputs: BTreeMap::new(),
            steps: Vec::new(),
            error: Some(error),
        };
        if let Err(e) = check_keys(
            job,
            &[
                "name",
                "needs",
                "if",
                "runs-on",
                "timeout-minutes",
                "outputs",
                "steps",
                "strategy",
                "env",
                "permissions",
                "concurrency",
            ],
            &format!("job {id}"),
        ) {
            return vec![failed_run(e, Value::Null)];
        }
        // As on GitHub, a job's `if:` and `strategy` see github, needs and
        // vars, not env, matrix, steps or secrets.
        let mut job_scope = self.scope(
            wf_env,
            &Value::Null,
            &needs,
            None,
            &Map::new(),
            needs_failed,
        );
        for hidden in ["env", "matrix", "steps", "secrets", "runner"] {
            job_scope.contexts.remove(hidden);
        }
        let run = match job.get("if") {
            None => !needs_failed,
            Some(cond) => match text_of(cond).and_then(|c| expr::condition(&c, &job_scope)) {
                Ok(b) => b,
                Err(e) => return vec![failed_run(e, Value::Null)],
            },
        };
        if !run {
            return vec![JobRun {
                id: id.into(),
                name: job.get("name").and_then(Value::as_str).unwrap_or(id).into(),
                matrix: Value::Null,
                result: JobResult::Skipped,
                outputs: BTreeMap::new(),
                steps: Vec::new(),
                error: None,
            }];
        }
        let (legs, fail_fast) = match matrix_legs(job.get("strategy"), &job_scope) {
            Ok(l) => l,
            Err(e) => return vec![failed_run(e, Value::Null)],
        };
        let mut runs: Vec<JobRun> = Vec::new();
        for matrix in legs {
            if fail_fast && runs.iter().any(|r| r.result == JobResult::Failure) {
                let mut r = failed_run("cancelled: another leg failed (fail-fast)".into(), matrix);
                r.result = JobResult::Cancelled;
                runs.push(r);
                continue;
            }
            runs.push(self.run_leg(id, job, wf_env, &needs, matrix));
        }
        runs
    }

    fn run_leg(
        &self,
        id: &str,
        job: &Value,
        wf_env: &BTreeMap<String, String>,
        needs: &Value,
        matrix: Value,
    ) -> JobRun {
        let mut run = JobRun {
            id: id.into(),
            name: id.into(),
            matrix: matrix.clone(),
            result: JobResult::Success,
            outputs: BTreeMap::new(),
            steps: Vec::new(),
            error: None,
        };
        let mut state = JobState {
            env: wf_env.clone(),
            path_prefix: Vec::new(),
            matrix,
            needs: needs.clone(),
            job_id: id.into(),
            step_counter: 0,
        };
        let setup = (|| -> Result<(), String> {
            let scope = self.job_scope(&state, None, &Map::new(), false);
            if let Some(name) = job.get("name") {
                run.name = expr::interpolate(&text_of(name)?, &scope)?;
            }
            for (k, v) in obj(job.get("env")) {
                let value = expr::interpolate(&text_of(&v)?, &scope)?;
                state.env.insert(k.clone(), value);
            }
            Ok(())
        })();
        if let Err(e) = setup {
            run.result = JobResult::Failure;
            run.error = Some(e);
            return run;
        }
        let mut frame = Frame {
            inputs: None,
            steps_ctx: Map::new(),
            failed: false,
            inherited_env: BTreeMap::new(),
            action_path: None,
        };
        let steps = job
            .get("steps")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        run.steps = self.run_steps(&steps, &mut frame, &mut state);
        if frame.failed {
            run.result = JobResult::Failure;
        }
        let scope = self.job_scope(&state, None, &frame.steps_ctx, frame.failed);
        for (k, v) in obj(job.get("outputs")) {
            match text_of(&v).and_then(|t| expr::interpolate(&t, &scope)) {
                Ok(value) => {
                    run.outputs.insert(k.clone(), value);
                }
                Err(e) => {
                    run.result = JobResult::Failure;
                    run.error = Some(format!("output {k}: {e}"));
                }
            }
        }
        run
    }

    fn run_steps(&self, steps: &[Value], frame: &mut Frame, state: &mut JobState) -> Vec<StepRun> {
        let mut out = Vec::new();
        for step in steps {
            state.step_counter += 1;
            let id = step
                .get("id")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| format!("__step{}", state.step_counter));
            let mut run = StepRun {
                id: id.clone(),
                name: step_name(step),
                outcome: StepOutcome::Success,
                outputs: BTreeMap::new(),
                log: String::new(),
                summary: String::new(),
                steps: Vec::new(),
            };
            if let Err(e) = self.run_step(step, frame, state, &mut run) {
                run.outcome = StepOutcome::Failure(e.clone());
                run.log.push_str(&format!("\nlocal runner: {e}\n"));
            }
            if matches!(run.outcome, StepOutcome::Failure(_)) {
                frame.failed = true;
            }
            let (outcome, conclusion) = match &run.outcome {
                StepOutcome::Failure(_) => ("failure", "failure"),
                StepOutcome::Skipped => ("skipped", "skipped"),
                _ => ("success", "success"),
            };
            frame.steps_ctx.insert(
                id,
                json!({"outputs": run.outputs, "outcome": outcome, "conclusion": conclusion}),
            );
            out.push(run);
        }
        out
    }

    fn run_step(
        &self,
        step: &Value,
        frame: &mut Frame,
        state: &mut JobState,
        run: &mut StepRun,
    ) -> Result<(), String> {
        check_keys(
            step,
            &[
                "id",
                "name",
                "if",
                "env",
                "run",
                "shell",
                "working-directory",
                "uses",
                "with",
                "timeout-minutes",
            ],
            &format!("step {:?}", run.name),
        )?;
        let scope = self.job_scope(state, frame.inputs.as_ref(), &frame.steps_ctx, frame.failed);
        if let Some(name) = step.get("name") {
            run.name = expr::interpolate(&text_of(name)?, &scope)?;
        }
        let go = match step.get("if") {
            None => !frame.failed,
            Some(cond) => expr::condition(&text_of(cond)?, &scope)?,
        };
        if !go {
            run.outcome = StepOutcome::Skipped;
            return Ok(());
        }
        // The step's env sees the job's env (and, in a composite action, the caller's).
        let mut step_env = frame.inherited_env.clone();
        {
            let mut env_scope_env = state.env.clone();
            env_scope_env.extend(step_env.clone());
            let env_scope = self.scope(
                &env_scope_env,
                &state.matrix,
                &state.needs,
                frame.inputs.as_ref(),
                &frame.steps_ctx,
                frame.failed,
            );
            for (k, v) in obj(step.get("env")) {
                step_env.insert(k.clone(), expr::interpolate(&text_of(&v)?, &env_scope)?);
            }
        }
        match (step.get("run"), step.get("uses")) {
            (Some(script), None) => {
                let shell = step.get("shell").map(text_of).transpose()?;
                match shell.as_deref() {
                    Some("bash") => {}
                    None if frame.inputs.is_none() => {}
                    None => return Err("a composite action's run step needs shell:".into()),
                    Some(other) => {
                        return Err(format!("shell {other:?}: the local runner runs bash only"));
                    }
                }
                let mut env = state.env.clone();
                env.extend(step_env);
                let script_scope = self.scope(
                    &env,
                    &state.matrix,
                    &state.needs,
                    frame.inputs.as_ref(),
                    &frame.steps_ctx,
                    frame.failed,
                );
                let script = expr::interpolate(&text_of(script)?, &script_scope)?;
                let workdir = match step.get("working-directory") {
                    Some(d) => self
                        .workspace
                        .join(expr::interpolate(&text_of(d)?, &script_scope)?),
                    None => self.workspace.clone(),
                };
                self.run_script(&script, &env, &workdir, frame, state, run)
            }
            (None, Some(uses)) => {
                let uses = text_of(uses)?;
                if let Some(rel) = uses.strip_prefix("./") {
                    self.run_composite(rel, step, step_env, frame, state, run)
                } else {
                    // Evaluated as GitHub would before starting the action,
                    // so that a bad expression fails here too.
                    let scope = self.job_scope(
                        state,
                        frame.inputs.as_ref(),
                        &frame.steps_ctx,
                        frame.failed,
                    );
                    for v in obj(step.get("with")).values() {
                        expr::interpolate(&text_of(v)?, &scope)?;
                    }
                    run.outcome = if uses.starts_with("actions/checkout@") {
                        StepOutcome::CheckoutStandIn
                    } else {
                        StepOutcome::RemoteActionNotRun(uses)
                    };
                    Ok(())
                }
            }
            _ => Err("a step needs exactly one of run: and uses:".into()),
        }
    }

    fn run_script(
        &self,
        script: &str,
        env: &BTreeMap<String, String>,
        workdir: &Path,
        frame: &Frame,
        state: &mut JobState,
        run: &mut StepRun,
    ) -> Result<(), String> {
        let files = self
            .temp
            .path()
            .join("files")
            .join(format!("step{}", state.step_counter));
        fs::create_dir_all(&files).map_err(|e| e.to_string())?;
        let file = |name: &str| files.join(name);
        for name in ["output", "env", "path", "summary"] {
            fs::write(file(name), "").map_err(|e| e.to_string())?;
        }
        let script_file = file("script.sh");
        fs::write(&script_file, script).map_err(|e| e.to_string())?;
        let log_path = file("log");
        let log = fs::File::create(&log_path).map_err(|e| e.to_string())?;
        let mut path = state.path_prefix.clone();
        path.push(self.base_path.clone());

        let mut cmd = Command::new("bash");
        cmd.args(["--noprofile", "--norc", "-eo", "pipefail"])
            .arg(&script_file)
            .current_dir(workdir)
            .env_clear()
            .env("HOME", self.temp.path().join("home"))
            .env("LANG", "C.UTF-8")
            .envs(env)
            .env("PATH", path.join(":"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log);
        for (k, v) in self.default_env(&state.job_id) {
            cmd.env(k, v);
        }
        cmd.env("GITHUB_OUTPUT", file("output"))
            .env("GITHUB_ENV", file("env"))
            .env("GITHUB_PATH", file("path"))
            .env("GITHUB_STEP_SUMMARY", file("summary"));
        if let Some(p) = &frame.action_path {
            cmd.env("GITHUB_ACTION_PATH", p);
        }
        let status = cmd
            .status()
            .map_err(|e| format!("cannot start bash in {}: {e}", workdir.display()))?;
        run.log = fs::read_to_string(&log_path).unwrap_or_default();
        run.summary = fs::read_to_string(file("summary")).unwrap_or_default();
        let read = |name: &str| fs::read_to_string(file(name)).unwrap_or_default();
        run.outputs = parse_key_values(&read("output"), "GITHUB_OUTPUT")?
            .into_iter()
            .collect();
        for (k, v) in parse_key_values(&read("env"), "GITHUB_ENV")? {
            state.env.insert(k, v);
        }
        for dir in read("path")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
        {
            state.path_prefix.insert(0, dir.to_string());
        }
        if !status.success() {
            run.outcome = StepOutcome::Failure(format!("the script exited with {status}"));
        }
        Ok(())
    }

    fn run_composite(
        &self,
        rel: &str,
        step: &Value,
        step_env: BTreeMap<String, String>,
        frame: &Frame,
        state: &mut JobState,
        run: &mut StepRun,
    ) -> Result<(), String> {
        let dir = self.workspace.join(rel);
        let file = ["action.yml", "action.yaml"]
            .iter()
            .map(|n| dir.join(n))
            .find(|p| p.is_file())
            .ok_or_else(|| format!("no action.yml in {}", dir.display()))?;
        let text = fs::read_to_string(&file).map_err(|e| e.to_string())?;
        let action: Value = serde_yaml_ng::from_str(&text)
            .map_err(|e| format!("{} is not YAML: {e}", file.display()))?;
        let using = action.pointer("/runs/using").and_then(Value::as_str);
        if using != Some("composite") {
            return Err(format!(
                "{}: runs.using is {using:?}; the local runner runs composite actions only",
                file.display()
            ));
        }
        let caller_scope =
            self.job_scope(state, frame.inputs.as_ref(), &frame.steps_ctx, frame.failed);
        let declared = obj(action.get("inputs"));
        let with = obj(step.get("with"));
        if let Some(unknown) = with.keys().find(|k| !declared.contains_key(*k)) {
            return Err(format!(
                "{rel}: unexpected input {unknown:?} (declared: {:?})",
                declared.keys().collect::<Vec<_>>()
            ));
        }
        let mut inputs = Map::new();
        for (name, spec) in &declared {
            let value = match (with.get(name), spec.get("default")) {
                (Some(v), _) => expr::interpolate(&text_of(v)?, &caller_scope)?,
                (None, Some(d)) => expr::interpolate(&text_of(d)?, &caller_scope)?,
                (None, None) if spec.get("required").and_then(Value::as_bool) == Some(true) => {
                    return Err(format!("{rel}: input {name:?} is required"));
                }
                (None, None) => String::new(),
            };
            inputs.insert(name.clone(), Value::String(value));
        }
        let mut inherited = frame.inherited_env.clone();
        inherited.extend(step_env);
        let mut inner = Frame {
            inputs: Some(Value::Object(inputs)),
            steps_ctx: Map::new(),
            failed: false,
            inherited_env: inherited,
            action_path: Some(dir.clone()),
        };
        let steps = action
            .pointer("/runs/steps")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        run.steps = self.run_steps(&steps, &mut inner, state);
        run.summary = run.steps.iter().map(|s| s.summary.as_str()).collect();
        let scope = self.job_scope(state, inner.inputs.as_ref(), &inner.steps_ctx, inner.failed);
        for (name, spec) in obj(action.get("outputs")) {
            let value = match spec.get("value") {
                Some(v) => expr::interpolate(&text_of(v)?, &scope)?,
                None => String::new(),
            };
            run.outputs.insert(name.clone(), value);
        }
        if inner.failed {
            let failed: Vec<&str> = run
                .steps
                .iter()
                .filter(|s| matches!(s.outcome, StepOutcome::Failure(_)))
                .map(|s| s.name.as_str())
                .collect();
            run.outcome = StepOutcome::Failure(format!("{rel}: step(s) {failed:?} failed"));
        }
        Ok(())
    }

    /// The variables every step gets, as on a GitHub-hosted Linux runner.
    fn default_env(&self, job_id: &str) -> Vec<(String, String)> {
        let e = &self.event;
        let mut v: Vec<(String, String)> = [
            ("CI", "true".to_string()),
            ("GITHUB_ACTIONS", "true".into()),
            ("GITHUB_EVENT_NAME", e.name.clone()),
            ("GITHUB_SHA", e.sha.clone()),
            ("GITHUB_REF", e.git_ref.clone()),
            ("GITHUB_REF_NAME", e.ref_name()),
            ("GITHUB_REPOSITORY", self.repository.clone()),
            ("GITHUB_SERVER_URL", self.server_url.clone()),
            ("GITHUB_RUN_ID", self.run_id.to_string()),
            ("GITHUB_RUN_ATTEMPT", "1".into()),
            ("GITHUB_JOB", job_id.into()),
            ("GITHUB_WORKSPACE", self.workspace.display().to_string()),
            ("RUNNER_TEMP", self.runner_temp().display().to_string()),
            (
                "RUNNER_TOOL_CACHE",
                self.temp.path().join("tool-cache").display().to_string(),
            ),
            ("RUNNER_OS", "Linux".into()),
            ("RUNNER_ARCH", "X64".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        if let (Some(head), Some(base)) = (&e.head_ref, &e.base_ref) {
            v.push(("GITHUB_HEAD_REF".into(), head.clone()));
            v.push(("GITHUB_BASE_REF".into(), base.clone()));
        }
        v
    }

    fn job_scope(
        &self,
        state: &JobState,
        inputs: Option<&Value>,
        steps: &Map<String, Value>,
        failed: bool,
    ) -> Scope {
        self.scope(
            &state.env,
            &state.matrix,
            &state.needs,
            inputs,
            steps,
            failed,
        )
    }

    fn scope(
        &self,
        env: &BTreeMap<String, String>,
        matrix: &Value,
        needs: &Value,
        inputs: Option<&Value>,
        steps: &Map<String, Value>,
        failed: bool,
    ) -> Scope {
        let e = &self.event;
        let mut c = Map::new();
        c.insert(
            "github".into(),
            json!({
                "event_name": e.name,
                "sha": e.sha,
                "ref": e.git_ref,
                "ref_name": e.ref_name(),
                "head_ref": e.head_ref.clone().unwrap_or_default(),
                "base_ref": e.base_ref.clone().unwrap_or_default(),
                "event": e.payload,
                "repository": self.repository,
                "server_url": self.server_url,
                "run_id": self.run_id.to_string(),
                "workspace": self.workspace.display().to_string(),
            }),
        );
        c.insert("env".into(), json!(env));
        c.insert(
            "runner".into(),
            json!({"os": "Linux", "arch": "X64", "temp": self.runner_temp().display().to_string()}),
        );
        c.insert("vars".into(), json!(self.vars));
        c.insert("matrix".into(), matrix.clone());
        c.insert("needs".into(), needs.clone());
        c.insert("steps".into(), Value::Object(steps.clone()));
        match inputs {
            // GitHub gives composite actions no secrets.
            Some(i) => {
                c.insert("inputs".into(), i.clone());
            }
            None => {
                c.insert("secrets".into(), json!(self.secrets));
                c.insert("inputs".into(), json!({}));
            }
        }
        Scope {
            contexts: c,
            failed,
        }
    }
}

/// `k=v` lines and `k<<DELIM` ... `DELIM` blocks, as GitHub reads
/// `GITHUB_OUTPUT` and `GITHUB_ENV`.
pub fn parse_key_values(text: &str, what: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim().is_empty() {
            continue;
        }
        let eq = line.find('=');
        match line.find("<<") {
            Some(h) if eq.is_none_or(|e| h < e) => {
                let (key, delim) = (&line[..h], &line[h + 2..]);
                let mut value = Vec::new();
                loop {
                    match lines.next() {
                        Some(l) if l == delim => break,
                        Some(l) => value.push(l),
                        None => {
                            return Err(format!("{what}: {key}<<{delim} is never closed"));
                        }
                    }
                }
                out.push((key.to_string(), value.join("\n")));
            }
            _ => {
                let e = eq.ok_or_else(|| format!("{what}: {line:?} is not NAME=VALUE"))?;
                out.push((line[..e].to_string(), line[e + 1..].to_string()));
            }
        }
    }
    Ok(out)
}

fn step_name(step: &Value) -> String {
    if let Some(n) = step.get("name").and_then(Value::as_str) {
        return n.into();
    }
    if let Some(u) = step.get("uses").and_then(Value::as_str) {
        return u.into();
    }
    let run = step.get("run").and_then(Value::as_str).unwrap_or("");
    format!("Run {}", run.lines().next().unwrap_or(""))
}

fn obj(v: Option<&Value>) -> Map<String, Value> {
    v.and_then(Value::as_object).cloned().unwrap_or_default()
}

/// A YAML scalar as GitHub sees it in a string field.
fn text_of(v: &Value) -> Result<String, String> {
    expr::to_text(v).map_err(|_| format!("{v} is not a scalar"))
}

fn check_keys(v: &Value, allowed: &[&str], what: &str) -> Result<(), String> {
    let Some(map) = v.as_object() else {
        return Err(format!("{what} is not a mapping"));
    };
    match map.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(format!(
            "{what}: {k:?} is not supported by the local runner (it knows {allowed:?})"
        )),
        None => Ok(()),
    }
}

fn needs_of(job: &Value) -> Vec<String> {
    match job.get("needs") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect(),
        _ => Vec::new(),
    }
}

/// Job ids so that each comes after the jobs it needs (file order otherwise).
fn job_order(jobs: &Map<String, Value>) -> Result<Vec<String>, String> {
    let mut order: Vec<String> = Vec::new();
    while order.len() < jobs.len() {
        let before = order.len();
        for (id, job) in jobs {
            if order.contains(id) {
                continue;
            }
            let needs = needs_of(job);
            if let Some(missing) = needs.iter().find(|n| !jobs.contains_key(*n)) {
                return Err(format!("job {id} needs {missing}, which does not exist"));
            }
            if needs.iter().all(|n| order.contains(n)) {
                order.push(id.clone());
            }
        }
        if order.len() == before {
            return Err("the jobs' needs form a cycle".into());
        }
    }
    Ok(order)
}

/// The legs of `strategy.matrix` (one null leg without a strategy) and
/// whether fail-fast is on (GitHub's default).
fn matrix_legs(strategy: Option<&Value>, scope: &Scope) -> Result<(Vec<Value>, bool), String> {
    let Some(strategy) = strategy else {
        return Ok((vec![Value::Null], true));
    };
    check_keys(
        strategy,
        &["matrix", "fail-fast", "max-parallel"],
        "strategy",
    )?;
    let fail_fast = match strategy.get("fail-fast") {
        None => true,
        Some(v) => boolean(v, scope).map_err(|e| format!("strategy.fail-fast: {e}"))?,
    };
    let matrix = match strategy.get("matrix") {
        None => return Ok((vec![Value::Null], fail_fast)),
        Some(Value::String(s)) => expr::evaluate_value(s, scope)?,
        Some(v) => v.clone(),
    };
    let Value::Object(axes) = matrix else {
        return Err(format!("strategy.matrix is not a mapping: {matrix}"));
    };
    let mut legs = vec![Map::new()];
    for (axis, values) in axes {
        if axis == "include" || axis == "exclude" {
            return Err(format!("matrix {axis}: not supported by the local runner"));
        }
        let values = match values {
            Value::String(s) => expr::evaluate_value(&s, scope)?,
            v => v,
        };
        let Value::Array(values) = values else {
            return Err(format!("matrix {axis} is not a list: {values}"));
        };
        if values.is_empty() {
            return Err(format!(
                "matrix vector {axis:?} does not contain any values"
            ));
        }
        let mut next = Vec::new();
        for leg in &legs {
            for v in &values {
                let mut leg = leg.clone();
                leg.insert(axis.clone(), v.clone());
                next.push(leg);
            }
        }
        legs = next;
    }
    Ok((legs.into_iter().map(Value::Object).collect(), fail_fast))
}

/// A YAML boolean, or an expression giving one (or the text true/false).
fn boolean(v: &Value, scope: &Scope) -> Result<bool, String> {
    let evaluated = match v {
        Value::String(s) => expr::evaluate_value(s, scope)?,
        other => other.clone(),
    };
    match evaluated {
        Value::Bool(b) => Ok(b),
        Value::String(s) if s == "true" || s == "false" => Ok(s == "true"),
        other => Err(format!("{other} is not a boolean")),
    }
}

fn result_name(r: JobResult) -> &'static str {
    match r {
        JobResult::Success => "success",
        JobResult::Failure => "failure",
        JobResult::Skipped => "skipped",
        JobResult::Cancelled => "cancelled",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runner(dir: &Path) -> LocalRunner {
        LocalRunner::new(dir, "lab/recipes", Event::push("main", "a1", "b2"))
    }

    fn run(dir: &Path, yaml: &str) -> RunReport {
        let wf: Value = serde_yaml_ng::from_str(yaml).unwrap();
        runner(dir).run(&wf).unwrap()
    }

    #[test]
    fn local_runner_file_commands_env_and_needs_matrix() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        let report = run(
            dir.path(),
            r#"
on: push
env: {LEVEL: workflow, W: w}
jobs:
  second:
    needs: first
    strategy:
      fail-fast: false
      matrix:
        t: ${{ fromJSON(needs.first.outputs.list) }}
    name: leg ${{ matrix.t.n }}
    env: {LEVEL: job}
    steps:
      - run: test "$LEVEL/$W/${FROM_ENV:-}" = "job/w/" && echo "leg $N" >> "$GITHUB_STEP_SUMMARY"
        env: {N: "${{ matrix.t.n }}"}
      - run: test "$(cat marker)" = here
        working-directory: sub
      - run: mytool
  first:
    outputs:
      list: ${{ steps.s.outputs.list }}
      text: ${{ steps.s.outputs.text }}
    steps:
      - id: s
        run: |
          echo 'list=[{"n":1},{"n":2}]' >> "$GITHUB_OUTPUT"
          printf 'text<<EOF\nline 1\nline 2\nEOF\n' >> "$GITHUB_OUTPUT"
          echo FROM_ENV=set >> "$GITHUB_ENV"
          mkdir -p "$RUNNER_TEMP/bin" && printf '#!/bin/sh\necho tool ran\n' > "$RUNNER_TEMP/bin/mytool"
          chmod +x "$RUNNER_TEMP/bin/mytool" && echo "$RUNNER_TEMP/bin" >> "$GITHUB_PATH"
          echo here > sub/marker
          test "$GITHUB_EVENT_NAME/$GITHUB_SHA/$GITHUB_REF_NAME/$RUNNER_OS" = push/b2/main/Linux
      - run: test "$FROM_ENV" = set && mytool
"#,
        );
        let r = report.render();
        assert_eq!(report.jobs[0].id, "first", "needs order");
        assert_eq!(report.jobs[0].result, JobResult::Success, "{r}");
        assert_eq!(report.jobs[0].outputs["text"], "line 1\nline 2");
        let legs = report.runs_of("second");
        assert_eq!(
            legs.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(),
            ["leg 1", "leg 2"]
        );
        assert_eq!(legs[1].steps[0].summary, "leg 2\n");
        for leg in &legs {
            assert_eq!(leg.steps[0].outcome, StepOutcome::Success, "{r}");
            assert_eq!(leg.steps[1].outcome, StepOutcome::Success, "{r}");
        }
        // GITHUB_ENV and GITHUB_PATH are per job leg, as on GitHub.
        assert!(
            matches!(legs[0].steps[2].outcome, StepOutcome::Failure(_)),
            "{}",
            report.render()
        );
    }

    #[test]
    fn local_runner_failures_conditions_and_fail_fast() {
        let dir = tempfile::tempdir().unwrap();
        let report = run(
            dir.path(),
            r#"
on: push
jobs:
  a:
    strategy:
      fail-fast: false
      matrix: {x: [ok, bad, ok2]}
    steps:
      - run: test "${{ matrix.x }}" != bad
      - run: echo after
      - if: failure()
        run: echo cleanup
  b:
    strategy:
      matrix: {x: [bad, ok]}
    steps:
      - run: test "${{ matrix.x }}" != bad
  c:
    needs: a
    steps:
      - run: echo never
  d:
    needs: a
    if: always() && needs.a.result == 'failure'
    steps:
      - uses: actions/cache@v4
      - uses: actions/checkout@v4
"#,
        );
        assert!(!report.success());
        let a = report.runs_of("a");
        let results: Vec<JobResult> = a.iter().map(|j| j.result).collect();
        assert_eq!(
            results,
            [JobResult::Success, JobResult::Failure, JobResult::Success]
        );
        assert_eq!(a[1].steps[1].outcome, StepOutcome::Skipped);
        assert_eq!(a[1].steps[2].outcome, StepOutcome::Success);
        assert_eq!(a[0].steps[2].outcome, StepOutcome::Skipped);
        let b: Vec<JobResult> = report.runs_of("b").iter().map(|j| j.result).collect();
        assert_eq!(b, [JobResult::Failure, JobResult::Cancelled]);
        assert_eq!(report.runs_of("c")[0].result, JobResult::Skipped);
        let d = report.runs_of("d")[0];
        assert_eq!(d.result, JobResult::Success);
        assert_eq!(
            d.steps[0].outcome,
            StepOutcome::RemoteActionNotRun("actions/cache@v4".into())
        );
        assert_eq!(d.steps[1].outcome, StepOutcome::CheckoutStandIn);
        assert_eq!(report.not_run(), ["actions/cache@v4"]);
    }

    #[test]
    fn local_runner_composite_action_inputs_outputs_and_nesting() {
        let dir = tempfile::tempdir().unwrap();
        let action = dir.path().join(".github/actions/greet");
        fs::create_dir_all(&action).unwrap();
        fs::write(
            action.join("action.yml"),
            r#"
name: greet
description: d
inputs:
  who: {description: w, required: true}
  greeting: {description: g, default: hello}
outputs:
  said:
    description: s
    value: ${{ steps.say.outputs.said || 'nothing' }}
runs:
  using: composite
  steps:
    - id: say
      shell: bash
      env: {WHO: "${{ inputs.who }}", G: "${{ inputs.greeting }}"}
      run: |
        test "$CALLER" = yes
        test -f "$GITHUB_ACTION_PATH/action.yml"
        echo "said=$G $WHO" >> "$GITHUB_OUTPUT"
"#,
        )
        .unwrap();
        let report = run(
            dir.path(),
            r#"
on: push
jobs:
  j:
    steps:
      - id: g
        uses: ./.github/actions/greet
        env: {CALLER: "yes"}
        with: {who: "${{ github.repository }}"}
      - run: test "${{ steps.g.outputs.said }}" = "hello lab/recipes"
      - uses: ./.github/actions/greet
        with: {who: x, typo: y}
      - if: always()
        uses: ./.github/actions/greet
"#,
        );
        let steps = &report.jobs[0].steps;
        assert_eq!(
            steps[0].outcome,
            StepOutcome::Success,
            "{}",
            report.render()
        );
        assert_eq!(steps[0].steps.len(), 1);
        assert_eq!(
            steps[1].outcome,
            StepOutcome::Success,
            "{}",
            report.render()
        );
        let typo = format!("{:?}", steps[2].outcome);
        assert!(typo.contains("unexpected input \\\"typo\\\""), "{typo}");
        let missing = format!("{:?}", steps[3].outcome);
        assert!(missing.contains("\\\"who\\\" is required"), "{missing}");
    }

    #[test]
    fn local_runner_refuses_what_it_does_not_support() {
        let dir = tempfile::tempdir().unwrap();
        let report = run(
            dir.path(),
            r#"
on: push
jobs:
  c:
    container: debian
    steps: [{run: "true"}]
  s:
    steps:
      - {run: "true", shell: pwsh}
      - {run: "true", continue-on-error: true}
      - {if: "always()", run: "echo ${{ contains(github.ref, 'x') }}"}
  m:
    strategy: {matrix: {include: [{a: 1}]}}
    steps: [{run: "true"}]
  e:
    if: env.LEVEL == 'x'
    steps: [{run: "true"}]
  w:
    steps:
      - uses: actions/cache@v4
        with: {key: "${{ hashFiles() }}"}
"#,
        );
        let render = report.render();
        assert!(
            render.contains("\"container\" is not supported"),
            "{render}"
        );
        assert!(render.contains("runs bash only"), "{render}");
        assert!(
            render.contains("\"continue-on-error\" is not supported"),
            "{render}"
        );
        assert!(render.contains("contains(github.ref, 'x')"), "{render}");
        assert!(render.contains("matrix include: not supported"), "{render}");
        assert!(
            render.contains("the env context is not available here"),
            "{render}"
        );
        assert!(
            render.contains("hashFiles() needs at least one pattern"),
            "{render}"
        );
        assert!(!report.success());
    }

    #[test]
    fn file_command_forms() {
        let kv = parse_key_values("a=1\n\nb=x=y\nc<<EOT\nl1\n\nl3\nEOT\nd=\n", "t").unwrap();
        assert_eq!(
            kv,
            [
                ("a".into(), "1".into()),
                ("b".into(), "x=y".into()),
                ("c".into(), "l1\n\nl3".into()),
                ("d".into(), String::new()),
            ]
        );
        assert!(parse_key_values("c<<EOT\nnever closed\n", "t").is_err());
        assert!(parse_key_values("no equals sign\n", "t").is_err());
    }
}
