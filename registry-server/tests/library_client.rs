//! `library://` against the real Go library client (container-library-client
//! 1.2.2, the code of `apptainer push/pull library://` in Apptainer 1.0),
//! driven by `sreg_tests::libclient` against a real `sreg-server`: push,
//! tags, metadata, pulls (single stream and ranged, concurrent), search and
//! delete, on SQLite, PostgreSQL and S3-compatible storage, and the pushes
//! and pulls the server must refuse.

mod library_support;

use library_support::{Registry, http};
use registry_server::model::{catalog, tags};
use sreg_tests::libclient::{LibClient, LibClientError};
use sreg_tests::postgres::Postgres;
use sreg_tests::s3::S3Server;

fn sha(bytes: &[u8]) -> String {
    sreg_tests::images::library_hash(bytes)
}

fn not_found<T: std::fmt::Debug>(r: Result<T, LibClientError>) {
    match r {
        Err(LibClientError::NotFound { .. }) => {}
        other => panic!("expected not found, got {other:?}"),
    }
}

fn failed<T: std::fmt::Debug>(r: Result<T, LibClientError>) -> String {
    match r {
        Err(LibClientError::Failed { stderr, .. }) => stderr,
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// `downloadCount` of a container, as the library API reports it.
fn downloads(reg: &Registry, token: &str, path: &str) -> i64 {
    let v: serde_json::Value = http()
        .get(format!("{}/v1/containers/{path}", reg.url()))
        .bearer_auth(token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    v["data"]["downloadCount"].as_i64().unwrap()
}

/// Push, tag, look up, pull (identical bytes, sha256 checked by the
/// client), search, delete: the whole life of a small image and of one
/// larger than 64 MiB, which the client uploads in parts and the server
/// serves through a 303 for parallel ranged GETs.
#[test]
fn push_tag_pull_search_delete_small_and_multipart() {
    let reg = Registry::start();
    let token = reg.user("alice", false);
    let lib = LibClient::new(reg.url(), Some(&token)).with_description("samtools image");
    let work = reg.dir.path();

    // A small image: created entity-scoped collection and container, two tags.
    let (small, small_bytes, small_hash) = reg.sif("small.sif", "amd64", 1024, 1);
    let pushed = lib
        .push(&small, "alice/tools/samtools", &["latest", "1.17"])
        .unwrap();
    assert_eq!(pushed.hash, small_hash);
    let done = pushed.complete.expect("the v2 completion body");
    assert_eq!(done.container_url, "alice/tools/samtools");
    assert_eq!(done.quota.total, 0);
    assert_eq!(done.quota.usage, small_bytes.len() as i64);

    let img = lib.image("alice/tools/samtools:1.17").unwrap();
    assert_eq!(img.hash, small_hash);
    assert!(img.uploaded);
    assert_eq!(img.size, small_bytes.len() as i64);
    assert_eq!(img.arch.as_deref(), Some("amd64"));
    assert_eq!(img.description, "samtools image");
    assert_eq!(
        (
            img.entity_name.as_str(),
            img.collection_name.as_str(),
            img.container_name.as_str()
        ),
        ("alice", "tools", "samtools")
    );
    let mut tags = img.tags.clone();
    tags.sort();
    assert_eq!(tags, ["1.17", "latest"]);

    // Pushing the same file again uploads nothing and answers no completion.
    let again = lib
        .push(&small, "alice/tools/samtools", &["stable"])
        .unwrap();
    assert!(again.complete.is_none(), "{again:?}");
    assert_eq!(lib.image("alice/tools/samtools:stable").unwrap().id, img.id);

    // Pulls, by tag, by hash and by default tag; single stream and concurrent.
    let out = work.join("pulled.sif");
    let p = lib.pull("alice/tools/samtools:1.17", &out).unwrap();
    assert_eq!(p.hash, small_hash);
    assert_eq!(std::fs::read(&out).unwrap(), small_bytes);
    let p = lib
        .pull(
            &format!("alice/tools/samtools:{small_hash}"),
            &work.join("h.sif"),
        )
        .unwrap();
    assert_eq!(p.size, small_bytes.len() as u64);
    let p = lib
        .pull_concurrent("alice/tools/samtools", &work.join("c.sif"))
        .unwrap();
    assert_eq!(p.hash, small_hash);
    assert_eq!(downloads(&reg, &token, "alice/tools/samtools"), 3);

    // Another architecture under the same tag: each arch keeps its own.
    let arm = LibClient::new(reg.url(), Some(&token)).with_arch("arm64");
    let (arm_file, _, arm_hash) = reg.sif("arm.sif", "arm64", 2048, 2);
    arm.push(&arm_file, "alice/tools/samtools", &["latest"])
        .unwrap();
    assert_eq!(
        arm.image("alice/tools/samtools:latest").unwrap().hash,
        arm_hash
    );
    assert_eq!(
        lib.image("alice/tools/samtools:latest").unwrap().hash,
        small_hash
    );
    not_found(arm.image("alice/tools/samtools:1.17"));

    // More than 64 MiB: the multipart upload, then ranged parallel pulls.
    let (big, big_bytes, big_hash) = reg.sif("big.sif", "amd64", 65 << 20, 3);
    assert!(big_bytes.len() > 64 << 20);
    let before = std::time::Instant::now();
    let pushed = lib.push(&big, "alice/tools/bigimage", &["v1"]).unwrap();
    eprintln!(
        "multipart push of {} bytes: {:?}",
        big_bytes.len(),
        before.elapsed()
    );
    assert_eq!(pushed.hash, big_hash);
    assert_eq!(
        pushed.complete.unwrap().container_url,
        "alice/tools/bigimage"
    );
    assert!(
        reg.temporary_objects().is_empty(),
        "parts are removed once joined"
    );
    let img = lib.image("alice/tools/bigimage:v1").unwrap();
    assert_eq!(img.size, big_bytes.len() as i64);

    let out = work.join("big-concurrent.sif");
    let before = std::time::Instant::now();
    let p = lib
        .clone()
        .with_part_size(5 << 20)
        .with_concurrency(3)
        .pull_concurrent("alice/tools/bigimage:v1", &out)
        .unwrap();
    eprintln!("concurrent pull: {:?}", before.elapsed());
    assert_eq!(p.hash, big_hash);
    assert!(std::fs::read(&out).unwrap() == big_bytes, "byte-identical");
    std::fs::remove_file(&out).unwrap();
    // The single-stream download follows the same 303.
    let p = lib.pull("alice/tools/bigimage:v1", &out).unwrap();
    assert_eq!(p.hash, big_hash);
    // Each pull counted once, however many ranges it took.
    assert_eq!(downloads(&reg, &token, "alice/tools/bigimage"), 2);

    // Search: what Apptainer prints comes from the image entries.
    let found = lib.search("samtools").unwrap();
    let hashes: Vec<&str> = found.images.iter().map(|i| i.hash.as_str()).collect();
    assert!(hashes.contains(&small_hash.as_str()), "{hashes:?}");
    assert!(
        !hashes.contains(&arm_hash.as_str()),
        "amd64 only: {hashes:?}"
    );
    let hit = found.images.iter().find(|i| i.hash == small_hash).unwrap();
    assert_eq!(hit.container_name, "samtools");
    assert!(hit.tags.contains(&"1.17".to_string()));
    assert!(
        LibClient::new(reg.url(), None)
            .search("bigimage")
            .unwrap()
            .images
            .len()
            == 1
    );

    // Delete: the image goes with its tags; the other arch stays.
    lib.delete("alice/tools/samtools:1.17", "amd64").unwrap();
    not_found(lib.image("alice/tools/samtools:1.17"));
    not_found(lib.image("alice/tools/samtools:latest"));
    not_found(lib.delete("alice/tools/samtools:1.17", "amd64"));
    assert_eq!(
        arm.image("alice/tools/samtools:latest").unwrap().hash,
        arm_hash
    );
    not_found(lib.pull("alice/tools/samtools:1.17", &work.join("gone.sif")));

    // Bare names mean the default entity and collection (library/default),
    // which an admin's push creates.
    let root = reg.user("root", true);
    let (alpine, alpine_bytes, alpine_hash) = reg.sif("alpine.sif", "amd64", 1024, 4);
    LibClient::new(reg.url(), Some(&root))
        .push(&alpine, "library/default/alpine", &["latest"])
        .unwrap();
    let anon = LibClient::new(reg.url(), None);
    for name in ["alpine", "default/alpine:latest", "library/default/alpine"] {
        let p = anon.pull(name, &work.join("alpine.out")).unwrap();
        assert_eq!(p.hash, alpine_hash, "{name}");
    }
    assert_eq!(
        std::fs::read(work.join("alpine.out")).unwrap(),
        alpine_bytes
    );
}

/// `[registry]` settings hold for library pushes: new collections private
/// by default, a per-user collection limit, a size limit; the client shows
/// each refusal's message.
#[test]
fn registry_settings_apply_to_pushes() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sreg.toml");
    std::fs::write(
        &config,
        "[registry]\ndefault_private = true\nuser_collection_limit = 2\nmax_image_size = 200000\n",
    )
    .unwrap();
    let reg = Registry::start_with(&["--config", config.to_str().unwrap()], &[]);
    let alice = reg.user("alice", false);
    let bob = reg.user("bob", false);
    let lib = LibClient::new(reg.url(), Some(&alice));
    let (file, _, _) = reg.sif("a.sif", "amd64", 4096, 40);
    lib.push(&file, "alice/one/tool", &["latest"]).unwrap();
    lib.push(&file, "alice/two/tool", &["latest"]).unwrap();
    let err = failed(lib.push(&file, "alice/three/tool", &["latest"]));
    assert!(err.contains("limit of 2 collections"), "{err}");
    // Private by default: invisible to others.
    assert!(lib.image("alice/one/tool:latest").unwrap().uploaded);
    not_found(LibClient::new(reg.url(), Some(&bob)).image("alice/one/tool:latest"));
    not_found(LibClient::new(reg.url(), None).image("alice/one/tool:latest"));
    // Too large: refused before any byte is sent.
    let (big, _, big_hash) = reg.sif("big.sif", "amd64", 250_000, 41);
    let err = failed(lib.push(&big, "alice/one/tool", &["big"]));
    assert!(
        err.contains("more than this registry's limit of 200000"),
        "{err}"
    );
    not_found(lib.image(&format!("alice/one/tool:{big_hash}")));
    // The other upload paths refuse it too.
    let id = lib.image("alice/one/tool:latest").unwrap().id;
    let r = http()
        .post(format!("{}/v2/imagefile/{id}/_multipart", reg.url()))
        .bearer_auth(&alice)
        .body(r#"{"filesize":300000}"#)
        .send()
        .unwrap();
    assert_eq!(library_support::envelope_error(r).0, 413);
    let r = http()
        .post(format!("{}/v1/imagefile/{id}", reg.url()))
        .bearer_auth(&alice)
        .body(vec![0u8; 250_000])
        .send()
        .unwrap();
    assert_eq!(library_support::envelope_error(r).0, 413);
    assert!(reg.temporary_objects().is_empty());
}

/// Everything the server must refuse, with the client's own error paths.
#[test]
fn refusals_reach_the_client() {
    let reg = Registry::start();
    let alice = reg.user("alice", false);
    let bob = reg.user("bob", false);
    let lib = LibClient::new(reg.url(), Some(&alice));
    let (file, _, hash) = reg.sif("a.sif", "amd64", 4096, 10);
    lib.push(&file, "alice/tools/tool", &["latest"]).unwrap();

    // Anonymous users cannot push.
    let anon = LibClient::new(reg.url(), None);
    let (other, _, other_hash) = reg.sif("b.sif", "amd64", 4096, 11);
    let err = failed(anon.push(&other, "alice/tools/tool", &["latest"]));
    assert!(err.contains("needs a token"), "{err}");
    // Nor can a user into someone else's namespace, or create an entity.
    let err =
        failed(LibClient::new(reg.url(), Some(&bob)).push(&other, "alice/tools/tool", &["x"]));
    assert!(err.contains("may not write"), "{err}");
    let err =
        failed(LibClient::new(reg.url(), Some(&bob)).push(&other, "nobody/tools/tool", &["x"]));
    assert!(err.contains("only an administrator"), "{err}");
    not_found(lib.image(&format!("alice/tools/tool:{other_hash}")));

    // Revoked and expired tokens fail everywhere, pulls included.
    let out = reg
        .server
        .admin(&["admin", "token", "create", "alice", "--name", "old"]);
    let revoked = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let listing = String::from_utf8(
        reg.server
            .admin(&["admin", "token", "list", "alice"])
            .stdout,
    )
    .unwrap();
    let id = listing
        .lines()
        .find(|l| l.contains(" old "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_string();
    assert!(
        reg.server
            .admin(&["admin", "token", "revoke", "alice", &id])
            .status
            .success()
    );
    let out = reg
        .server
        .admin(&["admin", "token", "create", "alice", "--expires-in", "1s"]);
    let expired = String::from_utf8(out.stdout).unwrap().trim().to_string();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    for token in [&revoked, &expired] {
        let c = LibClient::new(reg.url(), Some(token));
        let err = failed(c.push(&other, "alice/tools/tool", &["x"]));
        assert!(err.contains("invalid, revoked or expired token"), "{err}");
        let err = failed(c.image("alice/tools/tool:latest"));
        assert!(err.contains("invalid, revoked or expired token"), "{err}");
        let status = c.token_status().unwrap();
        assert!(!status.valid && status.status == 404, "{status:?}");
    }
    assert!(lib.token_status().unwrap().valid);

    // A private collection is invisible, exactly like a missing one.
    let (secret, _, _) = reg.sif("s.sif", "amd64", 4096, 12);
    lib.push(&secret, "alice/secret/tool", &["latest"]).unwrap();
    reg.db(|db| async move {
        let c = catalog::collection(&db.pool, "alice", "secret")
            .await
            .unwrap()
            .unwrap();
        catalog::set_collection_private(&db.pool, c.id, true)
            .await
            .unwrap();
    });
    assert!(lib.image("alice/secret/tool:latest").unwrap().uploaded);
    for who in [LibClient::new(reg.url(), Some(&bob)), anon.clone()] {
        not_found(who.image("alice/secret/tool:latest"));
        not_found(who.pull("alice/secret/tool:latest", &reg.dir.path().join("x.sif")));
        assert!(
            who.search("tool")
                .unwrap()
                .images
                .iter()
                .all(|i| i.collection_name != "secret")
        );
        not_found(who.delete("alice/secret/tool:latest", "amd64"));
    }
    // Its owner still pulls it.
    let p = lib
        .pull_concurrent("alice/secret/tool", &reg.dir.path().join("p.sif"))
        .unwrap();
    assert!(p.image.uploaded);

    // A tag for another architecture than the SIF's is refused; nothing moves.
    let arm = LibClient::new(reg.url(), Some(&alice)).with_arch("arm64");
    let err = failed(arm.push(&file, "alice/tools/tool", &["armtag"]));
    assert!(
        err.contains("the image is for amd64, not for arm64"),
        "{err}"
    );
    not_found(arm.image("alice/tools/tool:armtag"));

    // A frozen tag does not move.
    reg.db(|db| async move {
        let c = catalog::collection(&db.pool, "alice", "tools")
            .await
            .unwrap()
            .unwrap();
        let k = catalog::container(&db.pool, c.id, "tool")
            .await
            .unwrap()
            .unwrap();
        tags::set_frozen(&db.pool, k.id, "amd64", "latest", true)
            .await
            .unwrap();
    });
    let (newer, _, _) = reg.sif("n.sif", "amd64", 4096, 13);
    let err = failed(lib.push(&newer, "alice/tools/tool", &["latest"]));
    assert!(err.contains("frozen"), "{err}");
    assert_eq!(lib.image("alice/tools/tool:latest").unwrap().hash, hash);
    let err = failed(lib.delete("alice/tools/tool:latest", "amd64"));
    assert!(err.contains("frozen"), "{err}");

    // Not a SIF: refused at upload, and no image becomes visible. (The
    // client shows only the status of its PUT to the upload URL.)
    let junk = reg.dir.path().join("junk.sif");
    std::fs::write(&junk, b"#!/bin/sh\necho this is not a SIF image\n").unwrap();
    let err = failed(lib.push(&junk, "alice/tools/junk", &["latest"]));
    assert!(err.contains("HTTP status 400"), "{err}");
    let junk_hash = sha(&std::fs::read(&junk).unwrap());
    not_found(lib.image(&format!("alice/tools/junk:{junk_hash}")));
    not_found(lib.image("alice/tools/junk:latest"));
    assert!(lib.search("junk").unwrap().images.is_empty());
    assert!(
        reg.temporary_objects().is_empty(),
        "{:?}",
        reg.temporary_objects()
    );

    // Malformed tags are refused by the server (the client does not check them).
    let err = failed(lib.push(&file, "alice/tools/tool", &["bad%tag"]));
    assert!(err.contains("is not valid"), "{err}");
}

/// The main flow on PostgreSQL.
#[test]
fn push_pull_on_postgres() {
    let pg = Postgres::start();
    let reg = Registry::start_with(&["--database", &pg.url], &[]);
    let token = reg.user("alice", false);
    let lib = LibClient::new(reg.url(), Some(&token));
    let (file, bytes, hash) = reg.sif("pg.sif", "amd64", 300 << 10, 20);
    lib.push(&file, "alice/pg/tool", &["latest", "1.0"])
        .unwrap();
    let img = lib.image("alice/pg/tool:1.0").unwrap();
    assert_eq!(
        (img.hash.as_str(), img.size),
        (hash.as_str(), bytes.len() as i64)
    );
    let out = reg.dir.path().join("out.sif");
    lib.pull("alice/pg/tool:latest", &out).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
    assert_eq!(lib.search("tool").unwrap().images.len(), 1);
    lib.delete("alice/pg/tool:latest", "amd64").unwrap();
    not_found(lib.image("alice/pg/tool:1.0"));
}

/// Push and pull with blobs on an S3-compatible server, including the 303
/// and the ranged GETs it leads to.
#[test]
fn push_pull_on_s3() {
    let s3 = S3Server::start();
    s3.create_bucket("images");
    let reg = Registry::start_with(&["--storage", "s3://images/sreg"], &s3.env());
    let token = reg.user("alice", false);
    let lib = LibClient::new(reg.url(), Some(&token));
    let (file, bytes, hash) = reg.sif("s3.sif", "amd64", 9 << 20, 30);
    lib.push(&file, "alice/s3/tool", &["latest"]).unwrap();
    let keys = s3.keys("images");
    assert!(
        keys.contains(&format!(
            "sreg/blobs/sha256/{}",
            hash.trim_start_matches("sha256.")
        )),
        "{keys:?}"
    );
    assert!(
        keys.iter().all(|k| !k.starts_with("sreg/uploads/")),
        "{keys:?}"
    );
    let out = reg.dir.path().join("out.sif");
    let p = lib
        .clone()
        .with_part_size(1 << 20)
        .pull_concurrent("alice/s3/tool", &out)
        .unwrap();
    assert_eq!(p.hash, hash);
    assert!(std::fs::read(&out).unwrap() == bytes);
}
