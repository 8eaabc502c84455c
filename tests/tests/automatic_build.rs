//! The whole of automatic builds, end to end: a commit reaches a real git
//! daemon, a signed GitHub webhook reaches the registry (a badly signed one
//! is refused), a real `sreg agent` builds the changed recipe with the
//! native backend and pushes it, the commit statuses reach a stand-in for
//! GitHub's API, and the Go `library://` client pulls the image back.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use sreg_api::Reference;
use sreg_tests::capture::{CaptureServer, Reply};
use sreg_tests::git_server::{GitServer, WorkRepo};
use sreg_tests::libclient::LibClient;
use sreg_tests::{Server, bin};

const SECRET: &str = "end-to-end-webhook-secret";
const ZERO: &str = "0000000000000000000000000000000000000000";

fn sign(body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A running `sreg agent`, killed on drop.
struct Agent(Child);

impl Agent {
    fn start(registry: &str, token: &str, root: &Path) -> Self {
        let child = Command::new(bin("sreg"))
            .args(["agent", "--registry", registry, "--backend", "native"])
            .args(["--poll", "200ms", "--name", "e2e", "--work-dir"])
            .arg(root.join("agent-work"))
            .current_dir(root)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", root)
            .env("SREG_TOKEN", token)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sreg agent");
        Agent(child)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_signed_webhook_ends_in_an_image_built_by_an_agent_and_pulled_by_the_go_library_client() {
    let git = GitServer::start();
    let repo_url = git.create("recipes");
    let work = WorkRepo::new(&repo_url);
    work.write(
        "hello/Singularity",
        "Bootstrap: scratch\n\n%files\n    hello.txt /hello.txt\n\n%runscript\n    cat /hello.txt\n",
    );
    work.write("hello/hello.txt", "hello, built by an agent\n");
    work.commit("hello");
    work.push("main");
    let commit = work.head();

    let forge = CaptureServer::start(|req| {
        let mut status = req.json();
        status["id"] = json!(1);
        Reply::json(201, &status)
    });
    let root = tempfile::tempdir().unwrap();
    let server = Server::start(root.path(), &[]);
    let alice = server.user_with_token("alice", false);
    let agent_token = server.user_with_token("builder", true);
    let http = reqwest::blocking::Client::new();

    let created: Value = http
        .post(format!("{}/api/v1/projects", server.url))
        .bearer_auth(&alice)
        .json(&json!({
            "name": "recipes",
            "repository": repo_url,
            "branch": "main",
            "collection": "alice/images",
            "webhook_secret": SECRET,
            "forge": "github",
            "forge_api_url": forge.url,
            "forge_repository": "alice/recipes",
            "forge_token": "ghp_end_to_end",
        }))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let project = created["project"]["id"].as_i64().expect("project created");

    let body = json!({
        "ref": "refs/heads/main",
        "before": ZERO,
        "after": commit,
        "repository": {"full_name": "alice/recipes", "clone_url": repo_url},
    })
    .to_string();
    let hook = |signature: String, delivery: &str| {
        http.post(format!("{}/api/v1/hooks/github", server.url))
            .header("content-type", "application/json")
            .header("x-github-event", "push")
            .header("x-github-delivery", delivery)
            .header("x-hub-signature-256", signature)
            .body(body.clone())
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    let builds = || -> Vec<Value> {
        http.get(format!("{}/api/v1/builds?project={project}", server.url))
            .bearer_auth(&alice)
            .send()
            .unwrap()
            .json::<Value>()
            .unwrap()
            .as_array()
            .cloned()
            .unwrap_or_default()
    };

    // A wrong signature is refused and queues nothing.
    let forged = sign(b"another body");
    assert_eq!(hook(forged, "delivery-forged"), 401);
    std::thread::sleep(Duration::from_millis(500));
    assert!(builds().is_empty());

    assert_eq!(hook(sign(body.as_bytes()), "delivery-1"), 202);
    // The same delivery again makes no second job.
    assert_eq!(hook(sign(body.as_bytes()), "delivery-1") / 100, 2);

    let _agent = Agent::start(&server.url, &agent_token, root.path());
    let job = wait_until("the build to succeed", || {
        let all = builds();
        assert!(all.len() <= 1, "one job only: {all:?}");
        all.into_iter().find(|j| j["state"] == "succeeded")
    });
    assert_eq!(job["commit"], commit.as_str());
    assert_eq!(job["reference"], "alice/images/hello:latest");

    // The image carries the commit in its build metadata.
    let client = sreg_api::client::Client::new(&server.url, Some(alice.clone())).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let image = rt
        .block_on(client.image(
            &Reference::parse("alice/images/hello:latest").unwrap(),
            None,
        ))
        .unwrap();
    let build = image.build.expect("build metadata");
    assert_eq!(build.metadata.commit.as_deref(), Some(commit.as_str()));
    assert_eq!(build.metadata.backend.as_deref(), Some("native"));
    assert_eq!(
        build.metadata.recipe_path.as_deref(),
        Some("hello/Singularity")
    );
    assert_eq!(Some(image.sha256.as_str()), job["image_sha256"].as_str());

    // Pulled back by the Go library client, byte for byte.
    let pulled = root.path().join("pulled.sif");
    LibClient::new(&server.url, Some(&alice))
        .pull("library://alice/images/hello:latest", &pulled)
        .unwrap();
    let bytes = std::fs::read(&pulled).unwrap();
    assert_eq!(bytes.len() as i64, image.size);
    assert_eq!(sreg_tests::images::library_hash(&bytes), image.hash);

    // The commit shows pending, then success, on the stand-in forge API.
    let states = wait_until("the success status", || {
        let states: Vec<String> = forge
            .requests()
            .iter()
            .filter(|r| r.path() == format!("/repos/alice/recipes/statuses/{commit}"))
            .map(|r| r.json()["state"].as_str().unwrap_or_default().to_string())
            .collect();
        states.iter().any(|s| s == "success").then_some(states)
    });
    assert_eq!(states.first().map(String::as_str), Some("pending"));
    assert_eq!(states.last().map(String::as_str), Some("success"));
}
