//! The GitHub workflow that `sreg ci init --provider github` writes, run for
//! real on this machine by a local stand-in for GitHub's runner
//! (`sreg_tests::gha`, since GitHub cannot run here), against a real
//! sreg-server: the setup-sreg action installs sreg from the registry, the
//! recipes job lists the changed recipes, the build job builds, tests and
//! pushes them with the build-push action. The one declared substitution:
//! `SREG_BACKEND` is `native` instead of `apptainer`, which cannot run here.

use std::path::Path;
use std::process::Command;

use serde_json::json;
use sreg_api::Reference;
use sreg_api::client::Client;
use sreg_tests::gha::{Event, JobResult, LocalRunner, RunReport, StepOutcome};
use sreg_tests::git_server::WorkRepo;
use sreg_tests::{Server, bin};

const WORKFLOW: &str = ".github/workflows/sreg.yml";
const REPOSITORY: &str = "lab/recipes";

/// A recipe the native backend builds in well under a second: busybox as
/// the image's shell, one file, and a %test that checks the file.
fn recipe(file: &str) -> String {
    format!(
        "Bootstrap: scratch\n\n%files\n    /bin/busybox /bin/sh\n    {file} /opt/{file}\n\n\
         %test\n    test -f /opt/{file}\n    echo \"{file} is in the image\"\n"
    )
}

struct Fixture {
    _dir: tempfile::TempDir,
    server: Server,
    token: String,
    repo: WorkRepo,
    first: String,
    second: String,
}

impl Fixture {
    /// A registry with a user `ci`, and a recipe repository with two
    /// commits: two recipes, then a change to one of them; the workflow
    /// rendered by the real `sreg ci init` is committed with the first.
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(dir.path(), &["--data-dir", "data"]);
        wait_for_client_downloads(&server);
        let token = server.user_with_token("ci", false);

        let repo = WorkRepo::new("");
        repo.write("tools/Singularity.1.0", &recipe("tool.txt"));
        repo.write("tools/tool.txt", "tool 1.0\n");
        repo.write("base/Singularity", &recipe("base.txt"));
        repo.write("base/base.txt", "base\n");
        let init = Command::new(bin("sreg"))
            .args([
                "ci",
                "init",
                "--provider",
                "github",
                "--registry",
                &server.url,
            ])
            .args(["--collection", "lab", "--dir"])
            .arg(repo.path())
            .output()
            .unwrap();
        assert!(init.status.success(), "sreg ci init: {init:?}");
        for f in [
            WORKFLOW,
            ".github/actions/setup-sreg/action.yml",
            ".github/actions/build-push/action.yml",
        ] {
            assert!(repo.path().join(f).is_file(), "sreg ci init wrote no {f}");
        }
        let first = repo.commit("two recipes and the sreg workflow");
        repo.write("tools/tool.txt", "tool 1.0, fixed\n");
        let second = repo.commit("fix the tool");
        Self {
            _dir: dir,
            server,
            token,
            repo,
            first,
            second,
        }
    }

    fn runner(&self, event: Event) -> LocalRunner {
        let mut r = LocalRunner::new(self.repo.path(), REPOSITORY, event);
        r.secrets.insert("SREG_TOKEN".into(), self.token.clone());
        r.env_overrides
            .insert("SREG_BACKEND".into(), "native".into());
        r
    }

    fn client(&self) -> Client {
        Client::new(&self.server.url, Some(self.token.clone())).unwrap()
    }

    /// Every tag of every container the user can see, with its image hash.
    fn registry_state(&self) -> Vec<(String, String, String)> {
        let client = self.client();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let mut state = Vec::new();
        for c in rt.block_on(client.collections()).unwrap() {
            for name in &c.containers {
                let path = format!("{}/{}/{name}", c.entity, c.name);
                let container = rt.block_on(client.container(&path)).unwrap();
                for tag in container.tags {
                    state.push((path.clone(), tag.name, tag.hash));
                }
            }
        }
        state.sort();
        state
    }
}

/// The registry serves the sreg client at /downloads/sreg/... (setup-sreg
/// installs it from there); until that route exists, fail saying so
/// rather than installing sreg some other way.
fn wait_for_client_downloads(server: &Server) {
    let url = format!("{}/downloads/sreg/linux-amd64.sha256", server.url);
    let resp = reqwest::blocking::get(&url).unwrap();
    assert!(
        resp.status().is_success(),
        "GET {url} answered {}: the registry does not serve the sreg client yet \
         (registry-server's /downloads route), which setup-sreg installs from",
        resp.status()
    );
}

/// Files under `dir` (up to 8 MB each; the sreg binary is skipped) whose
/// bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                todo.push(entry.path());
            } else if meta.is_file()
                && meta.len() <= 8 << 20
                && std::fs::read(entry.path())
                    .unwrap()
                    .windows(needle.len())
                    .any(|w| w == needle)
            {
                found.push(entry.path());
            }
        }
    }
    found
}

fn assert_ok(report: &RunReport) {
    assert!(
        report.success(),
        "the workflow failed:\n{}",
        report.render()
    );
}

fn step<'a>(report: &'a RunReport, job: usize, name: &str) -> &'a sreg_tests::gha::StepRun {
    report.jobs[job]
        .steps
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no step {name:?} in job {job}:\n{}", report.render()))
}

#[test]
fn local_runner_push_builds_the_changed_recipe_and_pushes_it_with_the_ci_metadata() {
    let fx = Fixture::new();
    let runner = fx.runner(Event::push("main", &fx.first, &fx.second));
    let report = runner.run_workflow(Path::new(WORKFLOW)).unwrap();
    assert_ok(&report);
    assert_eq!(
        report.substitutions,
        vec![r#"env.SREG_BACKEND: "apptainer" -> "native""#.to_string()]
    );

    // Only the changed recipe is listed, and built.
    let recipes = report.runs_of("recipes");
    assert_eq!(recipes.len(), 1);
    let matrix: serde_json::Value = serde_json::from_str(&recipes[0].outputs["matrix"]).unwrap();
    assert_eq!(
        matrix,
        json!([{"recipe": "tools/Singularity.1.0", "image": "lab/tools:1.0"}])
    );
    assert_eq!(recipes[0].outputs["any"], "true");
    let builds = report.runs_of("build");
    assert_eq!(builds.len(), 1, "{}", report.render());
    let build = builds[0];
    assert_eq!(build.result, JobResult::Success);
    assert_eq!(build.name, "lab/tools:1.0");
    let build_index = report.jobs.iter().position(|j| j.id == "build").unwrap();

    // What cannot run here did not: Apptainer's install (its `if:` is false
    // with the native backend) and the cache action.
    assert_eq!(
        step(&report, build_index, "Install Apptainer").outcome,
        StepOutcome::Skipped
    );
    assert_eq!(
        step(&report, build_index, "Cache Apptainer's downloads").outcome,
        StepOutcome::Skipped
    );
    // setup-sreg's cache (actions/cache) cannot run here: recorded, once per
    // setup-sreg, and setup-sreg then downloads sreg from the registry.
    assert_eq!(
        report.not_run(),
        vec![
            "actions/cache@v4".to_string(),
            "actions/cache@v4".to_string()
        ]
    );
    // The sreg that ran is the one setup-sreg installed from the registry.
    let setup = step(&report, build_index, "./.github/actions/setup-sreg");
    assert!(
        setup.outputs["path"].starts_with(&runner.runner_temp().display().to_string()),
        "{:?}",
        setup.outputs
    );
    let checkouts = report
        .all_steps()
        .iter()
        .filter(|s| s.outcome == StepOutcome::CheckoutStandIn)
        .count();
    assert_eq!(checkouts, 2);

    // The image is in the registry, with the CI run's metadata.
    let image = step(&report, build_index, "Build, test and push");
    assert_eq!(image.outputs["pushed"], "true");
    assert_eq!(image.outputs["image"], "ci/lab/tools:1.0");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let shown = rt
        .block_on(
            fx.client()
                .image(&Reference::parse("lab/tools:1.0").unwrap(), None),
        )
        .unwrap();
    assert_eq!(shown.sha256, image.outputs["sha256"]);
    assert_eq!(shown.size.to_string(), image.outputs["size"]);
    let meta = shown.build.expect("build metadata").metadata;
    assert_eq!(meta.ci_provider.as_deref(), Some("github"));
    assert_eq!(
        meta.ci_url,
        Some(format!(
            "https://github.com/{REPOSITORY}/actions/runs/{}",
            runner.run_id
        ))
    );
    assert_eq!(meta.commit.as_deref(), Some(fx.second.as_str()));
    assert_eq!(meta.branch.as_deref(), Some("main"));
    assert_eq!(meta.backend.as_deref(), Some("native"));
    assert_eq!(meta.recipe_path.as_deref(), Some("tools/Singularity.1.0"));
    // base/ did not change: not built, not pushed.
    let state = fx.registry_state();
    assert_eq!(state.len(), 1, "{state:?}");

    // The step summary names the image; the token is nowhere in the output.
    let summary = step(&report, build_index, "Summary");
    assert!(
        summary.summary.contains("ci/lab/tools:1.0")
            && summary.summary.contains(&image.outputs["sha256"]),
        "{}",
        summary.summary
    );
    let logs = report.all_logs();
    assert!(
        logs.contains("tool.txt is in the image"),
        "%test ran:\n{logs}"
    );
    assert!(
        !logs.contains(&fx.token),
        "the token leaked into a step's output"
    );
    for s in report.all_steps() {
        assert!(!s.summary.contains(&fx.token));
        assert!(s.outputs.values().all(|v| !v.contains(&fx.token)));
    }
    // Nor in any file the run left: the scripts as run, the build record and
    // log beside the image, the workspace.
    for dir in [runner.runner_temp(), fx.repo.path().to_path_buf()] {
        let found = files_containing(&dir, fx.token.as_bytes());
        assert!(found.is_empty(), "the token is in {found:?}");
    }
}

#[test]
fn local_runner_pull_request_builds_but_pushes_nothing() {
    let fx = Fixture::new();
    let pushed = fx.runner(Event::push("main", &fx.first, &fx.second));
    assert_ok(&pushed.run_workflow(Path::new(WORKFLOW)).unwrap());
    let before = fx.registry_state();
    assert_eq!(before.len(), 1, "{before:?}");

    fx.repo.git(&["checkout", "-q", "-b", "fix-tool"]);
    fx.repo.write("tools/tool.txt", "tool 1.0, fixed again\n");
    let head = fx.repo.commit("fix the tool again");
    let event = Event::pull_request(7, "main", &fx.second, "fix-tool", &head);
    let runner = fx.runner(event);
    let report = runner.run_workflow(Path::new(WORKFLOW)).unwrap();
    assert_ok(&report);
    let build_index = report.jobs.iter().position(|j| j.id == "build").unwrap();
    let image = step(&report, build_index, "Build, test and push");
    assert_eq!(image.outputs["pushed"], "false");
    assert_eq!(image.outputs["image"], "lab/tools:1.0");
    let sif = Path::new(&image.outputs["sif"]);
    assert!(sif.is_file(), "built {sif:?}");
    assert!(image.steps[0].log.contains("tool.txt is in the image"));
    let push = image.steps.iter().find(|s| s.id == "push").unwrap();
    assert_eq!(push.outcome, StepOutcome::Skipped);
    assert_eq!(fx.registry_state(), before);
}

#[test]
fn local_runner_failing_test_fails_its_leg_and_pushes_nothing_while_the_other_leg_pushes() {
    let fx = Fixture::new();
    fx.repo.write(
        "tools/Singularity.1.0",
        &recipe("tool.txt").replace(
            "echo \"tool.txt is in the image\"",
            "test -f /opt/missing.txt",
        ),
    );
    fx.repo.write("base/base.txt", "base, changed\n");
    let third = fx.repo.commit("a %test that fails, and a base that builds");
    let runner = fx.runner(Event::push("main", &fx.second, &third));
    let report = runner.run_workflow(Path::new(WORKFLOW)).unwrap();
    assert!(!report.success(), "{}", report.render());

    let legs = report.runs_of("build");
    assert_eq!(legs.len(), 2, "{}", report.render());
    let (failed, passed): (Vec<&&sreg_tests::gha::JobRun>, Vec<_>) =
        legs.iter().partition(|j| j.result == JobResult::Failure);
    assert_eq!(failed.len(), 1, "{}", report.render());
    assert_eq!(failed[0].name, "lab/tools:1.0");
    assert_eq!(passed[0].name, "lab/base:latest");
    assert_eq!(passed[0].result, JobResult::Success);

    let leg = report
        .jobs
        .iter()
        .position(|j| j.id == "build" && j.name == "lab/tools:1.0")
        .unwrap();
    let image = step(&report, leg, "Build, test and push");
    assert!(matches!(image.outcome, StepOutcome::Failure(_)));
    assert!(
        image.steps[0].log.contains("%test"),
        "{}",
        image.steps[0].log
    );
    assert_eq!(image.outputs["pushed"], "false");
    assert_eq!(
        image.steps.iter().find(|s| s.id == "push").unwrap().outcome,
        StepOutcome::Skipped
    );
    // The summary step (default if: success()) did not run.
    assert_eq!(step(&report, leg, "Summary").outcome, StepOutcome::Skipped);

    let state = fx.registry_state();
    assert_eq!(state.len(), 1, "{state:?}");
    assert_eq!(state[0].0, "ci/lab/base");
}

#[test]
fn local_runner_build_push_action_alone_without_push_reports_hash_and_size() {
    let fx = Fixture::new();
    let out = tempfile::tempdir().unwrap();
    let sif = out.path().join("base.sif");
    let wf = json!({
        "on": "workflow_dispatch",
        "jobs": {"one": {"runs-on": "ubuntu-latest", "steps": [
            {"uses": "./.github/actions/setup-sreg", "with": {"registry": fx.server.url}},
            {"id": "bp", "uses": "./.github/actions/build-push", "with": {
                "recipe": "base/Singularity",
                "image": "lab/base:v1",
                "backend": "native",
                "push": "false",
                "output": sif.display().to_string(),
            }},
        ]}},
    });
    let event = Event::push("main", &fx.first, &fx.second);
    let runner = LocalRunner::new(fx.repo.path(), REPOSITORY, event);
    let report = runner.run(&wf).unwrap();
    assert_ok(&report);
    let bp = &report.jobs[0].steps[1];
    let bytes = std::fs::read(&sif).unwrap();
    let digest = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&bytes))
    };
    assert_eq!(bp.outputs["sha256"], digest);
    assert_eq!(bp.outputs["size"], bytes.len().to_string());
    assert_eq!(bp.outputs["sif"], sif.display().to_string());
    assert_eq!(bp.outputs["image"], "lab/base:v1");
    assert_eq!(bp.outputs["pushed"], "false");
    assert!(out.path().join("base.build.json").is_file());
    assert!(fx.registry_state().is_empty());

    // Pushing without a token stops with what to do, before any upload.
    let mut wf = wf;
    wf["jobs"]["one"]["steps"][1]["with"]["push"] = json!("true");
    wf["jobs"]["one"]["steps"][1]["with"]["registry"] = json!(fx.server.url);
    let report = runner.run(&wf).unwrap();
    assert!(!report.success());
    let bp = &report.jobs[0].steps[1];
    let push = bp.steps.iter().find(|s| s.id == "push").unwrap();
    assert!(matches!(push.outcome, StepOutcome::Failure(_)));
    assert!(
        push.log.contains("set the secret SREG_TOKEN"),
        "{}",
        push.log
    );
    assert!(fx.registry_state().is_empty());
}
