//! The Go library client harness (`sreg_tests::libclient`): it builds, it
//! fails loudly without a server, and against a request recorder it sends
//! exactly what shared/docs/library-api.md says — which pins what sreg-server
//! must accept from Apptainer 1.0-era clients.

use std::collections::BTreeSet;

use serde_json::json;
use sha2::{Digest, Sha256};
use sreg_tests::capture::{CaptureServer, Captured, Reply};
use sreg_tests::free_port;
use sreg_tests::libclient::{self, LibClient, LibClientError};

const TOKEN: &str = "TOKEN123";

/// F1 of library-api.md §9: 1024 bytes, `byte[i] = i mod 251`.
fn f1() -> Vec<u8> {
    (0..1024u32).map(|i| (i % 251) as u8).collect()
}
const F1_SHA256: &str = "2bce1ba628720664be4b9fdd77aae0678e5f0f3f02fc6ff641ec879094f6a404";
const F1_MD5: &str = "9ee0a0e0c0bc0f1ff29d663d1fdf0743";

fn not_found() -> Reply {
    Reply::json(
        404,
        &json!({"error": {"code": 404, "message": "not found"}}),
    )
}

fn version_reply() -> Reply {
    Reply::json(
        200,
        &json!({"data": {"version": "1.0.0", "apiVersion": "2.0.0"}}),
    )
}

fn image_json(hash: &str) -> serde_json::Value {
    json!({
        "id": "img1", "hash": hash, "description": "samtools image", "container": "con1",
        "size": 1024, "uploaded": true, "arch": "amd64", "customData": "",
        "entityName": "alice", "collectionName": "tools", "containerName": "samtools",
        "tags": ["latest"], "containerStars": 0, "containerDownloads": 0,
        "createdAt": "2024-01-01T00:00:00Z", "deleted": false, "createdBy": ""
    })
}

#[test]
fn fixture_matches_the_documented_vectors() {
    assert_eq!(hex::encode(Sha256::digest(f1())), F1_SHA256);
}

#[test]
fn go_program_builds_once_into_the_target_dir() {
    let bin = libclient::binary();
    assert!(bin.is_file(), "{}", bin.display());
    let name = bin.file_name().unwrap().to_str().unwrap();
    assert!(
        name.starts_with("libclient-") && name.len() == "libclient-".len() + 16,
        "named by the source hash: {name}"
    );
    assert_eq!(bin.parent().unwrap().file_name().unwrap(), "sreg-tests-go");
    assert_eq!(libclient::binary(), bin, "built once per process");
    // The program itself answers usage errors with exit 2.
    let out = LibClient::new("http://127.0.0.1:1", None).run(&["no-such-command"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown command"));
}

#[test]
fn version_against_a_closed_port_is_a_connection_error() {
    let url = format!("http://127.0.0.1:{}", free_port());
    match LibClient::new(&url, Some(TOKEN)).version() {
        Err(LibClientError::Failed { code, stderr }) => {
            assert_eq!(code, Some(1));
            assert!(stderr.contains("connection refused"), "{stderr}");
        }
        other => panic!("expected a connection error, got {other:?}"),
    }
    match LibClient::new(&url, None).token_status() {
        Err(LibClientError::Failed { stderr, .. }) => {
            assert!(stderr.contains("connection refused"), "{stderr}")
        }
        other => panic!("expected a connection error, got {other:?}"),
    }
}

#[test]
fn version_is_one_get_with_an_upper_case_bearer() {
    let server = CaptureServer::start(|req| match req.path() {
        "/version" | "/lib/version" => version_reply(),
        _ => not_found(),
    });
    let v = LibClient::new(&server.url, Some(TOKEN)).version().unwrap();
    assert_eq!(
        (v.version.as_str(), v.api_version.as_str()),
        ("1.0.0", "2.0.0")
    );
    // A base URL with a path prefix is resolved under it; no token, no header.
    LibClient::new(&format!("{}/lib", server.url), None)
        .version()
        .unwrap();

    let reqs = server.requests();
    assert_eq!(server.lines(), ["GET /version", "GET /lib/version"]);
    // The library client writes the scheme in capitals.
    assert_eq!(reqs[0].header("Authorization"), Some("BEARER TOKEN123"));
    assert!(
        reqs[0]
            .header("User-Agent")
            .unwrap()
            .starts_with("Apptainer/")
    );
    assert_eq!(reqs[1].header("Authorization"), None);
}

#[test]
fn token_status_is_one_get_with_a_mixed_case_bearer() {
    let server = CaptureServer::start(|req| match (req.path(), req.header("Authorization")) {
        ("/v1/token-status", Some("Bearer GOOD")) => Reply::json(200, &json!({"data": {}})),
        _ => Reply::json(
            404,
            &json!({"error": {"code": 404, "message": "invalid token"}}),
        ),
    });
    let good = LibClient::new(&server.url, Some("GOOD"))
        .token_status()
        .unwrap();
    assert!(good.valid);
    assert_eq!(good.status, 200);
    let bad = LibClient::new(&server.url, Some("BAD"))
        .token_status()
        .unwrap();
    assert!(!bad.valid);
    assert_eq!(
        (bad.status, bad.message.as_str()),
        (404, "Invalid Credentials")
    );

    assert_eq!(
        server.lines(),
        ["GET /v1/token-status", "GET /v1/token-status"]
    );
    // Apptainer's own code (not the library client) writes "Bearer".
    assert_eq!(
        server.requests()[0].header("Authorization"),
        Some("Bearer GOOD")
    );
}

/// `http://host:port` of the server as the client addressed it.
fn base(req: &Captured) -> String {
    format!("http://{}", req.header("Host").unwrap())
}

/// Fixed replies for a first push of F1 to alice/tools/samtools (TV4–TV8).
fn push_replies(req: &Captured) -> Reply {
    {
        let created = |id: &str| Reply::json(200, &json!({"data": {"id": id}}));
        match (req.method.as_str(), req.path()) {
            ("GET", "/version") => version_reply(),
            ("POST", "/v1/entities") => created("ent1"),
            ("POST", "/v1/collections") => created("col1"),
            ("POST", "/v1/containers") => created("con1"),
            ("POST", "/v1/images") => Reply::json(
                200,
                &json!({"data": {"id": "img1", "hash": format!("sha256.{F1_SHA256}"),
                        "container": "con1", "uploaded": false}}),
            ),
            ("POST", "/v2/imagefile/img1") => Reply::json(
                200,
                &json!({"data": {"uploadURL": format!("{}/v2/imagefile/_upload/u-7", base(req))}}),
            ),
            ("PUT", "/v2/imagefile/_upload/u-7") => Reply::status(200),
            ("PUT", "/v2/imagefile/img1/_complete") => Reply::json(
                200,
                &json!({"data": {"quota": {"quotaTotal": 0, "quotaUsage": 1024},
                        "containerUrl": "alice/tools/samtools"}}),
            ),
            ("GET", "/v2/tags/con1") => Reply::json(200, &json!({"data": {}})),
            ("POST", "/v2/tags/con1") => Reply::json(200, &json!({"data": {}})),
            _ => not_found(),
        }
    }
}

#[test]
fn push_sends_the_documented_sequence() {
    let server = CaptureServer::start(push_replies);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f1.sif");
    std::fs::write(&file, f1()).unwrap();

    let pushed = LibClient::new(&server.url, Some(TOKEN))
        .with_description("samtools image")
        .push(&file, "alice/tools/samtools", &["latest", "1.17"])
        .unwrap();
    assert_eq!(pushed.hash, format!("sha256.{F1_SHA256}"));
    assert_eq!(pushed.tags, ["latest", "1.17"]);
    let complete = pushed.complete.expect("the _complete body is passed on");
    assert_eq!(complete.quota.usage, 1024);
    assert_eq!(complete.container_url, "alice/tools/samtools");

    let hash = format!("sha256.{F1_SHA256}");
    assert_eq!(
        server.lines(),
        [
            "GET /v1/entities/alice".to_string(),
            "POST /v1/entities".into(),
            "GET /v1/collections/alice/tools".into(),
            "POST /v1/collections".into(),
            "GET /v1/containers/alice/tools/samtools".into(),
            "POST /v1/containers".into(),
            format!("GET /v1/images/alice/tools/samtools:{hash}?arch=amd64"),
            "POST /v1/images".into(),
            "GET /version".into(),
            "POST /v2/imagefile/img1".into(),
            "PUT /v2/imagefile/_upload/u-7".into(),
            "PUT /v2/imagefile/img1/_complete".into(),
            "GET /version".into(),
            "GET /v2/tags/con1".into(),
            "POST /v2/tags/con1".into(),
            "POST /v2/tags/con1".into(),
        ]
    );
    let reqs = server.requests();
    let find = |line: &str| reqs.iter().find(|r| r.line() == line).unwrap();
    // Create bodies: the parent's id, no Content-Type (parse JSON regardless).
    let entity = find("POST /v1/entities");
    assert_eq!(entity.json()["name"], "alice");
    assert_eq!(entity.header("Content-Type"), None);
    assert_eq!(find("POST /v1/collections").json()["entity"], "ent1");
    assert_eq!(find("POST /v1/containers").json()["collection"], "col1");
    let image = find("POST /v1/images").json();
    assert_eq!(image["hash"], hash.as_str());
    assert_eq!(image["container"], "con1");
    assert_eq!(image["description"], "samtools image");
    assert_eq!(image["uploaded"], false);
    assert_eq!(
        find("POST /v2/imagefile/img1").json(),
        json!({"filesize": 1024, "md5sum": F1_MD5, "sha256sum": F1_SHA256})
    );
    // The upload URL carries its own capability: no token is sent there.
    let upload = find("PUT /v2/imagefile/_upload/u-7");
    assert_eq!(upload.body, f1());
    assert_eq!(upload.header("Authorization"), None);
    assert_eq!(
        upload.header("Content-Type"),
        Some("application/octet-stream")
    );
    assert_eq!(find("PUT /v2/imagefile/img1/_complete").json(), json!({}));
    let tags: Vec<_> = reqs
        .iter()
        .filter(|r| r.line() == "POST /v2/tags/con1")
        .map(Captured::json)
        .collect();
    assert_eq!(
        tags,
        [
            json!({"Arch": "amd64", "Tag": "latest", "ImageID": "img1"}),
            json!({"Arch": "amd64", "Tag": "1.17", "ImageID": "img1"}),
        ]
    );
    for r in reqs
        .iter()
        .filter(|r| r.path() != "/v2/imagefile/_upload/u-7")
    {
        assert_eq!(
            r.header("Authorization"),
            Some("BEARER TOKEN123"),
            "{}",
            r.line()
        );
    }
}

#[test]
fn pull_looks_up_downloads_and_checks_the_hash() {
    let server = CaptureServer::start(|req| match req.target.as_str() {
        "/version" => version_reply(),
        "/v1/images/alice/tools/samtools:latest?arch=amd64"
        | "/v1/images/alice/tools/samtools:bad?arch=amd64" => Reply::json(
            200,
            &json!({"data": image_json(&format!("sha256.{F1_SHA256}"))}),
        ),
        "/v1/imagefile/alice/tools/samtools:latest?arch=amd64" => Reply::bytes(200, f1()),
        // Bytes that do not match the image's hash.
        "/v1/imagefile/alice/tools/samtools:bad?arch=amd64" => Reply::bytes(200, vec![0; 1024]),
        _ => not_found(),
    });
    let dir = tempfile::tempdir().unwrap();
    let lib = LibClient::new(&server.url, Some(TOKEN));

    let out = dir.path().join("latest.sif");
    let pulled = lib.pull("alice/tools/samtools:latest", &out).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), f1());
    assert_eq!(pulled.path, out);
    assert_eq!(
        (pulled.size, pulled.hash.as_str()),
        (1024, pulled.image.hash.as_str())
    );
    assert_eq!(pulled.image.arch.as_deref(), Some("amd64"));
    assert_eq!(
        server.lines(),
        [
            "GET /v1/images/alice/tools/samtools:latest?arch=amd64",
            "GET /version",
            "GET /v1/imagefile/alice/tools/samtools:latest?arch=amd64",
        ]
    );

    let bad = dir.path().join("bad.sif");
    let err = lib.pull("alice/tools/samtools:bad", &bad).unwrap_err();
    assert!(err.stderr().contains("checksum mismatch"), "{err}");
    assert!(!bad.exists(), "a failed pull leaves no file");

    let err = lib
        .pull("alice/tools/missing:latest", &dir.path().join("m"))
        .unwrap_err();
    assert!(matches!(err, LibClientError::NotFound { .. }), "{err}");
}

/// A blob endpoint that honours `Range` as the 1.2 client needs: 206 with
/// `Content-Range: bytes a-b/TOTAL`.
fn ranged(req: &Captured, data: &[u8]) -> Reply {
    let Some(range) = req.header("Range").and_then(|r| r.strip_prefix("bytes=")) else {
        return Reply::bytes(200, data.to_vec());
    };
    let (a, b) = range.split_once('-').unwrap();
    let a: usize = a.parse().unwrap();
    let b = b.parse::<usize>().unwrap().min(data.len() - 1);
    Reply::bytes(206, data[a..=b].to_vec())
        .header("Content-Range", format!("bytes {a}-{b}/{}", data.len()))
}

#[test]
fn pull_concurrent_follows_a_303_with_ranged_gets() {
    let server = CaptureServer::start(|req| match req.target.as_str() {
        "/version" => version_reply(),
        t if t.starts_with("/v1/images/alice/tools/samtools:") => Reply::json(
            200,
            &json!({"data": image_json(&format!("sha256.{F1_SHA256}"))}),
        ),
        "/v1/imagefile/alice/tools/samtools:latest?arch=amd64" => {
            Reply::status(303).header("Location", format!("{}/blob/img1", base(req)))
        }
        "/v1/imagefile/alice/tools/samtools:relative?arch=amd64" => {
            Reply::status(303).header("Location", "/blob/img1")
        }
        "/blob/img1" => ranged(req, &f1()),
        _ => not_found(),
    });
    let dir = tempfile::tempdir().unwrap();
    let lib = LibClient::new(&server.url, Some(TOKEN))
        .with_concurrency(3)
        .with_part_size(256);

    let out = dir.path().join("c.sif");
    let pulled = lib
        .pull_concurrent("alice/tools/samtools:latest", &out)
        .unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), f1());
    assert_eq!(pulled.hash, format!("sha256.{F1_SHA256}"));

    let blobs: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.path() == "/blob/img1")
        .collect();
    // A size probe, then one GET per 256-byte part (in any order).
    assert_eq!(blobs[0].header("Range"), Some("bytes=0-1024"));
    let parts: BTreeSet<_> = blobs[1..]
        .iter()
        .map(|r| r.header("Range").unwrap().to_string())
        .collect();
    assert_eq!(
        parts,
        BTreeSet::from(
            [
                "bytes=0-255",
                "bytes=256-511",
                "bytes=512-767",
                "bytes=768-1023"
            ]
            .map(String::from)
        )
    );
    assert_eq!(blobs.len(), 5);
    // This client sends no token to the redirect target.
    assert!(blobs.iter().all(|r| r.header("Authorization").is_none()));

    // Client 1.2 cannot follow a relative Location: the server must send an
    // absolute URL to such clients.
    let err = lib
        .pull_concurrent("alice/tools/samtools:relative", &dir.path().join("r.sif"))
        .unwrap_err();
    assert!(
        err.stderr().contains("unsupported protocol scheme"),
        "{err}"
    );
}

#[test]
fn image_search_and_delete_requests() {
    let server = CaptureServer::start(|req| match (req.method.as_str(), req.target.as_str()) {
        ("GET", "/v1/images/alice/tools/samtools:1.17?arch=arm64") => {
            Reply::json(200, &json!({"data": image_json("sha256.00")}))
        }
        ("GET", "/v1/search?arch=amd64&value=samtools") => Reply::json(
            200,
            &json!({"data": {"entity": [], "collection": null, "container": [],
                    "image": [image_json("sha256.00")]}}),
        ),
        ("DELETE", "/v1/images/alice/tools/samtools:1.17?arch=amd64") => {
            Reply::json(200, &json!({"data": image_json("sha256.00")}))
        }
        ("DELETE", "/v1/images/alice/tools/samtools:nocontent?arch=amd64") => Reply::status(204),
        _ => not_found(),
    });
    let lib = LibClient::new(&server.url, Some(TOKEN));

    let img = lib
        .clone()
        .with_arch("arm64")
        .image("alice/tools/samtools:1.17")
        .unwrap();
    assert_eq!(
        (img.id.as_str(), img.entity_name.as_str()),
        ("img1", "alice")
    );
    assert!(matches!(
        lib.image("alice/tools/samtools:1.17"),
        Err(LibClientError::NotFound { .. })
    ));

    let found = lib.search("samtools").unwrap();
    assert_eq!(found.images.len(), 1);
    assert_eq!(found.images[0].container_name, "samtools");
    assert!(found.collections.is_empty(), "null is an empty list");
    // The client refuses short queries itself.
    assert!(lib.search("ab").is_err());

    lib.delete("alice/tools/samtools:1.17", "amd64").unwrap();
    assert!(matches!(
        lib.delete("alice/tools/samtools:gone", "amd64"),
        Err(LibClientError::NotFound { .. })
    ));
    // Only 200 counts as a successful delete.
    assert!(matches!(
        lib.delete("alice/tools/samtools:nocontent", "amd64"),
        Err(LibClientError::Failed { .. })
    ));

    assert_eq!(
        server.lines(),
        [
            "GET /v1/images/alice/tools/samtools:1.17?arch=arm64",
            "GET /v1/images/alice/tools/samtools:1.17?arch=amd64",
            "GET /v1/search?arch=amd64&value=samtools",
            "DELETE /v1/images/alice/tools/samtools:1.17?arch=amd64",
            "DELETE /v1/images/alice/tools/samtools:gone?arch=amd64",
            "DELETE /v1/images/alice/tools/samtools:nocontent?arch=amd64",
        ]
    );
}
