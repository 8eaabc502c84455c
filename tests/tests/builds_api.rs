//! The build queue over `/api/v1` against a real `sreg-server`: build
//! projects and their secrets, who sees which builds, the agent protocol
//! (lease, heartbeat, log, finish), concurrent agents, labels, lease expiry
//! and retries, an image pushed by an agent that died, supersede, cancel,
//! and a restart. Jobs are queued with `sreg-server admin build queue`, as
//! an operator would (webhooks queue through the same function).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::{Value, json};
use sreg_tests::images::write_sif;
use sreg_tests::{Server, bin};

const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

fn start(dir: &Path, env: &[(&str, String)]) -> Server {
    Server::start_with_env(dir, &["--data-dir", "data"], env)
}

fn fast() -> Vec<(&'static str, String)> {
    vec![
        ("SREG_BUILD_LEASE_SECONDS", "1".into()),
        ("SREG_BUILD_REAPER_INTERVAL_SECONDS", "1".into()),
        ("SREG_BUILD_MAX_ATTEMPTS", "2".into()),
    ]
}

struct Api {
    url: String,
    token: Option<String>,
    http: Client,
}

impl Api {
    fn new(server: &Server, token: Option<&str>) -> Self {
        Self {
            url: server.url.clone(),
            token: token.map(str::to_string),
            http: Client::new(),
        }
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::blocking::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.url));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut r = self.req(method.parse().unwrap(), path);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let res = r.send().unwrap();
        let status = res.status();
        let text = res.text().unwrap();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if status.is_client_error() || status.is_server_error() {
            // Every error is in the API's own shape.
            assert_eq!(v["error"]["code"], status.as_u16(), "{path}: {v}");
            assert!(v["error"]["message"].is_string(), "{path}: {v}");
        }
        (status, v)
    }

    fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call("GET", path, None)
    }

    fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call("POST", path, Some(body))
    }

    fn append(&self, job: i64, lease: &str, offset: i64, bytes: &[u8]) -> (StatusCode, Value) {
        let res = self
            .req(
                reqwest::Method::POST,
                &format!("/api/v1/agent/jobs/{job}/log"),
            )
            .header("X-Sreg-Lease", lease)
            .header("X-Sreg-Log-Offset", offset.to_string())
            .body(bytes.to_vec())
            .send()
            .unwrap();
        let status = res.status();
        (status, res.json().unwrap_or(Value::Null))
    }

    /// The log from `offset`: bytes, state, complete.
    fn log(&self, job: i64, offset: i64) -> (StatusCode, String, String, String) {
        let res = self
            .req(
                reqwest::Method::GET,
                &format!("/api/v1/builds/{job}/log?offset={offset}"),
            )
            .send()
            .unwrap();
        let h = |n: &str| {
            res.headers()
                .get(n)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default()
        };
        let (state, complete) = (h("x-sreg-build-state"), h("x-sreg-log-complete"));
        let status = res.status();
        (status, res.text().unwrap(), state, complete)
    }

    fn lease(&self, agent: &str, labels: &[&str]) -> Option<Value> {
        let (s, v) = self.post(
            "/api/v1/agent/lease",
            json!({"agent": agent, "labels": labels}),
        );
        match s {
            StatusCode::OK => Some(v),
            StatusCode::NO_CONTENT => None,
            other => panic!("lease: {other} {v}"),
        }
    }

    fn job(&self, id: i64) -> Value {
        let (s, v) = self.get(&format!("/api/v1/builds/{id}"));
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }
}

fn project(api: &Api, name: &str, collection: &str, extra: Value) -> Value {
    let mut body = json!({
        "name": name,
        "repository": format!("https://git.example.org/lab/{name}.git"),
        "collection": collection,
    });
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let (s, v) = api.post("/api/v1/projects", body);
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v
}

/// `sreg-server admin build queue`: the new jobs' ids.
fn queue(server: &Server, project: &str, commit: &str, recipes: &[&str]) -> Vec<i64> {
    let mut args = vec![
        "admin",
        "build",
        "queue",
        "--project",
        project,
        "--commit",
        commit,
    ];
    for r in recipes {
        args.push("--recipe");
        args.push(r);
    }
    let out = server.admin(&args);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect()
}

fn wait_for(api: &Api, id: i64, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let j = api.job(id);
        if j["state"] == state {
            return j;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} never became {state}: {j}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn projects_show_secrets_once_and_builds_only_to_who_may_see_them() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let alice_token = server.user_with_token("alice", false);
    let bob_token = server.user_with_token("bob", false);
    let admin = Api::new(&server, Some(&server.user_with_token("root", true)));
    let alice = Api::new(&server, Some(&alice_token));
    let bob = Api::new(&server, Some(&bob_token));
    let anon = Api::new(&server, None);

    let (s, _) = alice.post(
        "/api/v1/collections",
        json!({"name": "secret-builds", "private": true}),
    );
    assert_eq!(s, StatusCode::CREATED);
    let created = project(
        &alice,
        "hidden",
        "alice/secret-builds",
        json!({"forge": "github", "forge_repository": "lab/hidden", "forge_token": "ghp_do_not_show"}),
    );
    let secret = created["webhook_secret"].as_str().unwrap().to_string();
    assert_eq!(secret.len(), 64, "a random secret is generated: {created}");
    assert!(
        created["webhook_urls"][0]
            .as_str()
            .unwrap()
            .ends_with("/api/v1/hooks/github")
    );
    let p = &created["project"];
    assert_eq!(p["has_webhook_secret"], true);
    assert_eq!(p["has_forge_token"], true);
    assert_eq!(p["forge_api_url"], "https://api.github.com");
    let id = p["id"].as_i64().unwrap();
    // Never shown again, nor the forge token.
    for api in [&alice, &admin] {
        let (s, v) = api.get(&format!("/api/v1/projects/{id}"));
        assert_eq!(s, StatusCode::OK);
        let (_, list) = api.get("/api/v1/projects");
        for text in [v.to_string(), list.to_string()] {
            assert!(
                !text.contains(&secret) && !text.contains("ghp_do_not_show"),
                "{text}"
            );
        }
    }
    // Nor stored in clear.
    let db = dir.path().join("data/sreg.db");
    if db.exists() {
        let mut bytes = std::fs::read(&db).unwrap();
        if let Ok(wal) = std::fs::read(dir.path().join("data/sreg.db-wal")) {
            bytes.extend(wal);
        }
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(&secret) && !text.contains("ghp_do_not_show"));
    }

    let jobs = queue(&server, "hidden", A, &["Singularity:app:latest"]);
    assert_eq!(jobs.len(), 1);
    let job = jobs[0];
    assert_eq!(
        alice.job(job)["reference"],
        "alice/secret-builds/app:latest"
    );
    // Bob and the anonymous see nothing of it: 404 as if it did not exist.
    for api in [&bob, &anon] {
        assert_eq!(
            api.get(&format!("/api/v1/projects/{id}")).0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(api.get("/api/v1/projects").1, json!([]));
        assert_eq!(api.get("/api/v1/builds").1, json!([]));
        assert_eq!(
            api.get(&format!("/api/v1/builds/{job}")).0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(api.log(job, 0).0, StatusCode::NOT_FOUND);
    }
    assert_eq!(
        bob.post(&format!("/api/v1/builds/{job}/cancel"), json!({}))
            .0,
        StatusCode::NOT_FOUND
    );
    let (s, v) = alice.get(&format!("/api/v1/builds?project={id}&state=queued"));
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(
        alice.get("/api/v1/builds?state=bogus").0,
        StatusCode::BAD_REQUEST
    );

    // A public project: bob sees it but may not change it.
    let public = project(
        &alice,
        "open",
        "alice/tools",
        json!({"webhook_secret": "0123456789abcdef-given"}),
    );
    assert_eq!(public["webhook_secret"], "0123456789abcdef-given");
    let pid = public["project"]["id"].as_i64().unwrap();
    assert_eq!(
        bob.get(&format!("/api/v1/projects/{pid}")).0,
        StatusCode::OK
    );
    let (s, _) = bob.call(
        "PATCH",
        &format!("/api/v1/projects/{pid}"),
        Some(json!({"branch": "dev"})),
    );
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(
        bob.call("DELETE", &format!("/api/v1/projects/{pid}"), None)
            .0,
        StatusCode::FORBIDDEN
    );
    let (s, v) = alice.call(
        "PATCH",
        &format!("/api/v1/projects/{pid}"),
        Some(json!({"branch": "dev", "agent_labels": ["gpu"]})),
    );
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["branch"].as_str(), v["agent_labels"][0].as_str()),
        (Some("dev"), Some("gpu"))
    );
    // Bob may not build into alice's collections.
    let (s, _) = bob.post(
        "/api/v1/projects",
        json!({"name": "sneaky", "repository": "https://h/r", "collection": "alice/tools"}),
    );
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = bob.post(
        "/api/v1/projects",
        json!({"name": "sneaky", "repository": "https://h/r", "collection": "alice/new-one"}),
    );
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Bad input is refused and changes nothing (no collection is created).
    for bad in [
        json!({"name": "x", "repository": "https://u:pw@h/r", "collection": "made-by-bad"}),
        json!({"name": "x", "repository": "ftp://h/r", "collection": "made-by-bad"}),
        json!({"name": "Bad Name", "repository": "https://h/r", "collection": "made-by-bad"}),
        json!({"name": "x", "repository": "https://h/r", "collection": "made-by-bad", "backend": "podman"}),
        json!({"name": "x", "repository": "https://h/r", "collection": "made-by-bad", "forge": "gitlab", "forge_repository": "g/r"}),
        json!({"name": "x", "repository": "https://h/r", "collection": "made-by-bad", "surprise": 1}),
        json!({"name": "x", "repository": "https://h/r"}),
    ] {
        let (s, v) = alice.post("/api/v1/projects", bad.clone());
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
    }
    assert_eq!(
        alice.get("/api/v1/collections/alice/made-by-bad").0,
        StatusCode::NOT_FOUND
    );
    let (s, _) = alice.post(
        "/api/v1/projects",
        json!({"name": "open", "repository": "https://h/r", "collection": "tools"}),
    );
    assert_eq!(s, StatusCode::CONFLICT, "names are unique");
    // A missing collection is created, as a push would.
    project(&alice, "fresh", "brand-new", json!({}));
    assert_eq!(
        alice.get("/api/v1/collections/alice/brand-new").0,
        StatusCode::OK
    );

    assert_eq!(
        alice
            .call("DELETE", &format!("/api/v1/projects/{id}"), None)
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        alice.get(&format!("/api/v1/builds/{job}")).0,
        StatusCode::NOT_FOUND,
        "jobs go with the project"
    );
}

#[test]
fn an_agent_leases_heartbeats_streams_its_log_and_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let alice = Api::new(&server, Some(&server.user_with_token("alice", false)));
    let agent = Api::new(&server, Some(&server.user_with_token("agent", true)));
    project(&alice, "proj", "alice/tools", json!({"backend": "native"}));
    let job = queue(&server, "proj", A, &["x/Singularity.v1:x:v1"])[0];

    // Agent calls need an admin's token.
    assert_eq!(
        alice.post("/api/v1/agent/lease", json!({"agent": "a"})).0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        Api::new(&server, None)
            .post("/api/v1/agent/lease", json!({"agent": "a"}))
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        agent.post("/api/v1/agent/lease", json!({"agent": ""})).0,
        StatusCode::BAD_REQUEST
    );

    let lease = agent.lease("node1", &[]).expect("a job");
    assert!(agent.lease("node2", &[]).is_none(), "one job, leased once");
    let lease_id = lease["lease_id"].as_str().unwrap().to_string();
    assert_eq!(lease["job"]["id"], job);
    assert_eq!(lease["job"]["state"], "running");
    assert_eq!(lease["job"]["attempts"], 1);
    assert_eq!(lease["job"]["backend"], "native");
    assert_eq!(lease["job"]["agent"], "node1");
    assert_eq!(lease["job"]["commit"], A);
    assert_eq!(lease["job"]["reference"], "alice/tools/x:v1");
    assert_eq!(lease["lease_seconds"], 300);
    assert_eq!(lease["heartbeat_seconds"], 30);
    // The lease id is not shown to readers.
    assert!(!alice.job(job).to_string().contains(&lease_id));

    let hb = format!("/api/v1/agent/jobs/{job}/heartbeat");
    let (s, v) = agent.post(&hb, json!({"lease_id": lease_id}));
    assert_eq!((s, v["cancel"].as_bool()), (StatusCode::OK, Some(false)));
    assert_eq!(
        agent.post(&hb, json!({"lease_id": "lease_forged"})).0,
        StatusCode::CONFLICT
    );
    assert_eq!(
        agent
            .post(
                "/api/v1/agent/jobs/999999/heartbeat",
                json!({"lease_id": lease_id})
            )
            .0,
        StatusCode::NOT_FOUND
    );

    // Log: chunks by offset, a resent chunk stored once, a gap refused.
    assert_eq!(
        agent.append(job, &lease_id, 0, b"step 1\n").1["log_size"],
        7
    );
    assert_eq!(
        agent.append(job, &lease_id, 0, b"step 1\n").1["log_size"],
        7
    );
    assert_eq!(
        agent.append(job, "lease_forged", 7, b"evil\n").0,
        StatusCode::CONFLICT
    );
    assert_eq!(
        agent.append(job, &lease_id, 100, b"gap\n").0,
        StatusCode::CONFLICT
    );
    let (s, v) = agent.append(job, &lease_id, 7, b"step 2\n");
    assert_eq!((s, v["log_size"].as_i64()), (StatusCode::OK, Some(14)));
    let missing_offset = agent
        .req(
            reqwest::Method::POST,
            &format!("/api/v1/agent/jobs/{job}/log"),
        )
        .header("X-Sreg-Lease", &lease_id)
        .body("x")
        .send()
        .unwrap();
    assert_eq!(missing_offset.status(), StatusCode::BAD_REQUEST);

    // Following the running build: the log so far, not complete.
    let (s, text, state, complete) = alice.log(job, 0);
    assert_eq!(
        (s, text.as_str(), state.as_str(), complete.as_str()),
        (StatusCode::OK, "step 1\nstep 2\n", "running", "false")
    );
    let (_, text, _, _) = alice.log(job, 7);
    assert_eq!(text, "step 2\n");
    assert_eq!(alice.job(job)["log_size"], 14);

    let fin = format!("/api/v1/agent/jobs/{job}/finish");
    let (s, _) = agent.post(&fin, json!({"lease_id": lease_id, "outcome": "succeeded"}));
    assert_eq!(s, StatusCode::BAD_REQUEST, "success needs the image sha256");
    let sha = "ab".repeat(32);
    let (s, _) = agent.post(
        &fin,
        json!({"lease_id": "lease_forged", "outcome": "succeeded", "image_sha256": sha}),
    );
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, v) = agent.post(
        &fin,
        json!({"lease_id": lease_id, "outcome": "succeeded", "image_sha256": sha}),
    );
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["state"], "succeeded");
    assert_eq!(v["image_sha256"], sha.as_str());
    assert!(v["finished_at"].is_string());
    let (_, text, state, complete) = alice.log(job, 0);
    assert_eq!(
        (text.as_str(), state.as_str(), complete.as_str()),
        ("step 1\nstep 2\n", "succeeded", "true")
    );
    // The lease is over.
    assert_eq!(
        agent.post(&hb, json!({"lease_id": lease_id})).0,
        StatusCode::CONFLICT
    );
    assert_eq!(
        agent.append(job, &lease_id, 14, b"late\n").0,
        StatusCode::CONFLICT
    );

    // Queued again at the same commit: a duplicate of a built job is not queued.
    assert!(queue(&server, "proj", A, &["x/Singularity.v1:x:v1"]).is_empty());
    // A failure is final, with the agent's reason.
    let j2 = queue(&server, "proj", B, &["x/Singularity.v1:x:v1"])[0];
    let l2 = agent.lease("node1", &[]).unwrap();
    let (_, v) = agent.post(
        &format!("/api/v1/agent/jobs/{j2}/finish"),
        json!({"lease_id": l2["lease_id"], "outcome": "failed", "error": "exit 1: apk not found"}),
    );
    assert_eq!(
        (v["state"].as_str(), v["error"].as_str()),
        (Some("failed"), Some("exit 1: apk not found"))
    );
}

#[test]
fn concurrent_agents_never_share_a_job_and_labels_are_respected() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let alice = Api::new(&server, Some(&server.user_with_token("alice", false)));
    let token = server.user_with_token("agent", true);
    project(&alice, "cpu", "alice/tools", json!({}));
    project(
        &alice,
        "gpu",
        "alice/tools",
        json!({"agent_labels": ["gpu", "cuda12"]}),
    );
    let recipes: Vec<String> = (0..12)
        .map(|i| format!("r{i}/Singularity:r{i}:latest"))
        .collect();
    let refs: Vec<&str> = recipes.iter().map(String::as_str).collect();
    let cpu_jobs: BTreeSet<i64> = queue(&server, "cpu", A, &refs).into_iter().collect();
    let gpu_jobs: BTreeSet<i64> = queue(&server, "gpu", A, &refs[..3]).into_iter().collect();

    let url = server.url.clone();
    let leased: Vec<i64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|n| {
                let (url, token) = (url.clone(), token.clone());
                s.spawn(move || {
                    let api = Api {
                        url,
                        token: Some(token),
                        http: Client::new(),
                    };
                    let mut got = Vec::new();
                    while let Some(l) = api.lease(&format!("agent{n}"), &["gpu"]) {
                        got.push(l["job"]["id"].as_i64().unwrap());
                    }
                    got
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let unique: BTreeSet<i64> = leased.iter().copied().collect();
    assert_eq!(
        unique.len(),
        leased.len(),
        "a job was leased twice: {leased:?}"
    );
    assert_eq!(
        unique, cpu_jobs,
        "agents with only `gpu` get every unlabelled job and no cuda12 one"
    );
    let agent = Api::new(&server, Some(&token));
    let mut got = BTreeSet::new();
    while let Some(l) = agent.lease("big", &["cuda12", "gpu", "other"]) {
        got.insert(l["job"]["id"].as_i64().unwrap());
    }
    assert_eq!(got, gpu_jobs);
}

#[test]
fn expired_leases_are_retried_then_fail_and_a_pushed_image_counts() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &fast());
    let alice = Api::new(&server, Some(&server.user_with_token("alice", false)));
    let admin_token = server.user_with_token("agent", true);
    let agent = Api::new(&server, Some(&admin_token));
    project(&alice, "proj", "alice/tools", json!({}));
    let job = queue(&server, "proj", A, &["Singularity:app:latest"])[0];

    // The agent dies: its lease expires, the job is queued again.
    let first = agent.lease("dies", &[]).unwrap();
    assert_eq!(first["lease_seconds"], 1);
    let j = wait_for(&alice, job, "queued");
    assert_eq!(j["attempts"], 1);
    assert!(j["error"].as_str().unwrap().contains("lease lost"), "{j}");
    let hb = agent.post(
        &format!("/api/v1/agent/jobs/{job}/heartbeat"),
        json!({"lease_id": first["lease_id"]}),
    );
    assert_eq!(hb.0, StatusCode::CONFLICT, "the old lease is lost");
    // Heartbeats keep a lease alive past its length.
    let second = agent.lease("beats", &[]).unwrap();
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(400));
        let (s, _) = agent.post(
            &format!("/api/v1/agent/jobs/{job}/heartbeat"),
            json!({"lease_id": second["lease_id"]}),
        );
        assert_eq!(s, StatusCode::OK);
    }
    assert_eq!(alice.job(job)["state"], "running");
    // Then it dies too: the last attempt is used up.
    let j = wait_for(&alice, job, "failed");
    assert_eq!(j["attempts"], 2);
    assert!(
        j["error"].as_str().unwrap().contains("after 2 attempts"),
        "{j}"
    );

    // An agent that pushed the image and died before finishing: succeeded.
    let job2 = queue(&server, "proj", B, &["Singularity:app:latest"])[0];
    let l = agent.lease("pushes", &[]).unwrap();
    assert_eq!(l["job"]["id"], job2);
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let hash = write_sif(&work.join("app.sif"), "amd64", 4096, 5);
    let out = Command::new(bin("sreg"))
        .args([
            "push",
            "app.sif",
            "alice/tools/app:latest",
            "--meta",
            &format!("build_job={job2}"),
        ])
        .current_dir(&work)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &work)
        .env("SREG_REGISTRY", &server.url)
        .env("SREG_TOKEN", &admin_token)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let j = wait_for(&alice, job2, "succeeded");
    assert_eq!(j["image_sha256"], hash.trim_start_matches("sha256."));
    assert_eq!(j["attempts"], 1, "not built again");
}

#[test]
fn newer_commits_supersede_and_builds_can_be_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let alice = Api::new(&server, Some(&server.user_with_token("alice", false)));
    let bob = Api::new(&server, Some(&server.user_with_token("bob", false)));
    let agent = Api::new(&server, Some(&server.user_with_token("agent", true)));
    project(&alice, "proj", "alice/tools", json!({}));
    let old = queue(&server, "proj", A, &["x:x:latest", "y:y:latest"]);
    let new = queue(&server, "proj", B, &["x:x:latest"]);
    let j = alice.job(old[0]);
    assert_eq!(j["state"], "superseded");
    assert!(j["error"].as_str().unwrap().contains(B), "{j}");
    assert_eq!(
        alice.job(old[1])["state"],
        "queued",
        "another recipe is untouched"
    );

    // Cancel a queued job: at once. Only the owner (or an admin).
    let cancel = |api: &Api, id: i64| api.post(&format!("/api/v1/builds/{id}/cancel"), json!({}));
    assert_eq!(cancel(&bob, new[0]).0, StatusCode::FORBIDDEN);
    let (s, v) = cancel(&alice, new[0]);
    assert_eq!(
        (s, v["state"].as_str()),
        (StatusCode::OK, Some("cancelled"))
    );
    assert_eq!(
        cancel(&alice, new[0]).0,
        StatusCode::CONFLICT,
        "already finished"
    );

    // Cancel a running job: the agent hears it on its heartbeat.
    let l = agent.lease("n", &[]).unwrap();
    let id = l["job"]["id"].as_i64().unwrap();
    assert_eq!(id, old[1]);
    let (_, v) = cancel(&alice, id);
    assert_eq!(
        (v["state"].as_str(), v["cancel_requested"].as_bool()),
        (Some("running"), Some(true))
    );
    let (_, hb) = agent.post(
        &format!("/api/v1/agent/jobs/{id}/heartbeat"),
        json!({"lease_id": l["lease_id"]}),
    );
    assert_eq!(hb["cancel"], true);
    let (_, v) = agent.post(
        &format!("/api/v1/agent/jobs/{id}/finish"),
        json!({"lease_id": l["lease_id"], "outcome": "failed", "error": "stopped: cancelled"}),
    );
    assert_eq!(v["state"], "cancelled");
    let (_, cancelled) = alice.get("/api/v1/builds?state=cancelled");
    assert_eq!(cancelled.as_array().unwrap().len(), 2);
}

#[test]
fn a_restart_keeps_queued_jobs_and_logs() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let alice_token = server.user_with_token("alice", false);
    let agent_token = server.user_with_token("agent", true);
    let alice = Api::new(&server, Some(&alice_token));
    let agent = Api::new(&server, Some(&agent_token));
    project(&alice, "proj", "alice/tools", json!({}));
    let jobs = queue(&server, "proj", A, &["a:a:1", "b:b:1", "c:c:1"]);
    let l = agent.lease("n", &[]).unwrap();
    let running = l["job"]["id"].as_i64().unwrap();
    agent.append(
        running,
        l["lease_id"].as_str().unwrap(),
        0,
        b"before restart\n",
    );

    let server = server.restart();
    let alice = Api::new(&server, Some(&alice_token));
    let agent = Api::new(&server, Some(&agent_token));
    // The running job keeps its lease; the others are still queued and leasable.
    let (s, _) = agent.post(
        &format!("/api/v1/agent/jobs/{running}/heartbeat"),
        json!({"lease_id": l["lease_id"]}),
    );
    assert_eq!(s, StatusCode::OK);
    assert_eq!(alice.log(running, 0).1, "before restart\n");
    let mut rest = BTreeSet::new();
    while let Some(l) = agent.lease("n", &[]) {
        rest.insert(l["job"]["id"].as_i64().unwrap());
    }
    let expected: BTreeSet<i64> = jobs.into_iter().filter(|&j| j != running).collect();
    assert_eq!(rest, expected);
}
