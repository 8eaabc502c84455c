//! Build triggers end to end: a real sreg-server, a real `git daemon`
//! serving the recipe repository, signed webhooks of GitHub, GitLab and
//! Gitea (and badly signed ones, refused), polling without a webhook, a
//! restart with a scan pending, and commit statuses sent to a local
//! stand-in for the forge's API (the forges themselves are out of reach).

use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use reqwest::blocking::Client;
use serde_json::{Value, json};
use sha2::Sha256;
use sreg_tests::Server;
use sreg_tests::capture::{CaptureServer, Reply};
use sreg_tests::git_server::{GitServer, WorkRepo};

const SECRET: &str = "a-webhook-secret-of-some-length";
const ZERO: &str = "0000000000000000000000000000000000000000";

fn recipe(n: u32) -> String {
    format!("Bootstrap: scratch\n\n%labels\n    version {n}\n")
}

fn sign(body: &[u8], secret: &str) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// A registry with a user, a git daemon with a recipe repository of two
/// recipes pushed, and a build project of it.
struct Setup {
    server: Server,
    git: GitServer,
    repo_url: String,
    work: WorkRepo,
    token: String,
    project: Value,
    http: Client,
    _cwd: tempfile::TempDir,
}

impl Setup {
    fn new(extra: Value) -> Self {
        let git = GitServer::start();
        let repo_url = git.create("recipes");
        let work = WorkRepo::new(&repo_url);
        work.write("Singularity", &recipe(1));
        work.write("tools/Singularity.v1", &recipe(1));
        work.write("README.md", "recipes\n");
        work.commit("two recipes");
        work.push("main");
        let cwd = tempfile::tempdir().unwrap();
        let server = Server::start(cwd.path(), &[]);
        let token = server.user_with_token("alice", false);
        let mut setup = Self {
            server,
            git,
            repo_url,
            work,
            token,
            project: Value::Null,
            http: Client::new(),
            _cwd: cwd,
        };
        setup.project = setup.create_project("recipes", extra);
        setup
    }

    fn create_project(&self, name: &str, extra: Value) -> Value {
        let mut body = json!({
            "name": name,
            "repository": self.repo_url,
            "branch": "main",
            "collection": "alice/images",
            "webhook_secret": SECRET,
        });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = self
            .http
            .post(format!("{}/api/v1/projects", self.server.url))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .unwrap();
        let status = r.status().as_u16();
        let created: Value = r.json().unwrap();
        assert_eq!(status, 201, "create project: {created}");
        created["project"].clone()
    }

    fn project_id(&self) -> i64 {
        self.project["id"].as_i64().unwrap()
    }

    /// Sends a webhook; returns the status and the JSON answer.
    fn hook(
        &self,
        forge: &str,
        headers: &[(&str, String)],
        body: &[u8],
        form: bool,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .post(format!("{}/api/v1/hooks/{forge}", self.server.url))
            .header(
                "content-type",
                if form {
                    "application/x-www-form-urlencoded"
                } else {
                    "application/json"
                },
            )
            .body(body.to_vec());
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let r = req.send().unwrap();
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    fn github_payload(&self, before: &str, after: &str, git_ref: &str) -> Vec<u8> {
        json!({
            "ref": git_ref,
            "before": before,
            "after": after,
            "repository": {
                "full_name": "alice/recipes",
                "clone_url": self.repo_url,
                "html_url": "https://forge.invalid/alice/recipes",
            },
        })
        .to_string()
        .into_bytes()
    }

    /// A signed GitHub push webhook.
    fn github_push(&self, delivery: &str, before: &str, after: &str) -> (u16, Value) {
        let body = self.github_payload(before, after, "refs/heads/main");
        self.hook(
            "github",
            &[
                ("x-github-event", "push".into()),
                ("x-github-delivery", delivery.into()),
                (
                    "x-hub-signature-256",
                    format!("sha256={}", sign(&body, SECRET)),
                ),
            ],
            &body,
            false,
        )
    }

    fn builds(&self) -> Vec<Value> {
        self.builds_of(self.project_id())
    }

    fn builds_of(&self, project: i64) -> Vec<Value> {
        let r = self
            .http
            .get(format!(
                "{}/api/v1/builds?project={project}&limit=500",
                self.server.url,
            ))
            .bearer_auth(&self.token)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let v: Value = r.json().unwrap();
        v.as_array()
            .cloned()
            .unwrap_or_else(|| panic!("builds: {v}"))
    }

    /// Waits until `n` jobs exist (generous bound), then returns them.
    fn wait_for_builds(&self, n: usize) -> Vec<Value> {
        self.wait_for_builds_of(self.project_id(), n)
    }

    fn wait_for_builds_of(&self, project: i64, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let b = self.builds_of(project);
            if b.len() >= n {
                return b;
            }
            assert!(
                Instant::now() < deadline,
                "{n} jobs expected, {} after 30 s: {b:?}\nserver log: {:?}",
                b.len(),
                self.server.log_lines()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// (reference, state, commit) of each job, sorted.
fn summary(builds: &[Value]) -> Vec<(String, String, String)> {
    let mut s: Vec<_> = builds
        .iter()
        .map(|b| {
            (
                b["reference"].as_str().unwrap().to_owned(),
                b["state"].as_str().unwrap().to_owned(),
                b["commit"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    s.sort();
    s
}

#[test]
fn github_push_webhook_queues_changed_recipes_and_refuses_bad_signatures() {
    let s = Setup::new(json!({}));
    let c1 = s.work.head();
    let body = s.github_payload(ZERO, &c1, "refs/heads/main");

    // Wrongly signed, signed with another secret, unsigned: refused in the
    // API's error shape, and nothing queued.
    for sig in [
        Some(format!("sha256={}", sign(&body, "not-the-secret"))),
        Some(format!("sha256={}", sign(b"another body", SECRET))),
        None,
    ] {
        let mut h = vec![
            ("x-github-event", "push".to_string()),
            ("x-github-delivery", "bad-1".to_string()),
        ];
        if let Some(sig) = sig {
            h.push(("x-hub-signature-256", sig));
        }
        let (status, answer) = s.hook("github", &h, &body, false);
        assert_eq!(status, 401, "{answer}");
        assert_eq!(answer["error"]["code"], 401, "{answer}");
    }

    // A ping, signed, is answered.
    let ping = json!({"zen": "Keep it simple.", "repository": {"clone_url": s.repo_url}})
        .to_string()
        .into_bytes();
    let (status, answer) = s.hook(
        "github",
        &[
            ("x-github-event", "ping".into()),
            ("x-github-delivery", "ping-1".into()),
            (
                "x-hub-signature-256",
                format!("sha256={}", sign(&ping, SECRET)),
            ),
        ],
        &ping,
        false,
    );
    assert_eq!(status, 200, "{answer}");
    assert!(answer["message"].as_str().unwrap().contains("pong"));

    std::thread::sleep(Duration::from_millis(1500));
    assert!(s.builds().is_empty(), "refused hooks queued nothing");

    // The first push: every recipe is queued, at the pushed commit.
    let (status, answer) = s.github_push("delivery-1", ZERO, &c1);
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["projects"], json!(["recipes"]));
    let builds = s.wait_for_builds(2);
    assert_eq!(
        summary(&builds),
        vec![
            (
                "alice/images/recipes:latest".into(),
                "queued".into(),
                c1.clone()
            ),
            ("alice/images/tools:v1".into(), "queued".into(), c1.clone()),
        ]
    );
    assert!(builds.iter().all(|b| b["branch"] == "main"));

    // The same delivery again: answered, nothing queued twice.
    let (status, answer) = s.github_push("delivery-1", ZERO, &c1);
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("already received")
    );
    // A tag push and a push to another branch are ignored.
    let tag = s.github_payload(ZERO, &c1, "refs/tags/v1");
    let (status, answer) = s.hook(
        "github",
        &[
            ("x-github-event", "push".into()),
            ("x-github-delivery", "tag-1".into()),
            (
                "x-hub-signature-256",
                format!("sha256={}", sign(&tag, SECRET)),
            ),
        ],
        &tag,
        false,
    );
    assert_eq!(status, 202);
    assert!(
        answer["message"].as_str().unwrap().contains("not a branch"),
        "{answer}"
    );
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(s.builds().len(), 2, "nothing queued twice");

    // A second commit changes one recipe: one new job, and the queued job
    // of that recipe at the older commit is superseded. This one comes
    // form-encoded, signed over the form body.
    s.work.write("tools/Singularity.v1", &recipe(2));
    let c2 = s.work.commit("tools v2");
    s.work.push("main");
    let payload = String::from_utf8(s.github_payload(&c1, &c2, "refs/heads/main")).unwrap();
    let form: String = url_encode_form(&payload);
    let (status, answer) = s.hook(
        "github",
        &[
            ("x-github-event", "push".into()),
            ("x-github-delivery", "delivery-2".into()),
            (
                "x-hub-signature-256",
                format!("sha256={}", sign(form.as_bytes(), SECRET)),
            ),
        ],
        form.as_bytes(),
        true,
    );
    assert_eq!(status, 202, "{answer}");
    let builds = s.wait_for_builds(3);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut builds = builds;
    while summary(&builds).iter().all(|(_, st, _)| st != "superseded") {
        assert!(Instant::now() < deadline, "{builds:?}");
        std::thread::sleep(Duration::from_millis(100));
        builds = s.builds();
    }
    assert_eq!(
        summary(&builds),
        vec![
            (
                "alice/images/recipes:latest".into(),
                "queued".into(),
                c1.clone()
            ),
            ("alice/images/tools:v1".into(), "queued".into(), c2.clone()),
            (
                "alice/images/tools:v1".into(),
                "superseded".into(),
                c1.clone()
            ),
        ]
    );
}

fn url_encode_form(payload: &str) -> String {
    let mut out = String::from("payload=");
    for b in payload.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.*".contains(&b) {
            out.push(b as char);
        } else if b == b' ' {
            out.push('+');
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[test]
fn gitlab_push_webhook_with_its_token_queues_recipes() {
    let s = Setup::new(json!({}));
    let c1 = s.work.head();
    let body = json!({
        "object_kind": "push",
        "ref": "refs/heads/main",
        "before": ZERO,
        "after": c1,
        "checkout_sha": c1,
        "project": {"path_with_namespace": "alice/recipes", "git_http_url": s.repo_url},
    })
    .to_string()
    .into_bytes();
    let headers = |token: &str| {
        vec![
            ("x-gitlab-event", "Push Hook".to_string()),
            ("x-gitlab-event-uuid", "gl-1".to_string()),
            ("x-gitlab-token", token.to_string()),
        ]
    };
    let (status, answer) = s.hook("gitlab", &headers("wrong-token"), &body, false);
    assert_eq!(status, 401, "{answer}");
    let (status, answer) = s.hook("gitlab", &headers(SECRET), &body, false);
    assert_eq!(status, 202, "{answer}");
    let builds = s.wait_for_builds(2);
    assert_eq!(summary(&builds).len(), 2);
    assert!(builds.iter().all(|b| b["commit"] == c1.as_str()));
    let (status, _) = s.hook("gitlab", &headers(SECRET), &body, false);
    assert_eq!(status, 200, "the same event UUID is one delivery");
}

#[test]
fn gitea_push_webhook_with_its_signature_queues_recipes() {
    let s = Setup::new(json!({}));
    let c1 = s.work.head();
    let body = s.github_payload(ZERO, &c1, "refs/heads/main");
    let headers = |sig: String| {
        vec![
            ("x-gitea-event", "push".to_string()),
            ("x-gitea-delivery", "gt-1".to_string()),
            ("x-gitea-signature", sig),
        ]
    };
    let (status, answer) = s.hook("gitea", &headers(sign(&body, "wrong")), &body, false);
    assert_eq!(status, 401, "{answer}");
    // GitHub's prefixed form is not Gitea's.
    let (status, _) = s.hook(
        "gitea",
        &headers(format!("sha256={}", sign(&body, SECRET))),
        &body,
        false,
    );
    assert_eq!(status, 401);
    // Not a Gitea delivery at all, and one over the 25 MB cap: refused
    // clearly, in the API's error shape.
    let (status, answer) = s.hook("gitea", &[], &body, false);
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("gitea")
    );
    let huge = vec![b' '; 26 << 20];
    let (status, answer) = s.hook("gitea", &headers(sign(&huge, SECRET)), &huge, false);
    assert_eq!(status, 413, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("25 MB")
    );
    let (status, answer) = s.hook("gitea", &headers(sign(&body, SECRET)), &body, false);
    assert_eq!(status, 202, "{answer}");
    let builds = s.wait_for_builds(2);
    assert!(builds.iter().all(|b| b["commit"] == c1.as_str()));
}

#[test]
fn polling_picks_up_pushes_without_a_webhook() {
    let s = Setup::new(json!({"poll_interval_seconds": 1}));
    let c1 = s.work.head();
    let builds = s.wait_for_builds(2);
    assert!(
        builds.iter().all(|b| b["commit"] == c1.as_str()),
        "{builds:?}"
    );
    s.work.write("tools/Singularity.v1", &recipe(3));
    let c2 = s.work.commit("tools v3");
    s.work.push("main");
    let builds = s.wait_for_builds(3);
    let new: Vec<_> = builds
        .iter()
        .filter(|b| b["commit"] == c2.as_str())
        .collect();
    assert_eq!(new.len(), 1, "{builds:?}");
    assert_eq!(new[0]["reference"], "alice/images/tools:v1");
}

/// A TCP gate in front of the git daemon: connections made while it is
/// closed are held open and never answered (a repository that hangs);
/// once opened, connections are passed through to the daemon.
struct Gate {
    port: u16,
    open: Arc<AtomicBool>,
}

impl Gate {
    fn start(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(AtomicBool::new(false));
        let flag = open.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                if !flag.load(Ordering::SeqCst) {
                    held.push(conn);
                    continue;
                }
                let Ok(up) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                for (mut from, mut to) in [
                    (conn.try_clone().unwrap(), up.try_clone().unwrap()),
                    (up, conn),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                }
            }
        });
        Self { port, open }
    }
}

#[test]
fn a_restart_with_a_scan_pending_still_queues_the_jobs() {
    let s = Setup::new(json!({}));
    let c1 = s.work.head();
    // A project whose repository is reached through the gate: its scan
    // hangs in the fetch while the registry is stopped.
    let gate = Gate::start(s.git.port);
    let gated_url = format!("git://127.0.0.1:{}/recipes.git", gate.port);
    let gated = s.create_project("gated", json!({"repository": gated_url}));
    let gated_id = gated["id"].as_i64().unwrap();
    let body = json!({
        "ref": "refs/heads/main",
        "before": ZERO,
        "after": c1,
        "repository": {"clone_url": gated_url},
    })
    .to_string()
    .into_bytes();
    let headers = vec![
        ("x-github-event", "push".to_string()),
        ("x-github-delivery", "restart-1".to_string()),
        (
            "x-hub-signature-256",
            format!("sha256={}", sign(&body, SECRET)),
        ),
    ];
    let (status, answer) = s.hook("github", &headers, &body, false);
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["projects"], json!(["gated"]));
    // A repository that hangs holds up only its own project's scans.
    assert_eq!(s.github_push("direct-1", ZERO, &c1).0, 202);
    assert_eq!(s.wait_for_builds(2).len(), 2);
    assert!(s.builds_of(gated_id).is_empty());

    // The repository comes back while the registry restarts.
    gate.open.store(true, Ordering::SeqCst);
    let Setup {
        server,
        git,
        repo_url,
        work,
        token,
        project,
        http,
        _cwd,
    } = s;
    let s = Setup {
        server: server.restart(),
        git,
        repo_url,
        work,
        token,
        project,
        http,
        _cwd,
    };
    let builds = s.wait_for_builds_of(gated_id, 2);
    assert!(
        builds.iter().all(|b| b["commit"] == c1.as_str()),
        "{builds:?}"
    );
    // The delivery is remembered across the restart too.
    let (status, _) = s.hook("github", &headers, &body, false);
    assert_eq!(status, 200);
}

/// A stand-in for a forge's status API: records requests, answers as
/// GitHub does (a status object).
fn stand_in_forge() -> CaptureServer {
    CaptureServer::start(|req| {
        let mut status = req.json();
        status["id"] = json!(1);
        Reply::json(201, &status)
    })
}

/// Waits until the stand-in has recorded requests satisfying `done`.
fn wait_for_statuses(
    forge: &CaptureServer,
    done: impl Fn(&[sreg_tests::capture::Captured]) -> bool,
) -> Vec<sreg_tests::capture::Captured> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reqs = forge.requests();
        if done(&reqs) {
            return reqs;
        }
        assert!(
            Instant::now() < deadline,
            "statuses: {:?}",
            reqs.iter()
                .map(|r| (r.line(), String::from_utf8_lossy(&r.body).into_owned()))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn github_commit_statuses_reach_a_stand_in_forge_api() {
    let forge = stand_in_forge();
    let s = Setup::new(json!({
        "forge": "github",
        "forge_api_url": forge.url,
        "forge_repository": "alice/recipes",
        "forge_token": "ghp_test_token_123",
    }));
    let c1 = s.work.head();
    assert_eq!(s.github_push("st-1", ZERO, &c1).0, 202);
    let builds = s.wait_for_builds(2);
    let reqs = wait_for_statuses(&forge, |r| r.len() >= 2);
    let path = format!("/repos/alice/recipes/statuses/{c1}");
    let mut contexts = Vec::new();
    for r in &reqs {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path(), path);
        assert!(
            r.header("authorization")
                .is_some_and(|a| a.ends_with("ghp_test_token_123")),
            "{:?}",
            r.headers
        );
        let body = r.json();
        assert_eq!(body["state"], "pending");
        assert!(
            body["target_url"]
                .as_str()
                .unwrap()
                .contains("/api/v1/builds/")
        );
        contexts.push(body["context"].as_str().unwrap().to_owned());
    }
    contexts.sort();
    assert_eq!(contexts, ["sreg/recipes:latest", "sreg/tools:v1"]);

    // Cancelling a queued job reports an error status for it.
    let tools = builds
        .iter()
        .find(|b| b["reference"] == "alice/images/tools:v1")
        .unwrap();
    let r = s
        .http
        .post(format!(
            "{}/api/v1/builds/{}/cancel",
            s.server.url, tools["id"]
        ))
        .bearer_auth(&s.token)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let reqs = wait_for_statuses(&forge, |r| r.len() >= 3);
    let last = reqs[2].json();
    assert_eq!(last["state"], "error");
    assert_eq!(last["context"], "sreg/tools:v1");
    assert!(
        last["target_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/api/v1/builds/{}", tools["id"])),
        "{last}"
    );
}

#[test]
fn gitlab_and_gitea_commit_statuses_reach_a_stand_in_forge_api() {
    let gitlab = stand_in_forge();
    let s = Setup::new(json!({
        "forge": "gitlab",
        "forge_api_url": format!("{}/api/v4", gitlab.url),
        "forge_repository": "alice/sub/recipes",
        "forge_token": "glpat-test-token",
    }));
    let gitea = stand_in_forge();
    // A second project of the same repository, reporting to Gitea.
    s.create_project(
        "recipes-gitea",
        json!({
            "forge": "gitea",
            "forge_api_url": format!("{}/api/v1", gitea.url),
            "forge_repository": "alice/recipes",
            "forge_token": "gitea-test-token",
        }),
    );
    let c1 = s.work.head();
    let (status, answer) = s.github_push("st-2", ZERO, &c1);
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["projects"].as_array().unwrap().len(), 2, "{answer}");

    let reqs = wait_for_statuses(&gitlab, |r| r.len() >= 2);
    for r in &reqs {
        assert_eq!(
            r.path(),
            format!("/api/v4/projects/alice%2Fsub%2Frecipes/statuses/{c1}")
        );
        assert_eq!(r.header("private-token"), Some("glpat-test-token"));
        let body = r.json();
        assert_eq!(body["state"], "pending");
        assert_eq!(body["ref"], "main");
        assert!(body["name"].as_str().unwrap().starts_with("sreg/"));
    }
    let reqs = wait_for_statuses(&gitea, |r| r.len() >= 2);
    for r in &reqs {
        assert_eq!(
            r.path(),
            format!("/api/v1/repos/alice/recipes/statuses/{c1}")
        );
        assert_eq!(r.header("authorization"), Some("token gitea-test-token"));
        assert_eq!(r.json()["state"], "pending");
    }
}
