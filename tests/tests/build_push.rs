//! `sreg build` then `sreg push`: the build record written beside the image
//! travels with it, the registry shows it, and the Go library client pulls
//! the very bytes that were built.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use sreg_api::Reference;
use sreg_api::client::Client;
use sreg_tests::libclient::LibClient;
use sreg_tests::{Server, bin};

fn sreg(env: &[(&str, &str)], args: &[&str], cwd: &Path) -> Output {
    Command::new(bin("sreg"))
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", cwd)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run sreg")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "sreg failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
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

const RECIPE: &str = "\
Bootstrap: scratch

%files
    hello.txt /hello.txt

%labels
    Maintainer lab@example.org

%runscript
    cat /hello.txt
";

#[test]
fn a_built_image_is_pushed_with_its_build_record_and_pulled_back_by_the_go_library_client() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let server = Server::start(root, &["--data-dir", "data"]);
    let token = server.user_with_token("alice", false);

    let repo = root.join("recipes");
    std::fs::create_dir_all(repo.join("hello")).unwrap();
    std::fs::write(repo.join("hello/Singularity"), RECIPE).unwrap();
    std::fs::write(repo.join("hello/hello.txt"), "hello from a recipe\n").unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(
        &repo,
        &[
            "remote",
            "add",
            "origin",
            "https://user:secret@git.example.org/lab/recipes.git",
        ],
    );
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "hello"]);
    let commit = git(&repo, &["rev-parse", "HEAD"]);

    let out = root.join("out");
    std::fs::create_dir(&out).unwrap();
    let built = ok(&sreg(
        &[],
        &[
            "build",
            "--backend",
            "native",
            "--quiet",
            "../recipes/hello/Singularity",
        ],
        &out,
    ));
    let image = out.join("hello_latest.sif");
    assert_eq!(built.trim(), image.display().to_string());
    let record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("hello_latest.build.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(record["schema"], "sreg.build/v1");
    assert_eq!(record["backend"], "native");
    assert_eq!(record["commit"], commit.as_str());
    assert_eq!(record["branch"], "main");
    assert_eq!(
        record["repository"],
        "https://git.example.org/lab/recipes.git"
    );
    assert_eq!(record["recipe"]["path"], "hello/Singularity");
    assert_eq!(record["recipe"]["text"], RECIPE);
    let bytes = std::fs::read(&image).unwrap();
    assert_eq!(record["image"]["size"], bytes.len() as u64);
    assert!(out.join("hello_latest.build.log").is_file());

    let env = [
        ("SREG_REGISTRY", server.url.as_str()),
        ("SREG_TOKEN", token.as_str()),
    ];
    let pushed = sreg(
        &env,
        &["push", "hello_latest.sif", "alice/tools/hello:1.0"],
        &out,
    );
    ok(&pushed);
    assert!(String::from_utf8_lossy(&pushed.stderr).contains("hello_latest.build.json"));

    let client = Client::new(&server.url, Some(token.clone())).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let reference = Reference::parse("alice/tools/hello:1.0").unwrap();
    let shown = rt.block_on(client.image(&reference, None)).unwrap();
    let build = shown.build.expect("build metadata");
    assert_eq!(build.metadata.commit.as_deref(), Some(commit.as_str()));
    assert_eq!(build.metadata.backend.as_deref(), Some("native"));
    assert_eq!(build.metadata.recipe.as_deref(), Some(RECIPE));
    assert_eq!(
        build.metadata.recipe_path.as_deref(),
        Some("hello/Singularity")
    );
    assert_eq!(
        build.metadata.started_at.as_deref(),
        record["started_at"].as_str()
    );
    assert_eq!(shown.sha256, record["image"]["sha256"].as_str().unwrap());
    let log = rt.block_on(client.build_log(&reference, None)).unwrap();
    assert!(log.contains("with the native backend"), "{log}");

    let lib = LibClient::new(&server.url, Some(&token));
    let pulled = root.join("pulled.sif");
    lib.pull("library://alice/tools/hello:1.0", &pulled)
        .unwrap();
    assert_eq!(std::fs::read(&pulled).unwrap(), bytes);

    // An image changed after its build (same size) no longer matches its
    // record: the registry refuses it and publishes nothing.
    let mut changed = bytes.clone();
    let last = changed.len() - 1;
    changed[last] ^= 0xff;
    std::fs::write(&image, &changed).unwrap();
    let refused = sreg(
        &env,
        &["push", "hello_latest.sif", "alice/tools/hello:2.0"],
        &out,
    );
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("no longer matches its build record"), "{err}");
    let missing =
        rt.block_on(client.image(&Reference::parse("alice/tools/hello:2.0").unwrap(), None));
    assert!(missing.is_err(), "nothing published: {missing:?}");
    // Pushed without the record, it goes up as a plain image.
    ok(&sreg(
        &env,
        &[
            "push",
            "--no-build-record",
            "hello_latest.sif",
            "alice/tools/hello:2.0",
        ],
        &out,
    ));
    let plain = rt
        .block_on(client.image(&Reference::parse("alice/tools/hello:2.0").unwrap(), None))
        .unwrap();
    assert_ne!(
        plain.build.and_then(|b| b.metadata.backend),
        Some("native".into())
    );
}
