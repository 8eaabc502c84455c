//! `sreg watch --once` end to end: a real `git daemon` serves a recipe
//! repository, a real sreg-server receives the images. Each pass builds and
//! pushes only the recipes that changed since they were last built, and a
//! recipe that failed is tried again.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use sreg_api::Reference;
use sreg_api::client::Client;
use sreg_tests::{Server, bin, free_port};

/// A `git daemon` serving the bare repositories under a folder over
/// `git://127.0.0.1:PORT/NAME.git`, killed on drop.
struct GitDaemon {
    child: Child,
    port: u16,
}

impl GitDaemon {
    fn start(base: &Path) -> Self {
        let port = free_port();
        // git-daemon itself: killing `git daemon` would leave its child running.
        let child = Command::new(sreg_tests::git_server::daemon_program())
            .arg("--reuseaddr")
            .arg("--export-all")
            .arg("--informative-errors")
            .arg("--listen=127.0.0.1")
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.display()))
            .arg(base)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("git daemon (run scripts/setup)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "git daemon did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, port }
    }

    fn url(&self, name: &str) -> String {
        format!("git://127.0.0.1:{}/{name}.git", self.port)
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.org")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.org")
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn recipe(file: &str) -> String {
    format!("Bootstrap: scratch\n\n%files\n    {file} /{file}\n\n%runscript\n    cat /{file}\n")
}

/// A work repository pushing to a bare one that the daemon serves.
struct Repo {
    work: PathBuf,
}

impl Repo {
    fn new(root: &Path, served: &Path, name: &str) -> Self {
        let bare = served.join(format!("{name}.git"));
        std::fs::create_dir_all(&bare).unwrap();
        git(&bare, &["init", "-q", "--bare", "-b", "main"]);
        let work = root.join(format!("{name}-work"));
        std::fs::create_dir_all(&work).unwrap();
        git(&work, &["init", "-q", "-b", "main"]);
        git(&work, &["remote", "add", "origin", bare.to_str().unwrap()]);
        Self { work }
    }

    fn write(&self, path: &str, text: &str) {
        let p = self.work.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn commit(&self, message: &str) -> String {
        git(&self.work, &["add", "-A"]);
        git(&self.work, &["commit", "-q", "-m", message]);
        git(&self.work, &["push", "-q", "origin", "main"]);
        git(&self.work, &["rev-parse", "HEAD"])
    }
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

    let served = root.join("served");
    let repo = Repo::new(root, &served, "recipes");
    let daemon = GitDaemon::start(&served);
    let url = daemon.url("recipes");

    repo.write("one/Singularity", &recipe("one.txt"));
    repo.write("one/one.txt", "one, first\n");
    repo.write("two/Singularity", &recipe("two.txt"));
    repo.write("two/two.txt", "two\n");
    let c1 = repo.commit("two recipes");

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
    let c2 = repo.commit("change one");
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
    let c3 = repo.commit("a broken recipe");
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
    let c4 = repo.commit("fix three");
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
