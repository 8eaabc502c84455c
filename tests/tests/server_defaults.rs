//! `sreg-server serve` on its embedded defaults: SQLite and a local folder
//! under `./sreg-data`, exactly as the README tells a newcomer to run it.

use std::process::Command;

use sreg_tests::{Server, bin};

fn health(url: &str) -> (u16, serde_json::Value) {
    let resp = reqwest::blocking::get(format!("{url}/healthz")).unwrap();
    (resp.status().as_u16(), resp.json().unwrap())
}

#[test]
fn serves_on_embedded_defaults_and_restarts_on_the_same_data() {
    let cwd = tempfile::tempdir().unwrap();
    let server = Server::start_embedded(cwd.path(), &[]);
    let (status, body) = health(&server.url);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["database"], "ok");
    assert_eq!(body["storage"], "ok");
    let data = cwd.path().join("sreg-data");
    assert!(data.join("sreg.db").is_file());
    assert!(data.join("blobs").is_dir());
    assert!(server.stop().success(), "SIGTERM is a clean shutdown");

    // A second start finds the migrated database and changes nothing.
    let server = Server::start_embedded(cwd.path(), &[]);
    assert_eq!(health(&server.url).0, 200);
    assert!(server.stop().success());
}

#[test]
fn health_reports_storage_that_cannot_take_writes() {
    let cwd = tempfile::tempdir().unwrap();
    let blobs = cwd.path().join("blobs");
    let storage = format!("file://{}/", blobs.display());
    let server = Server::start_embedded(cwd.path(), &["--storage", &storage]);
    assert_eq!(health(&server.url).0, 200);
    // A plain file where the blob folder was: no object can be written below it.
    std::fs::remove_dir_all(&blobs).unwrap();
    std::fs::write(&blobs, "").unwrap();
    let (status, body) = health(&server.url);
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["storage"], "unavailable");
    assert_eq!(body["database"], "ok");
}

#[test]
fn bad_settings_fail_before_serving_with_a_clear_message() {
    let cwd = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--database", "mysql://u:topsecret@h/db"],
            "use sqlite://PATH or postgres://",
        ),
        (
            &["--storage", "not a url"],
            "use file:///PATH or s3://bucket/prefix",
        ),
        (&["--listen", "nowhere"], "not of the form HOST:PORT"),
        (
            &["--config", "/nonexistent/sreg.toml"],
            "cannot read config file",
        ),
    ];
    for (args, expected) in cases {
        let out = Command::new(bin("sreg-server"))
            .arg("serve")
            .args(*args)
            .current_dir(cwd.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} started");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("topsecret"), "password leaked: {stderr}");
    }
}

#[test]
fn migrate_acts_on_the_same_registry_as_serve() {
    let cwd = tempfile::tempdir().unwrap();
    let out = Command::new(bin("sreg-server"))
        .args(["migrate", "--data-dir", "d"])
        .current_dir(cwd.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(cwd.path().join("d/sreg.db").is_file());
}
