//! The sregistry-cli harness (`sreg_tests::sregistry_cli`): it runs from the
//! venv, keeps its files private, and against a request recorder sends what
//! shared/docs/ci-and-clients.md §1 says — which pins what sreg-server's
//! sregistry-compatible routes must accept (and how the client misreports).

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::SystemTime;

use serde_json::json;
use sreg_tests::capture::{CaptureServer, Captured, Reply};
use sreg_tests::free_port;
use sreg_tests::sregistry_cli::{SregistryCli, sregistry_auth_header, sregistry_timestamp};

const USER: &str = "alice";
const TOKEN: &str = "tok-123";

/// The header the client must have sent for `kind` on coll/name:tag, signed
/// within the hour of `before` or `after` (a run may cross the hour).
fn assert_signed(req: &Captured, kind: &str, before: SystemTime) {
    let got = req.header("Authorization").expect("Authorization header");
    let expected: Vec<_> = [before, SystemTime::now()]
        .map(|t| {
            sregistry_auth_header(
                kind,
                USER,
                TOKEN,
                &sregistry_timestamp(t),
                ("coll", "name", "tag"),
            )
        })
        .into();
    assert!(
        expected.iter().any(|e| e == got),
        "{got} not in {expected:?}"
    );
    // The credential names the user in base64: "alice" -> "YWxpY2U=".
    assert!(got.starts_with(&format!(
        "SREGISTRY-HMAC-SHA256 Credential={kind}/YWxpY2U=/"
    )));
}

/// The home folder of the passwd entry: where sregistry writes by default.
fn passwd_home() -> PathBuf {
    let out = Command::new("sh")
        .args(["-c", "getent passwd \"$(id -u)\" | cut -d: -f6"])
        .output()
        .unwrap();
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// Entries below `dir` modified since `t`.
fn touched_since(dir: &std::path::Path, t: SystemTime) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|m| m >= t)
        {
            found.push(path.clone());
        }
        if path.is_dir() {
            found.extend(touched_since(&path, t));
        }
    }
    found
}

#[test]
fn runs_from_the_venv() {
    let cli = SregistryCli::new("http://127.0.0.1:1", USER, TOKEN);
    let v = cli.version();
    v.assert_success();
    assert_eq!(v.stdout.trim(), "0.2.39");
    let help = cli.run(&["--help"]);
    help.assert_success();
    for cmd in ["push", "pull", "search", "delete"] {
        assert!(help.stdout.contains(cmd), "{help}");
    }
}

#[test]
fn secrets_stay_private_in_the_tempdir() {
    let url = format!("http://127.0.0.1:{}", free_port());
    let cli = SregistryCli::new(&url, USER, TOKEN);
    let secrets = cli.secrets_path();
    assert!(secrets.starts_with(cli.dir()));
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&secrets), 0o600);
    assert_eq!(mode(cli.dir()), 0o700);
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&secrets).unwrap()).unwrap();
    assert_eq!(
        written,
        json!({"registry": {"token": TOKEN, "username": USER, "base": url}})
    );

    // Nothing listens there: the search fails, but only after the client has
    // read the file and written its settings back (still 0600).
    let run = cli.search(None);
    assert!(!run.success(), "{run}");
    let rewritten: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&secrets).unwrap()).unwrap();
    assert_eq!(
        rewritten["registry"]["SREGISTRY_REGISTRY_BASE"],
        url.as_str()
    );
    assert_eq!(mode(&secrets), 0o600);

    let pull = cli.pull("coll/name:tag");
    assert!(!pull.run.success(), "{}", pull.run);
    assert_eq!(pull.path, None);
}

#[test]
fn pull_asks_anonymously_then_signs_then_downloads() {
    let server = CaptureServer::start(|req| match (req.method.as_str(), req.path()) {
        ("GET", "/api/container/coll/name:tag") if req.header("Authorization").is_none() => {
            Reply::status(403)
        }
        ("GET", "/api/container/coll/name:tag") => Reply::json(
            200,
            &json!({"id": 1, "name": "name", "tag": "tag", "version": "sha256.00",
                    "collection": "coll", "add_date": "2024-01-01T00:00:00Z", "metrics": {},
                    "frozen": false, "metadata": {},
                    "image": format!("http://{}/blob/secret-1", req.header("Host").unwrap())}),
        ),
        (_, "/blob/secret-1") => Reply::bytes(200, b"SIF bytes".to_vec()),
        _ => Reply::status(404),
    });
    let cli = SregistryCli::new(&server.url, USER, TOKEN);
    let home = passwd_home().join(".singularity");
    let home_existed = home.exists();
    let before = SystemTime::now();

    let pulled = cli.pull("coll/name:tag");
    pulled.run.assert_success();
    let path = pulled.path.expect("the client names the file it wrote");
    assert!(path.starts_with(cli.dir()), "{}", path.display());
    assert_eq!(path.file_name().unwrap(), "coll-name:tag.sif");
    assert_eq!(std::fs::read(&path).unwrap(), b"SIF bytes");

    assert_eq!(
        server.lines(),
        [
            "GET /api/container/coll/name:tag",
            "GET /api/container/coll/name:tag",
            "HEAD /blob/secret-1",
            "GET /blob/secret-1",
        ]
    );
    let reqs = server.requests();
    assert_signed(&reqs[1], "pull", before);
    // The download goes without credentials: the URL must carry its own secret.
    assert!(
        reqs[2..]
            .iter()
            .all(|r| r.header("Authorization").is_none())
    );
    if home_existed {
        assert_eq!(touched_since(&home, before), Vec::<PathBuf>::new());
    } else {
        assert!(!home.exists(), "the client wrote to {}", home.display());
    }
}

#[test]
fn push_announces_then_uploads_multipart() {
    let server = CaptureServer::start(|req| match (req.method.as_str(), req.path()) {
        ("POST", "/api/upload/chunked_upload") => Reply::json(200, &json!({"cid": 7})),
        ("POST", "/upload") if req.body.windows(4).any(|w| w == b"FAIL") => Reply::status(403),
        ("POST", "/upload") => Reply::json(200, &json!({"message": "Upload Complete"})),
        _ => Reply::status(404),
    });
    let cli = SregistryCli::new(&server.url, USER, TOKEN);
    let file = cli.dir().join("image.sif");
    std::fs::write(&file, b"SIF push bytes").unwrap();
    let before = SystemTime::now();

    let pushed = cli.push(&file, "coll/name:tag");
    assert!(pushed.pushed(), "{}", pushed.run);
    assert_eq!(pushed.collection_status, Some(200));
    assert_eq!(
        server.lines(),
        ["POST /api/upload/chunked_upload", "POST /upload"]
    );
    let reqs = server.requests();
    assert_eq!(
        reqs[0].json(),
        json!({"collection": "coll", "name": "name", "tag": "tag"})
    );
    assert_signed(&reqs[0], "push", before);
    let upload = &reqs[1];
    assert_signed(upload, "upload", before);
    assert!(
        upload
            .header("Content-Type")
            .unwrap()
            .starts_with("multipart/form-data; boundary=")
    );
    let body = String::from_utf8_lossy(&upload.body);
    // The same signed string travels as a form field too.
    let event = format!(
        "name=\"SREGISTRY_EVENT\"\r\n\r\n{}\r\n",
        upload.header("Authorization").unwrap()
    );
    assert!(body.contains(&event), "{body}");
    for field in [
        "name=\"name\"\r\n\r\nname\r\n",
        "name=\"collection\"\r\n\r\n7\r\n",
        "name=\"tag\"\r\n\r\ntag\r\n",
        "name=\"file1\"; filename=\"name:tag.sif\"\r\nContent-Type: text/plain\r\n\r\nSIF push bytes\r\n",
    ] {
        assert!(body.contains(field), "{field:?} missing from {body}");
    }

    // A refused upload still exits 0: only the printed status tells.
    std::fs::write(&file, b"FAIL").unwrap();
    let refused = cli.push(&file, "coll/name:tag");
    assert!(refused.run.success(), "{}", refused.run);
    assert_eq!(refused.upload_status, Some(403));
    assert!(!refused.pushed());
}

#[test]
fn delete_and_search_requests() {
    let server = CaptureServer::start(|req| match (req.method.as_str(), req.path()) {
        ("DELETE", "/api/container/coll/name:tag") => Reply::status(204),
        ("DELETE", _) => Reply::json(403, &json!({"detail": "frozen"})),
        ("GET", "/api/collections/") => Reply::json(
            200,
            &json!([{"id": 1, "name": "coll", "containers": [
                {"name": "name", "tag": "tag", "uri": "coll/name:tag", "detail": "x"}]}]),
        ),
        ("GET", "/api/collection/coll") => Reply::json(
            200,
            &json!({"containers": [{"uri": "coll/name:tag", "detail": "x"}]}),
        ),
        ("GET", "/api/collection/empty") => Reply::json(200, &json!({})),
        ("GET", "/api/container/search/collection/coll/name/name/tag/tag") => Reply::json(
            200,
            &json!([{"id": 1, "collection": "coll", "name": "name", "tag": "tag"}]),
        ),
        _ => Reply::status(404),
    });
    let cli = SregistryCli::new(&server.url, USER, TOKEN);
    let before = SystemTime::now();

    let deleted = cli.delete("coll/name:tag");
    deleted.run.assert_success();
    assert_eq!(deleted.status, Some(204));
    assert_signed(&server.requests()[0], "delete", before);
    // A refusal also exits 0.
    let refused = cli.delete("coll/name:frozen");
    assert!(refused.run.success(), "{}", refused.run);
    assert_eq!(refused.status, Some(403));

    let all = cli.search(None);
    all.assert_success();
    assert!(all.stdout.contains("coll/name:tag"), "{all}");
    let coll = cli.search(Some("coll"));
    assert!(
        coll.assert_success().stdout.contains("coll/name:tag"),
        "{coll}"
    );
    // An empty answer is a failure to this client.
    assert!(!cli.search(Some("empty")).success());
    let one = cli.search(Some("coll/name:tag"));
    assert!(one.assert_success().stdout.contains("coll/name"), "{one}");

    assert_eq!(
        server.lines(),
        [
            "DELETE /api/container/coll/name:tag",
            "DELETE /api/container/coll/name:frozen",
            "GET /api/collections/",
            "GET /api/collection/coll",
            "GET /api/collection/empty",
            "GET /api/container/search/collection/coll/name/name/tag/tag",
        ]
    );
    // Searches are anonymous.
    assert!(
        server.requests()[2..]
            .iter()
            .all(|r| r.header("Authorization").is_none())
    );
}
