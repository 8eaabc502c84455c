//! `sreg watch --once` end to end: a real `git daemon` serves a recipe
//! repository, a real sreg-server receives the images. Each pass builds and
//! pushes only the recipes that changed since they were last built, and a
//! recipe that failed is tried again.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use sreg_api::Reference;
use sreg_api::client::Client;
use sreg_tests::git_server::{GitServer, WorkRepo};
use sreg_tests::{Server, bin};

fn recipe(file: &str) -> String {
    format!("Bootstrap: scratch\n\n%files\n    {file} /{file}\n\n%runscript\n    cat /{file}\n")
}

/// Commits everything and pushes it to the served repository.
fn publish(repo: &WorkRepo, message: &str) -> String {
    let commit = repo.commit(message);
    repo.push("main");
    commit
}

fn watch(server: &Server, token: &str, root: &Path, url: &str) -> Output {
    Command::new(bin("sreg"))
        .args(["watch", url, "--once", "--backend", "native"])
        .args(["--collection", "alice/tools"])
        .arg("--state-dir")
        .arg(root.join("state"))
        .current_dir(root)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", root)
        .env("SREG_REGISTRY", &server.url)
        .env("SREG_TOKEN", token)
        .stdin(Stdio::null())
        .output()
        .expect("run sreg watch")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ok(out: &Output) -> String {
    let err = stderr(out);
    assert!(out.status.success(), "sreg watch failed:\n{err}");
    err
}

/// The commit in the build metadata of `alice/tools/NAME:latest`, if any.
fn built_commit(rt: &tokio::runtime::Runtime, client: &Client, name: &str) -> Option<String> {
    let r = Reference::parse(&format!("alice/tools/{name}:latest")).unwrap();
    let image = rt.block_on(client.image(&r, None)).ok()?;
    image.build.and_then(|b| b.metadata.commit)
}

#[test]
fn watch_once_builds_what_changed_and_retries_what_failed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let server = Server::start(root, &["--data-dir", "data"]);
    let token = server.user_with_token("alice", false);
    let client = Client::new(&server.url, Some(token.clone())).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();

    let git_server = GitServer::start();
    let url = git_server.create("recipes");
    let repo = WorkRepo::new(&url);

    repo.write("one/Singularity", &recipe("one.txt"));
    repo.write("one/one.txt", "one, first\n");
    repo.write("two/Singularity", &recipe("two.txt"));
    repo.write("two/two.txt", "two\n");
    let c1 = publish(&repo, "two recipes");

    // First pass: everything.
    let err = ok(&watch(&server, &token, root, &url));
    assert!(err.contains("2 recipe(s) to build"), "{err}");
    assert_eq!(
        built_commit(&rt, &client, "one").as_deref(),
        Some(c1.as_str())
    );
    assert_eq!(
        built_commit(&rt, &client, "two").as_deref(),
        Some(c1.as_str())
    );
    let r = Reference::parse("alice/tools/one:latest").unwrap();
    let shown = rt.block_on(client.image(&r, None)).unwrap();
    let meta = shown.build.unwrap().metadata;
    assert_eq!(meta.branch.as_deref(), Some("main"));
    assert_eq!(meta.repository.as_deref(), Some(url.as_str()));
    assert_eq!(meta.recipe_path.as_deref(), Some("one/Singularity"));

    // A change to a file of `one` rebuilds `one` only.
    repo.write("one/one.txt", "one, second\n");
    let c2 = publish(&repo, "change one");
    let err = ok(&watch(&server, &token, root, &url));
    assert!(err.contains("1 recipe(s) to build"), "{err}");
    assert!(err.contains("one/Singularity: pushed"), "{err}");
    assert!(!err.contains("two/Singularity"), "{err}");
    assert_eq!(
        built_commit(&rt, &client, "one").as_deref(),
        Some(c2.as_str())
    );
    assert_eq!(
        built_commit(&rt, &client, "two").as_deref(),
        Some(c1.as_str())
    );

    // Nothing changed: nothing built.
    let err = ok(&watch(&server, &token, root, &url));
    assert!(err.contains("0 recipe(s) to build"), "{err}");

    // A recipe whose %files source is missing fails, and the pass says so.
    repo.write("three/Singularity", &recipe("missing.txt"));
    let c3 = publish(&repo, "a broken recipe");
    let failed = watch(&server, &token, root, &url);
    assert!(!failed.status.success(), "{}", stderr(&failed));
    let err = stderr(&failed);
    assert!(err.contains("1 recipe(s) to build"), "{err}");
    assert!(err.contains("three/Singularity: the build failed"), "{err}");
    assert_eq!(built_commit(&rt, &client, "three"), None);
    // It is tried again on the next pass, though nothing changed ...
    let again = watch(&server, &token, root, &url);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("1 recipe(s) to build"),
        "{}",
        stderr(&again)
    );
    // ... and once fixed, built alone.
    repo.write("three/missing.txt", "found\n");
    let c4 = publish(&repo, "fix three");
    let err = ok(&watch(&server, &token, root, &url));
    assert!(err.contains("1 recipe(s) to build"), "{err}");
    assert_eq!(
        built_commit(&rt, &client, "three").as_deref(),
        Some(c4.as_str())
    );
    assert_eq!(
        built_commit(&rt, &client, "one").as_deref(),
        Some(c2.as_str())
    );
    assert_ne!(c3, c4);

    // The state file names each recipe's commit.
    let state_dir = std::fs::read_dir(root.join("state"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state_dir.join("state.json")).unwrap()).unwrap();
    assert_eq!(state["built"]["two/Singularity"], c1.as_str());
    assert_eq!(state["built"]["three/Singularity"], c4.as_str());
    assert_eq!(state["last_commit"], c4.as_str());
}
