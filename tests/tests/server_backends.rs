//! `sreg-server` on the backends a larger site uses: a real PostgreSQL
//! server and a real S3-compatible object store, both started by the test.

use sreg_tests::Server;
use sreg_tests::postgres::Postgres;
use sreg_tests::s3::S3Server;

fn healthz(url: &str) -> (u16, serde_json::Value) {
    let resp = reqwest::blocking::get(format!("{url}/healthz")).unwrap();
    (resp.status().as_u16(), resp.json().unwrap())
}

#[test]
fn postgres_database_is_migrated_and_answers() {
    let pg = Postgres::start();
    let cwd = tempfile::tempdir().unwrap();
    let server = Server::start(cwd.path(), &["--database", &pg.url]);
    let (status, body) = healthz(&server.url);
    assert_eq!(status, 200, "{body}");
    assert!(
        !cwd.path().join("sreg-data/sreg.db").exists(),
        "no SQLite file when PostgreSQL is configured"
    );
    assert!(server.stop().success());
    let out = std::process::Command::new("psql")
        .args([
            &pg.url,
            "-tAc",
            "SELECT count(*) FROM _sqlx_migrations WHERE success",
        ])
        .output()
        .unwrap();
    let applied = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let files =
        std::fs::read_dir(sreg_tests::workspace_root().join("registry-server/migrations/postgres"))
            .unwrap()
            .count();
    assert_eq!(
        applied,
        files.to_string(),
        "migrations applied to PostgreSQL: {out:?}"
    );
    // A restart finds the schema in place.
    let again = Server::start(cwd.path(), &["--database", &pg.url]);
    assert_eq!(healthz(&again.url).0, 200);
}

#[test]
fn s3_storage_takes_writes_and_a_missing_bucket_stops_start_up() {
    let s3 = S3Server::start();
    s3.create_bucket("images");
    let cwd = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(cwd.path(), &["--storage", "s3://images/sreg"], &s3.env());
    let (status, body) = healthz(&server.url);
    assert_eq!(status, 200, "{body}");
    assert!(
        s3.keys("images").is_empty(),
        "the write probe cleans up after itself"
    );
    drop(server);

    // A bucket that does not exist: the server refuses to start, naming the storage.
    let out = std::process::Command::new(sreg_tests::bin("sreg-server"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--storage",
            "s3://nosuchbucket/x",
        ])
        .current_dir(cwd.path())
        .envs(s3.env())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("reaching storage s3://nosuchbucket/x"),
        "{stderr}"
    );
    assert!(!stderr.contains("testing"), "credentials leaked: {stderr}");
}
