//! `/api/v1` and the `sreg login`, `push`, `pull` and `search` commands,
//! against the real server binary, with real SIF files.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use sreg_api::Reference;
use sreg_api::client::Client;
use sreg_api::v1::*;
use sreg_tests::images::{library_hash, sif_bytes, write_sif};
use sreg_tests::postgres::Postgres;
use sreg_tests::{Server, bin};

fn start(dir: &Path) -> Server {
    Server::start(dir, &["--data-dir", "data"])
}

fn r(s: &str) -> Reference {
    Reference::parse(s).unwrap()
}

fn sha_hex(bytes: &[u8]) -> String {
    library_hash(bytes)
        .trim_start_matches("sha256.")
        .to_string()
}

/// Runs `sreg` with a clean environment: only PATH, HOME and `env`.
fn sreg(home: &Path, env: &[(&str, &str)], args: &[&str], cwd: &Path) -> Output {
    Command::new(bin("sreg"))
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
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

fn failed(out: &Output) -> String {
    assert!(!out.status.success(), "sreg should have failed: {out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every file under `dir`.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Pushes bytes through the client (no CLI), returning the image.
async fn push_bytes(
    client: &Client,
    dir: &Path,
    reference: &str,
    bytes: &[u8],
    private: Option<bool>,
) -> Result<Image, sreg_api::client::ClientError> {
    let file = dir.join(format!("push-{}.sif", sha_hex(bytes)));
    std::fs::write(&file, bytes).unwrap();
    let session = client
        .start_upload(&UploadRequest {
            reference: reference.into(),
            size: bytes.len() as u64,
            sha256: Some(sha_hex(bytes)),
            arch: Some("amd64".into()),
            private,
            ..Default::default()
        })
        .await?;
    client.upload_image(&session, &file, None).await
}

/// The main scenario: `sreg push` with recipe, log and metadata in a CI
/// environment, the image JSON shows all of it, `sreg pull` gets the same
/// bytes, pulls are counted, ranges work, and `gc` keeps the log.
async fn push_and_pull_scenario(server: &Server, dir: &Path) {
    let token = server.user_with_token("alice", false);
    let home = tempfile::tempdir().unwrap();
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let sif = work.join("app.sif");
    let hash = write_sif(&sif, "amd64", 300_000, 7);
    let recipe = "Bootstrap: docker\nFrom: alpine:3.20\n\n%post\n    apk add samtools\n";
    std::fs::write(work.join("Singularity.1.0"), recipe).unwrap();
    let log_text = "step 1/2: bootstrap\nstep 2/2: post\nbuild done\n";
    std::fs::write(work.join("build.log"), log_text).unwrap();

    let env = [
        ("SREG_REGISTRY", server.url.as_str()),
        ("SREG_TOKEN", token.as_str()),
        ("CI", "true"),
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_SERVER_URL", "https://github.com"),
        ("GITHUB_REPOSITORY", "lab/recipes"),
        ("GITHUB_REF_NAME", "main"),
        ("GITHUB_SHA", "0123456789abcdef0123456789abcdef01234567"),
        ("GITHUB_RUN_ID", "99"),
        ("HOSTNAME", "runner-7"),
    ];
    let out = sreg(
        home.path(),
        &env,
        &[
            "push",
            "app.sif",
            "alice/tools/app:1.0",
            "--recipe",
            "Singularity.1.0",
            "--log",
            "build.log",
            "--tag",
            "stable",
            "--meta",
            "backend=apptainer",
            "--meta",
            "backend_version=1.3.4",
            "--meta",
            "started_at=2026-01-31T12:00:00Z",
            "--meta",
            "finished_at=2026-01-31T12:02:30Z",
            "--meta",
            "ticket=LAB-1",
        ],
        &work,
    );
    let stdout = ok(&out);
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("alice/tools/app:1.0"), "{stdout}");
    assert_eq!(
        lines.next(),
        Some(format!("{}/api/v1/images/alice/tools/app:1.0", server.url).as_str())
    );
    assert!(
        files_under(home.path()).is_empty(),
        "CI writes nothing under HOME"
    );

    let anon = Client::new(&server.url, None).unwrap();
    let image = anon.image(&r("alice/tools/app:1.0"), None).await.unwrap();
    let bytes = std::fs::read(&sif).unwrap();
    assert_eq!(image.hash, hash);
    assert_eq!(image.sha256, sha_hex(&bytes));
    assert_eq!(image.size, bytes.len() as i64);
    assert_eq!(image.arch, "amd64");
    assert_eq!(
        image.tags.iter().cloned().collect::<BTreeSet<_>>(),
        BTreeSet::from(["1.0".to_string(), "stable".to_string()])
    );
    assert_eq!(image.downloads, 0);
    assert_eq!(image.stars, 0);
    assert!(
        image
            .definition_file
            .as_deref()
            .is_some_and(|d| d.contains("Seed 7")),
        "{:?}",
        image.definition_file
    );
    assert_eq!(image.labels.as_ref().unwrap()["seed"], "7");
    assert_eq!(image.partitions.len(), 1);
    assert!(image.partitions[0].primary);
    assert_eq!(image.partitions[0].arch, "amd64");
    let build = image.build.clone().expect("build metadata");
    let m = &build.metadata;
    assert_eq!(m.recipe.as_deref(), Some(recipe));
    assert_eq!(m.recipe_path.as_deref(), Some("Singularity.1.0"));
    assert_eq!(
        m.repository.as_deref(),
        Some("https://github.com/lab/recipes")
    );
    assert_eq!(m.branch.as_deref(), Some("main"));
    assert_eq!(
        m.commit.as_deref(),
        Some("0123456789abcdef0123456789abcdef01234567")
    );
    assert_eq!(m.builder_host.as_deref(), Some("runner-7"));
    assert_eq!(m.backend.as_deref(), Some("apptainer"));
    assert_eq!(m.backend_version.as_deref(), Some("1.3.4"));
    assert_eq!(m.started_at.as_deref(), Some("2026-01-31T12:00:00Z"));
    assert_eq!(m.finished_at.as_deref(), Some("2026-01-31T12:02:30Z"));
    assert_eq!(m.duration_seconds, Some(150.0));
    assert_eq!(m.ci_provider.as_deref(), Some("github"));
    assert_eq!(
        m.ci_url.as_deref(),
        Some("https://github.com/lab/recipes/actions/runs/99")
    );
    assert_eq!(m.extra.get("ticket").map(String::as_str), Some("LAB-1"));
    assert_eq!(build.size, bytes.len() as i64);
    assert_eq!(build.sha256, sha_hex(&bytes));
    assert_eq!(build.pushed_by.as_deref(), Some("alice"));
    let log = build.log.clone().expect("log info");
    assert_eq!(log.size, log_text.len() as i64);
    assert_eq!(log.sha256, sha_hex(log_text.as_bytes()));
    assert_eq!(
        anon.build_log(&r("alice/tools/app:1.0"), None)
            .await
            .unwrap(),
        log_text
    );

    // gc keeps the SIF and the log, which only the build metadata names.
    let gc = server.admin(&["gc", "--grace", "0s"]);
    assert!(gc.status.success(), "{gc:?}");
    assert_eq!(
        anon.build_log(&r("alice/tools/app:1.0"), None)
            .await
            .unwrap(),
        log_text
    );

    // Pull with the CLI: byte-identical, checksum verified.
    let out = sreg(
        home.path(),
        &env,
        &["pull", "alice/tools/app:1.0", "-o", "pulled.sif"],
        &work,
    );
    assert_eq!(ok(&out).trim(), "pulled.sif");
    assert!(String::from_utf8_lossy(&out.stderr).contains("verified"));
    assert_eq!(std::fs::read(work.join("pulled.sif")).unwrap(), bytes);
    // Refuses to overwrite without --force.
    let again = sreg(
        home.path(),
        &env,
        &["pull", "alice/tools/app:1.0", "-o", "pulled.sif"],
        &work,
    );
    assert!(failed(&again).contains("--force"));
    // The two-part reference names the one visible `tools`, by another tag.
    ok(&sreg(
        home.path(),
        &env,
        &["pull", "tools/app:stable", "-o", "second.sif"],
        &work,
    ));
    assert_eq!(std::fs::read(work.join("second.sif")).unwrap(), bytes);

    // Ranges: 206 with the slice; not counted as a pull unless from byte 0.
    let part = anon
        .file_response(&r("alice/tools/app:1.0"), None, Some("100-199"))
        .await
        .unwrap();
    assert_eq!(part.status().as_u16(), 206);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 100-199/{}", bytes.len()).as_str()
    );
    assert_eq!(part.bytes().await.unwrap().as_ref(), &bytes[100..200]);
    let beyond = anon
        .file_response(
            &r("alice/tools/app:1.0"),
            None,
            Some(&format!("{}-", bytes.len())),
        )
        .await
        .unwrap_err();
    assert_eq!(beyond.status(), Some(416));

    let image = anon.image(&r("alice/tools/app:1.0"), None).await.unwrap();
    assert_eq!(image.downloads, 2, "two whole pulls, ranges not counted");
    let container = anon.container("alice/tools/app").await.unwrap();
    assert_eq!(container.downloads, 2);
    assert_eq!(
        anon.collection("alice", "tools").await.unwrap().downloads,
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_with_metadata_then_pull_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    push_and_pull_scenario(&server, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_and_pull_on_postgresql() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--data-dir", "data", "--database", &pg.url]);
    push_and_pull_scenario(&server, dir.path()).await;
    assert!(
        !dir.path().join("data/sreg.db").exists(),
        "the scenario ran on PostgreSQL"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_of_a_corrupted_blob_fails_and_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let token = server.user_with_token("alice", false);
    let client = Client::new(&server.url, Some(token.clone())).unwrap();
    let bytes = sif_bytes("amd64", 200_000, 3);
    push_bytes(&client, dir.path(), "alice/tools/app:1.0", &bytes, None)
        .await
        .unwrap();

    // Flip one byte in the middle of the stored blob, keeping its size.
    let blob = dir
        .path()
        .join("data/blobs/blobs/sha256")
        .join(sha_hex(&bytes));
    let mut stored = std::fs::read(&blob).unwrap();
    assert_eq!(stored, bytes);
    stored[150_000] ^= 0xff;
    std::fs::write(&blob, &stored).unwrap();

    let home = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let env = [
        ("SREG_REGISTRY", server.url.as_str()),
        ("SREG_TOKEN", token.as_str()),
    ];
    let out = sreg(
        home.path(),
        &env,
        &["pull", "alice/tools/app:1.0", "-o", "out.sif"],
        &work,
    );
    let err = failed(&out);
    assert!(err.contains("sha256"), "{err}");
    assert!(err.contains("nothing was written"), "{err}");
    assert!(
        files_under(&work).is_empty(),
        "no OUT and no partial file: {:?}",
        files_under(&work)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stars_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let alice = Client::new(&server.url, Some(server.user_with_token("alice", false))).unwrap();
    let bob = Client::new(&server.url, Some(server.user_with_token("bob", false))).unwrap();
    let anon = Client::new(&server.url, None).unwrap();
    push_bytes(
        &alice,
        dir.path(),
        "alice/tools/app:1.0",
        &sif_bytes("amd64", 10_000, 1),
        None,
    )
    .await
    .unwrap();

    assert_eq!(
        bob.star("alice/tools/app").await.unwrap(),
        StarState {
            starred: true,
            stars: 1
        }
    );
    // Starring twice is one star.
    assert_eq!(bob.star("alice/tools/app").await.unwrap().stars, 1);
    assert_eq!(alice.star("tools/app").await.unwrap().stars, 2);
    let container = bob.container("alice/tools/app").await.unwrap();
    assert_eq!((container.stars, container.starred), (2, true));
    assert!(!anon.container("alice/tools/app").await.unwrap().starred);
    assert_eq!(
        anon.image(&r("alice/tools/app:1.0"), None)
            .await
            .unwrap()
            .stars,
        2
    );
    let mine = bob.stars().await.unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(
        (
            mine[0].entity.as_str(),
            mine[0].collection.as_str(),
            mine[0].container.as_str(),
            mine[0].stars
        ),
        ("alice", "tools", "app", 2)
    );
    assert_eq!(
        bob.unstar("alice/tools/app").await.unwrap(),
        StarState {
            starred: false,
            stars: 1
        }
    );
    assert!(bob.stars().await.unwrap().is_empty());
    assert_eq!(
        anon.star("alice/tools/app").await.unwrap_err().status(),
        Some(401)
    );
    assert_eq!(
        bob.star("alice/tools/nothing").await.unwrap_err().status(),
        Some(404)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_listed_without_secrets_and_revoked_ones_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let alice = Client::new(&server.url, Some(server.user_with_token("alice", false))).unwrap();
    let created = alice
        .create_token(&NewToken {
            name: "laptop".into(),
            expires_in: Some("30d".into()),
        })
        .await
        .unwrap();
    assert!(created.token.starts_with(&created.info.prefix));
    assert_eq!(created.info.state, "active");
    assert!(created.info.expires_at.is_some());
    let secret = &created.token[created.info.prefix.len()..];

    let laptop = Client::new(&server.url, Some(created.token.clone())).unwrap();
    assert_eq!(laptop.me().await.unwrap().user.name, "alice");

    let listed = alice.tokens().await.unwrap();
    assert_eq!(listed.len(), 2, "the admin-made token and the new one");
    let text = serde_json::to_string(&listed).unwrap();
    assert!(!text.contains(secret), "a listing never shows a secret");
    assert!(text.contains("laptop"));
    let raw = reqwest::get(format!("{}/api/v1/tokens", server.url))
        .await
        .unwrap();
    assert_eq!(
        raw.status().as_u16(),
        401,
        "anonymous callers have no tokens"
    );

    let revoked = alice.revoke_token(created.info.id).await.unwrap();
    assert_eq!(revoked.state, "revoked");
    let err = laptop.me().await.unwrap_err();
    assert_eq!(err.status(), Some(401), "{err}");
    // Refused everywhere, never treated as anonymous.
    assert_eq!(laptop.collections().await.unwrap_err().status(), Some(401));

    // An expired token is refused too.
    let short = alice
        .create_token(&NewToken {
            name: "short".into(),
            expires_in: Some("1s".into()),
        })
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    let short = Client::new(&server.url, Some(short.token)).unwrap();
    assert_eq!(short.me().await.unwrap_err().status(), Some(401));
    let states: Vec<String> = alice
        .tokens()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.state)
        .collect();
    assert_eq!(states, ["active", "revoked", "expired"]);

    // Nobody revokes another user's token.
    let bob = Client::new(&server.url, Some(server.user_with_token("bob", false))).unwrap();
    assert_eq!(
        bob.revoke_token(listed[0].id).await.unwrap_err().status(),
        Some(404)
    );
    assert!(alice.me().await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_and_teams_are_for_admins_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let root = Client::new(&server.url, Some(server.user_with_token("root", true))).unwrap();
    let bob = Client::new(&server.url, Some(server.user_with_token("bob", false))).unwrap();
    let anon = Client::new(&server.url, None).unwrap();

    for (client, status) in [(&bob, 403), (&anon, 401)] {
        assert_eq!(client.users().await.unwrap_err().status(), Some(status));
        assert_eq!(client.teams().await.unwrap_err().status(), Some(status));
        let e = client
            .create_user(&NewUser {
                name: "mallory".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(e.status(), Some(status));
        let e = client
            .create_team(&NewTeam {
                name: "evil".into(),
                owner: "bob".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(e.status(), Some(status));
    }
    assert!(!bob.me().await.unwrap().user.admin);

    let carol = root
        .create_user(&NewUser {
            name: "carol".into(),
            email: "carol@example.org".into(),
            admin: false,
        })
        .await
        .unwrap();
    assert_eq!((carol.name.as_str(), carol.admin), ("carol", false));
    let names: Vec<String> = root
        .users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(names, ["bob", "carol", "root"]);
    assert_eq!(
        root.create_user(&NewUser {
            name: "carol".into(),
            ..Default::default()
        })
        .await
        .unwrap_err()
        .status(),
        Some(409)
    );

    let team = root
        .create_team(&NewTeam {
            name: "lab".into(),
            owner: "carol".into(),
        })
        .await
        .unwrap();
    assert_eq!(team.members.len(), 1);
    let team = root
        .add_team_member(
            "lab",
            &NewTeamMember {
                user: "bob".into(),
                role: None,
            },
        )
        .await
        .unwrap();
    let members: Vec<(String, String)> = team
        .members
        .iter()
        .map(|m| (m.user.clone(), m.role.clone()))
        .collect();
    assert_eq!(
        members,
        [
            ("bob".to_string(), "member".to_string()),
            ("carol".to_string(), "owner".to_string())
        ]
    );
    assert_eq!(root.teams().await.unwrap().len(), 1);
    assert_eq!(bob.me().await.unwrap().teams, ["lab"]);
    // A team member may push to the team's namespace.
    push_bytes(
        &bob,
        dir.path(),
        "lab/tools/app:1.0",
        &sif_bytes("amd64", 5_000, 2),
        None,
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_collections_are_invisible_without_access() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let alice = Client::new(&server.url, Some(server.user_with_token("alice", false))).unwrap();
    let bob = Client::new(&server.url, Some(server.user_with_token("bob", false))).unwrap();
    let anon = Client::new(&server.url, None).unwrap();
    let bytes = sif_bytes("amd64", 20_000, 5);
    let image = push_bytes(
        &alice,
        dir.path(),
        "alice/secret/app:1.0",
        &bytes,
        Some(true),
    )
    .await
    .unwrap();
    assert!(image.private);
    push_bytes(
        &alice,
        dir.path(),
        "alice/open/app:1.0",
        &sif_bytes("amd64", 20_000, 6),
        None,
    )
    .await
    .unwrap();

    for client in [&bob, &anon] {
        assert_eq!(
            client
                .image(&r("alice/secret/app:1.0"), None)
                .await
                .unwrap_err()
                .status(),
            Some(404)
        );
        assert_eq!(
            client
                .image(&r("secret/app:1.0"), None)
                .await
                .unwrap_err()
                .status(),
            Some(404)
        );
        assert_eq!(
            client
                .container("alice/secret/app")
                .await
                .unwrap_err()
                .status(),
            Some(404)
        );
        assert_eq!(
            client
                .collection("alice", "secret")
                .await
                .unwrap_err()
                .status(),
            Some(404)
        );
        assert_eq!(
            client
                .file_response(&r("alice/secret/app:1.0"), None, None)
                .await
                .unwrap_err()
                .status(),
            Some(404)
        );
        let names: Vec<String> = client
            .collections()
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, ["open"]);
        let sizes: Vec<String> = client
            .sizes()
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.collection)
            .collect();
        assert_eq!(sizes, ["open"]);
        let found = client.search("app").await.unwrap();
        assert!(
            found.containers.iter().all(|k| k.collection == "open"),
            "{found:?}"
        );
        assert_eq!(found.containers.len(), 1);
        assert_eq!(client.search("secret").await.unwrap().collections.len(), 0);
    }
    // The owner sees it all.
    assert!(alice.image(&r("secret/app:1.0"), None).await.is_ok());
    assert_eq!(alice.collections().await.unwrap().len(), 2);
    assert_eq!(alice.search("secret").await.unwrap().collections.len(), 1);
    // Bob may not push there either, and learns nothing more than a refusal.
    let e = push_bytes(&bob, dir.path(), "alice/secret/app:2.0", &bytes, None)
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(403), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_and_bad_pushes_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let alice = Client::new(&server.url, Some(server.user_with_token("alice", false))).unwrap();
    let anon = Client::new(&server.url, None).unwrap();
    let forged = Client::new(&server.url, Some(format!("sreg_{}", "x".repeat(40)))).unwrap();
    let bytes = sif_bytes("amd64", 50_000, 9);

    for client in [&anon, &forged] {
        let e = push_bytes(client, dir.path(), "alice/tools/app:1.0", &bytes, None)
            .await
            .unwrap_err();
        assert_eq!(e.status(), Some(401), "{e}");
    }
    // The CLI says what to do.
    let home = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.sif"), &bytes).unwrap();
    let err = failed(&sreg(
        home.path(),
        &[("SREG_REGISTRY", server.url.as_str())],
        &["push", "app.sif", "alice/tools/app:1.0"],
        dir.path(),
    ));
    assert!(err.contains("sreg login"), "{err}");
    let err = failed(&sreg(
        home.path(),
        &[],
        &["pull", "alice/tools/app:1.0"],
        dir.path(),
    ));
    assert!(
        err.contains("no registry: run `sreg login URL` or set SREG_REGISTRY"),
        "{err}"
    );

    // Declared one thing, sent another: refused, nothing visible.
    let file = dir.path().join("other.sif");
    std::fs::write(&file, sif_bytes("amd64", 50_000, 10)).unwrap();
    let session = alice
        .start_upload(&UploadRequest {
            reference: "alice/tools/app:1.0".into(),
            size: bytes.len() as u64,
            sha256: Some(sha_hex(&bytes)),
            arch: Some("amd64".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let e = alice.upload_image(&session, &file, None).await.unwrap_err();
    assert_eq!(e.status(), Some(400), "{e}");
    assert!(e.to_string().contains("sha256"), "{e}");
    // Not a SIF.
    let junk = b"this is not a SIF file, just text".repeat(100);
    let e = push_bytes(&alice, dir.path(), "alice/tools/app:1.0", &junk, None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not a valid SIF"), "{e}");
    // Declared arm64, but the SIF is amd64.
    let file = dir.path().join("amd64.sif");
    std::fs::write(&file, &bytes).unwrap();
    let session = alice
        .start_upload(&UploadRequest {
            reference: "alice/tools/app:1.0".into(),
            size: bytes.len() as u64,
            sha256: Some(sha_hex(&bytes)),
            arch: Some("arm64".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let e = alice.upload_image(&session, &file, None).await.unwrap_err();
    assert!(e.to_string().contains("for amd64, not for arm64"), "{e}");
    // Bad references and tags are refused before any byte.
    for reference in ["alice/Tools/app", "alice/tools/app:sha256.00", "a/b/c/d/e"] {
        let e = alice
            .start_upload(&UploadRequest {
                reference: reference.into(),
                size: 10,
                sha256: Some(sha_hex(b"x")),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(e.status(), Some(400), "{reference}: {e}");
    }
    assert!(
        alice.collections().await.unwrap().is_empty(),
        "nothing was created"
    );
    assert!(
        files_under(&dir.path().join("data/blobs"))
            .iter()
            .all(|p| !p.to_string_lossy().contains("/blobs/sha256/")
                || p.file_name().unwrap().to_string_lossy() == sha_hex(&bytes)),
        "only the verified SIF may have reached a content address"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_part_references_resolve_or_answer_409() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let alice = Client::new(&server.url, Some(server.user_with_token("alice", false))).unwrap();
    let bob = Client::new(&server.url, Some(server.user_with_token("bob", false))).unwrap();
    let carol = Client::new(&server.url, Some(server.user_with_token("carol", false))).unwrap();
    // A two-part push with no visible `tools` creates alice/tools.
    let image = push_bytes(
        &alice,
        dir.path(),
        "tools/app:1.0",
        &sif_bytes("amd64", 5_000, 1),
        None,
    )
    .await
    .unwrap();
    assert_eq!(image.reference, "alice/tools/app:1.0");
    // Bob sees alice's public `tools`, but may not push to it.
    let e = push_bytes(
        &bob,
        dir.path(),
        "tools/app:2.0",
        &sif_bytes("amd64", 5_000, 2),
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(e.status(), Some(403), "{e}");
    push_bytes(
        &bob,
        dir.path(),
        "bob/tools/app:1.0",
        &sif_bytes("amd64", 5_000, 3),
        None,
    )
    .await
    .unwrap();
    // Now two `tools` are visible: a clear 409 naming both.
    let e = carol.image(&r("tools/app:1.0"), None).await.unwrap_err();
    assert_eq!(e.status(), Some(409));
    let msg = e.to_string();
    assert!(
        msg.contains("alice/tools") && msg.contains("bob/tools"),
        "{msg}"
    );
    let e = push_bytes(
        &carol,
        dir.path(),
        "tools/app:1.0",
        &sif_bytes("amd64", 5_000, 4),
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(e.status(), Some(409));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sizes_count_distinct_blobs_per_collection() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let alice = Client::new(&server.url, Some(server.user_with_token("alice", false))).unwrap();
    let a = sif_bytes("amd64", 40_000, 1);
    let b = sif_bytes("amd64", 70_000, 2);
    let c = sif_bytes("amd64", 10_000, 3);
    // The same content in two containers of one collection counts once.
    push_bytes(&alice, dir.path(), "alice/big/one:1.0", &a, None)
        .await
        .unwrap();
    push_bytes(&alice, dir.path(), "alice/big/one:2.0", &b, None)
        .await
        .unwrap();
    push_bytes(&alice, dir.path(), "alice/big/two:1.0", &a, None)
        .await
        .unwrap();
    push_bytes(&alice, dir.path(), "alice/small/x:1.0", &c, None)
        .await
        .unwrap();
    let sizes = Client::new(&server.url, None)
        .unwrap()
        .sizes()
        .await
        .unwrap();
    let got: Vec<(String, i64, i64)> = sizes
        .iter()
        .map(|s| {
            (
                format!("{}/{}", s.entity, s.collection),
                s.bytes,
                s.containers,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("alice/big".to_string(), (a.len() + b.len()) as i64, 2),
            ("alice/small".to_string(), c.len() as i64, 1),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_from_the_api_and_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let token = server.user_with_token("alice", false);
    let alice = Client::new(&server.url, Some(token.clone())).unwrap();
    push_bytes(
        &alice,
        dir.path(),
        "alice/genomics/samtools:1.19",
        &sif_bytes("amd64", 5_000, 1),
        None,
    )
    .await
    .unwrap();
    push_bytes(
        &alice,
        dir.path(),
        "alice/genomics/bwa:0.7",
        &sif_bytes("amd64", 5_000, 2),
        None,
    )
    .await
    .unwrap();
    push_bytes(
        &alice,
        dir.path(),
        "alice/chem/gromacs:2024",
        &sif_bytes("amd64", 5_000, 3),
        None,
    )
    .await
    .unwrap();
    let anon = Client::new(&server.url, None).unwrap();
    let found = anon.search("SAMTOOLS").await.unwrap();
    let names: Vec<&str> = found.containers.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(names, ["samtools"]);
    assert_eq!(found.containers[0].tags, ["1.19"]);
    let found = anon.search("genomics").await.unwrap();
    assert_eq!(found.collections.len(), 1);
    assert_eq!(
        found.containers.len(),
        2,
        "a collection hit lists its containers"
    );
    assert!(
        anon.search("2024").await.unwrap().containers[0].name == "gromacs",
        "tags match"
    );
    assert!(
        anon.search("nothing-like-this")
            .await
            .unwrap()
            .containers
            .is_empty()
    );
    assert!(
        anon.search("%").await.unwrap().containers.is_empty(),
        "LIKE wildcards are literal"
    );

    let home = tempfile::tempdir().unwrap();
    let env = [("SREG_REGISTRY", server.url.as_str())];
    let out = ok(&sreg(
        home.path(),
        &env,
        &["search", "samtools"],
        dir.path(),
    ));
    assert!(
        out.contains("alice/genomics/samtools") && out.contains("1.19"),
        "{out}"
    );
    assert!(!out.contains("bwa"), "{out}");
    let json = ok(&sreg(
        home.path(),
        &env,
        &["search", "gromacs", "--json"],
        dir.path(),
    ));
    let parsed: SearchResults = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed.containers[0].name, "gromacs");
    let out = ok(&sreg(home.path(), &env, &["search", "zzz"], dir.path()));
    assert!(out.contains("Nothing matches"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_json_bodies_get_the_error_envelope() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let token = server.user_with_token("alice", false);
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/uploads", server.url);
    let send = |body: Vec<u8>, content_type: &'static str| {
        http.post(&url)
            .bearer_auth(&token)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let cases: Vec<(Vec<u8>, &str, u16, &str)> = vec![
        (b"{not json".to_vec(), "application/json", 400, "JSON body"),
        (
            br#"{"reference":"alice/a/b","size":1,"sha256":"00","bogus":1}"#.to_vec(),
            "application/json",
            400,
            "unknown field",
        ),
        (
            br#"{"reference":"alice/a/b"}"#.to_vec(),
            "text/plain",
            415,
            "application/json",
        ),
        (vec![b' '; 2 << 20], "application/json", 413, "larger than"),
    ];
    for (body, ct, status, needle) in cases {
        let resp = send(body, ct).await.unwrap();
        assert_eq!(resp.status().as_u16(), status);
        let body: ErrorBody = resp.json().await.unwrap();
        assert_eq!(body.error.code, status);
        assert!(
            body.error.message.contains(needle),
            "{}",
            body.error.message
        );
    }
}

/// An example value for a path parameter of the OpenAPI document.
fn example(param: &str) -> &'static str {
    match param {
        "reference" => "alice/tools/app:1.0",
        "path" => "alice/tools/app",
        "entity" => "alice",
        "collection" => "tools",
        "id" => "1",
        "team" => "lab",
        other => panic!("no example for path parameter {other:?}: add one"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_lists_every_route_the_router_serves() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let doc: serde_json::Value = reqwest::get(format!("{}/api/openapi.json", server.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let paths = doc["paths"].as_object().expect("paths");
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

    let mut documented = BTreeSet::new();
    let http = reqwest::Client::new();
    for (path, item) in paths {
        assert!(path.starts_with("/api/v1/"), "{path}");
        assert!(
            !path.contains('*'),
            "OpenAPI templates have no wildcards: {path}"
        );
        // Every schema a response names is in the document.
        for r in item
            .to_string()
            .split("\"$ref\":\"#/components/schemas/")
            .skip(1)
        {
            let name = r.split('"').next().unwrap();
            assert!(
                schemas.contains_key(name),
                "{path} names missing schema {name}"
            );
        }
        let mut concrete = path.clone();
        while let Some(start) = concrete.find('{') {
            let end = concrete[start..].find('}').unwrap() + start;
            let name = concrete[start + 1..end].to_string();
            concrete.replace_range(start..=end, example(&name));
        }
        let url = format!("{}{concrete}", server.url);
        for method in METHODS {
            let served = http
                .request(method.to_uppercase().parse().unwrap(), &url)
                .send()
                .await
                .unwrap();
            let status = served.status().as_u16();
            let body = served.text().await.unwrap();
            let routed = status != 405 && !body.contains("no such /api/v1 route");
            if item.get(method).is_some() {
                documented.insert(format!("{} {path}", method.to_uppercase()));
                assert!(
                    routed,
                    "{method} {path} is documented but not served: {status} {body}"
                );
                let op = &item[method];
                assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()));
                if path.contains('{') {
                    assert!(
                        op["parameters"].is_array(),
                        "{method} {path} documents its parameters"
                    );
                }
            } else {
                // The router refuses what the document does not list, in the envelope.
                assert_eq!(
                    status, 405,
                    "{method} {path} is served but not documented: {body}"
                );
                let e: ErrorBody = serde_json::from_str(&body).unwrap();
                assert_eq!(e.error.code, 405);
            }
        }
    }
    // What `sreg` and the client use is all there.
    let expected = [
        "GET /api/v1/me",
        "GET /api/v1/collections",
        "POST /api/v1/collections",
        "GET /api/v1/collections/{entity}/{collection}",
        "GET /api/v1/containers/{path}",
        "GET /api/v1/images/{reference}",
        "GET /api/v1/files/{reference}",
        "GET /api/v1/logs/{reference}",
        "GET /api/v1/stars",
        "PUT /api/v1/stars/{path}",
        "DELETE /api/v1/stars/{path}",
        "GET /api/v1/tokens",
        "POST /api/v1/tokens",
        "DELETE /api/v1/tokens/{id}",
        "POST /api/v1/register",
        "GET /api/v1/users",
        "POST /api/v1/users",
        "GET /api/v1/teams",
        "POST /api/v1/teams",
        "GET /api/v1/teams/{team}",
        "PUT /api/v1/teams/{team}/members",
        "GET /api/v1/sizes",
        "GET /api/v1/search",
        "POST /api/v1/uploads",
        "PUT /api/v1/uploads/{id}/log",
        "POST /api/v1/uploads/{id}/commit",
        "PUT /api/v1/uploads/{id}/image",
        "GET /api/v1/projects",
        "POST /api/v1/projects",
        "GET /api/v1/projects/{id}",
        "PATCH /api/v1/projects/{id}",
        "DELETE /api/v1/projects/{id}",
        "GET /api/v1/builds",
        "GET /api/v1/builds/{id}",
        "POST /api/v1/builds/{id}/cancel",
        "GET /api/v1/builds/{id}/log",
        "POST /api/v1/agent/lease",
        "POST /api/v1/agent/jobs/{id}/heartbeat",
        "POST /api/v1/agent/jobs/{id}/log",
        "POST /api/v1/agent/jobs/{id}/finish",
        "POST /api/v1/hooks/github",
        "POST /api/v1/hooks/gitlab",
        "POST /api/v1/hooks/gitea",
    ];
    let expected: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
    assert_eq!(documented, expected);
    // Paths outside the document are no route.
    let resp = http
        .get(format!("{}/api/v1/no/such/thing", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    assert!(resp.text().await.unwrap().contains("no such /api/v1 route"));
}

#[test]
fn login_saves_a_private_file_and_ci_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let token = server.user_with_token("alice", false);
    let home = tempfile::tempdir().unwrap();

    let out = sreg(
        home.path(),
        &[],
        &["login", &server.url, "--token", &token],
        dir.path(),
    );
    assert!(ok(&out).contains("as alice"));
    let config = home.path().join(".config/sreg/config.toml");
    let mode = std::fs::metadata(&config).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the token file is readable by its owner only");
    let dir_mode = std::fs::metadata(config.parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700);
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.contains(&token) && text.contains(&server.url),
        "{text}"
    );
    // Later commands use it with no environment at all.
    ok(&sreg(home.path(), &[], &["search", "x"], dir.path()));

    // The token from stdin, into $XDG_CONFIG_HOME.
    let xdg = home.path().join("xdg");
    let mut child = Command::new(bin("sreg"))
        .args(["login", &server.url])
        .env_clear()
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", &xdg)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    writeln!(child.stdin.take().unwrap(), "{token}").unwrap();
    let out = child.wait_with_output().unwrap();
    ok(&out);
    let mode = std::fs::metadata(xdg.join("sreg/config.toml"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);

    // On a terminal, the token is prompted for without echo (`script` gives
    // sreg a pseudo-terminal; what is typed would show in its output if echoed).
    let tty_home = tempfile::tempdir().unwrap();
    let mut child = Command::new("script")
        .args([
            "-qec",
            &format!("{} login {}", bin("sreg").display(), server.url),
        ])
        .arg("/dev/null")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", tty_home.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script(1) from util-linux");
    let mut stdin = child.stdin.take().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    writeln!(stdin, "{token}").unwrap();
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("Token for"), "{shown}");
    assert!(shown.contains("as alice"), "{shown}");
    assert!(!shown.contains(&token), "the token was echoed: {shown}");
    assert!(tty_home.path().join(".config/sreg/config.toml").is_file());

    // A bad token is refused and nothing is saved.
    let other = tempfile::tempdir().unwrap();
    let err = failed(&sreg(
        other.path(),
        &[],
        &[
            "login",
            &server.url,
            "--token",
            "sreg_nottherightoneatallxxxxxxxxxxxxxxxxxxxxx",
        ],
        dir.path(),
    ));
    assert!(err.contains("refused this token"), "{err}");
    assert!(files_under(other.path()).is_empty());

    // CI: SREG_REGISTRY and SREG_TOKEN are used, and nothing is written.
    let ci_home = tempfile::tempdir().unwrap();
    let env = [
        ("CI", "true"),
        ("SREG_REGISTRY", server.url.as_str()),
        ("SREG_TOKEN", token.as_str()),
    ];
    let out = ok(&sreg(
        ci_home.path(),
        &env,
        &["login", &server.url],
        dir.path(),
    ));
    assert!(out.contains("Nothing was saved"), "{out}");
    // Even with --token, CI saves nothing.
    ok(&sreg(
        ci_home.path(),
        &env,
        &["login", &server.url, "--token", &token],
        dir.path(),
    ));
    std::fs::write(dir.path().join("ci.sif"), sif_bytes("amd64", 5_000, 1)).unwrap();
    ok(&sreg(
        ci_home.path(),
        &env,
        &["push", "ci.sif", "alice/ci/app:1.0"],
        dir.path(),
    ));
    ok(&sreg(
        ci_home.path(),
        &env,
        &["pull", "alice/ci/app:1.0", "-o", "ci-out.sif"],
        dir.path(),
    ));
    assert!(
        files_under(ci_home.path()).is_empty(),
        "CI wrote {:?}",
        files_under(ci_home.path())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_limits_and_architectures_apply_to_pushes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("sreg.toml"),
        "[registry]\nmax_image_size = 100000\nuser_collection_limit = 1\n",
    )
    .unwrap();
    let server = Server::start(dir.path(), &["--data-dir", "data", "--config", "sreg.toml"]);
    let token = server.user_with_token("alice", false);
    let alice = Client::new(&server.url, Some(token.clone())).unwrap();

    // Over max_image_size: refused before any byte is sent.
    let e = alice
        .start_upload(&UploadRequest {
            reference: "alice/tools/app:1.0".into(),
            size: 100_001,
            sha256: Some(sha_hex(b"x")),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(413), "{e}");

    // One tag, two architectures; pull picks by --arch, amd64 by default.
    let amd = sif_bytes("amd64", 20_000, 1);
    let arm = sif_bytes("arm64", 20_000, 2);
    push_bytes(&alice, dir.path(), "alice/tools/app:1.0", &amd, None)
        .await
        .unwrap();
    let file = dir.path().join("arm.sif");
    std::fs::write(&file, &arm).unwrap();
    let session = alice
        .start_upload(&UploadRequest {
            reference: "alice/tools/app:1.0".into(),
            size: arm.len() as u64,
            sha256: Some(sha_hex(&arm)),
            arch: Some("arm64".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        alice
            .upload_image(&session, &file, None)
            .await
            .unwrap()
            .arch,
        "arm64"
    );
    let home = tempfile::tempdir().unwrap();
    let env = [
        ("SREG_REGISTRY", server.url.as_str()),
        ("SREG_TOKEN", token.as_str()),
    ];
    for (arch, bytes) in [("arm64", &arm), ("amd64", &amd)] {
        let out = format!("{arch}.sif");
        ok(&sreg(
            home.path(),
            &env,
            &["pull", "alice/tools/app:1.0", "--arch", arch, "-o", &out],
            dir.path(),
        ));
        assert_eq!(&std::fs::read(dir.path().join(&out)).unwrap(), bytes);
    }
    ok(&sreg(
        home.path(),
        &env,
        &["pull", "alice/tools/app:1.0", "-o", "default.sif"],
        dir.path(),
    ));
    assert_eq!(std::fs::read(dir.path().join("default.sif")).unwrap(), amd);

    // user_collection_limit = 1: a second collection is refused, pushes to
    // the first go on.
    let e = push_bytes(
        &alice,
        dir.path(),
        "alice/other/app:1.0",
        &sif_bytes("amd64", 5_000, 3),
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(e.status(), Some(403), "{e}");
    assert!(e.to_string().contains("limit"), "{e}");
    push_bytes(
        &alice,
        dir.path(),
        "alice/tools/more:1.0",
        &sif_bytes("amd64", 5_000, 4),
        None,
    )
    .await
    .unwrap();
}

#[test]
fn registration_follows_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let signup = |url: &str, name: &str| {
        reqwest::blocking::Client::new()
            .post(format!("{url}/api/v1/register"))
            .json(&serde_json::json!({"name": name, "email": "x@example.org"}))
            .send()
            .unwrap()
    };

    // Closed by default: nobody signs themselves up, and the answer says whom to ask.
    std::fs::write(
        dir.path().join("closed.toml"),
        "[registry]\nhelp_contact = \"hpc@example.org\"\n",
    )
    .unwrap();
    let server = Server::start(
        dir.path(),
        &["--data-dir", "closed", "--config", "closed.toml"],
    );
    let r = signup(&server.url, "mallory");
    assert_eq!(r.status(), 403);
    let body: serde_json::Value = r.json().unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ask hpc@example.org"),
        "{body}"
    );
    drop(server);

    // Open: an account and a first token that works at once, never an admin.
    std::fs::write(
        dir.path().join("open.toml"),
        "[registry]\nregistration = \"open\"\n",
    )
    .unwrap();
    let server = Server::start(dir.path(), &["--data-dir", "open", "--config", "open.toml"]);
    let r = signup(&server.url, "carol");
    assert_eq!(r.status(), 201);
    let body: serde_json::Value = r.json().unwrap();
    assert_eq!(body["user"]["admin"], false);
    let token = body["token"]["token"].as_str().unwrap().to_string();
    let me: serde_json::Value = reqwest::blocking::Client::new()
        .get(format!("{}/api/v1/me", server.url))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(me["name"], "carol");
    assert_eq!(
        signup(&server.url, "carol").status(),
        409,
        "names stay unique"
    );
    assert_eq!(signup(&server.url, "Bad/Name").status(), 400);
}

/// `sreg push` reads its file once: the session opens without a sha256, the
/// image `PUT` is checked and held (202), and only a `commit` with the same
/// hash publishes it.
#[tokio::test]
async fn an_image_sent_without_its_hash_waits_for_the_right_commit() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let token = server.user_with_token("alice", false);
    let client = Client::new(&server.url, Some(token.clone())).unwrap();
    let http = reqwest::Client::new();
    let bytes = sif_bytes("amd64", 200_000, 77);
    let open = |reference: &'static str| {
        let client = &client;
        let len = bytes.len() as u64;
        async move {
            client
                .start_upload(&UploadRequest {
                    reference: reference.into(),
                    size: len,
                    sha256: None,
                    ..Default::default()
                })
                .await
                .unwrap()
        }
    };
    let put = |session: &UploadSession| {
        http.put(format!(
            "{}/api/v1/uploads/{}/image",
            server.url, session.id
        ))
        .bearer_auth(&token)
        .body(bytes.clone())
        .send()
    };
    let commit = |session: &UploadSession, sha: String| {
        http.post(format!(
            "{}/api/v1/uploads/{}/commit",
            server.url, session.id
        ))
        .bearer_auth(&token)
        .json(&UploadCommit { sha256: sha })
        .send()
    };
    let visible = |reference: &'static str| {
        let client = &client;
        async move { client.image(&r(reference), None).await.is_ok() }
    };

    // A commit before any image, then a second image: both refused.
    let s = open("alice/tools/held:v1").await;
    assert_eq!(commit(&s, sha_hex(&bytes)).await.unwrap().status(), 409);
    let held = put(&s).await.unwrap();
    assert_eq!(held.status(), 202);
    let received: UploadReceived = held.json().await.unwrap();
    assert_eq!(received.sha256, sha_hex(&bytes));
    assert_eq!(received.size, bytes.len() as u64);
    assert!(!visible("alice/tools/held:v1").await, "held, not published");
    assert_eq!(put(&s).await.unwrap().status(), 409);

    // The wrong hash publishes nothing and ends the session.
    let wrong = "0".repeat(64);
    let refused = commit(&s, wrong).await.unwrap();
    assert_eq!(refused.status(), 400);
    let body: ErrorBody = refused.json().await.unwrap();
    assert!(
        body.error.message.contains("corrupted on the way"),
        "{}",
        body.error.message
    );
    assert!(!visible("alice/tools/held:v1").await);
    assert_eq!(commit(&s, sha_hex(&bytes)).await.unwrap().status(), 404);

    // The right hash publishes, with the tag.
    let s = open("alice/tools/held:v2").await;
    assert_eq!(put(&s).await.unwrap().status(), 202);
    let done = commit(&s, sha_hex(&bytes)).await.unwrap();
    assert_eq!(done.status(), 201);
    let image: Image = done.json().await.unwrap();
    assert_eq!(image.sha256, sha_hex(&bytes));
    assert!(visible("alice/tools/held:v2").await);

    // The client does the same in one call.
    let file = dir.path().join("x.sif");
    std::fs::write(&file, &bytes).unwrap();
    let s = open("alice/tools/held:v3").await;
    let image = client.upload_image(&s, &file, None).await.unwrap();
    assert_eq!(image.sha256, sha_hex(&bytes));
}
