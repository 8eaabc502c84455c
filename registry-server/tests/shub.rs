//! The shub protocol against a real `sreg-server`, driven by the real
//! sregistry-cli 0.2.39 (from `.venv`) where the client can, and by plain
//! HTTP where it cannot (labels: broken in 0.2.39; exact statuses and the
//! route `singularity pull shub://` reads). The model is used directly only
//! to freeze a tag, which no client can do.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use registry_server::db::Database;
use registry_server::model::{catalog, tags};
use reqwest::StatusCode;
use reqwest::blocking::Client;
use reqwest::header::AUTHORIZATION;
use serde_json::{Value, json};
use sreg_tests::Server;
use sreg_tests::images::{library_hash, sif_bytes, write_sif};
use sreg_tests::postgres::Postgres;
use sreg_tests::sregistry_cli::{SregistryCli, sregistry_auth_header, sregistry_timestamp};

/// A registry server in a private folder, with its database at hand.
struct Registry {
    dir: tempfile::TempDir,
    server: Server,
    db_url: String,
    http: Client,
    rt: tokio::runtime::Runtime,
}

impl Registry {
    /// `config`: the TOML file's text; `database`: a URL, or the SQLite
    /// file in the data folder.
    fn start(config: &str, database: Option<&str>) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("sreg-shub")
            .tempdir()
            .unwrap();
        std::fs::write(dir.path().join("sreg.toml"), config).unwrap();
        let db_url = match database {
            Some(url) => url.to_string(),
            None => format!("sqlite://{}/data/sreg.db", dir.path().display()),
        };
        let server = Server::start(
            dir.path(),
            &[
                "--data-dir",
                "data",
                "--config",
                "sreg.toml",
                "--database",
                &db_url,
            ],
        );
        Self {
            dir,
            server,
            db_url,
            http: Client::new(),
            rt: tokio::runtime::Runtime::new().unwrap(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url)
    }

    fn user(&self, name: &str, admin: bool) -> String {
        self.server.user_with_token(name, admin)
    }

    fn cli(&self, user: &str, token: &str) -> SregistryCli {
        SregistryCli::new(&self.server.url, user, token)
    }

    /// A SIF file in the test's folder, and its `sha256.<hex>` hash.
    fn sif(&self, file: &str, seed: u64) -> (PathBuf, String) {
        let path = self.dir.path().join(file);
        let hash = write_sif(&path, "amd64", 20_000, seed);
        (path, hash)
    }

    fn get(&self, path: &str, auth: Option<String>) -> (StatusCode, Value) {
        let mut req = self.http.get(self.url(path));
        if let Some(a) = auth {
            req = req.header(AUTHORIZATION, a);
        }
        let resp = req.send().unwrap();
        let status = resp.status();
        let text = resp.text().unwrap();
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("GET {path}: {status} {text:?} is not JSON: {e}"));
        (status, body)
    }

    fn db<T>(&self, f: impl AsyncFnOnce(&Database) -> T) -> T {
        self.rt.block_on(async {
            let db = Database::connect(&self.db_url).await.unwrap();
            f(&db).await
        })
    }

    /// Freezes or thaws `entity/collection/name:tag` (amd64).
    fn set_frozen(&self, (entity, collection, name, tag): (&str, &str, &str, &str), frozen: bool) {
        self.db(async |db| {
            let c = catalog::collection(&db.pool, entity, collection)
                .await
                .unwrap()
                .unwrap();
            let k = catalog::container(&db.pool, c.id, name)
                .await
                .unwrap()
                .unwrap();
            tags::set_frozen(&db.pool, k.id, "amd64", tag, frozen)
                .await
                .unwrap();
        })
    }

    /// Downloads counted for an image, by hash.
    fn downloads(&self, hash: &str) -> i64 {
        self.db(async |db| {
            sqlx::query_scalar("SELECT downloads FROM images WHERE hash = $1")
                .bind(hash)
                .fetch_one(&db.pool)
                .await
                .unwrap()
        })
    }
}

/// A header signed now (or `hours` ago) as sregistry-cli signs it.
fn signed(kind: &str, user: &str, token: &str, names: (&str, &str, &str), hours: i64) -> String {
    let at = if hours >= 0 {
        SystemTime::now() - Duration::from_secs(3600 * hours as u64)
    } else {
        SystemTime::now() + Duration::from_secs(3600 * (-hours) as u64)
    };
    sregistry_auth_header(kind, user, token, &sregistry_timestamp(at), names)
}

fn pulled_bytes(cli: &SregistryCli, name: &str) -> (Vec<u8>, PathBuf) {
    let pulled = cli.pull(name);
    let path = pulled
        .path
        .unwrap_or_else(|| panic!("pull {name} wrote nothing: {}", pulled.run));
    (std::fs::read(&path).unwrap(), path)
}

fn file_name(path: &Path) -> &str {
    path.file_name().unwrap().to_str().unwrap()
}

#[test]
fn sregistry_cli_push_pull_search_labels_delete() {
    let t0 = Instant::now();
    let reg = Registry::start("", None);
    let alice_token = reg.user("alice", false);
    let bob_token = reg.user("bob", false);
    let alice = reg.cli("alice", &alice_token);
    let bob = reg.cli("bob", &bob_token);
    let (file, hash) = reg.sif("one.sif", 1);

    // Push: the collection is created under alice.
    let pushed = alice.push(&file, "tools/samtools:1.17");
    assert!(pushed.pushed(), "{}", pushed.run);

    // What `singularity pull shub://HOST/tools/samtools:1.17` reads, anonymously.
    let (status, manifest) = reg.get("/api/container/tools/samtools:1.17", None);
    assert_eq!(status, StatusCode::OK, "{manifest}");
    assert_eq!(manifest["name"], "samtools");
    assert_eq!(manifest["tag"], "1.17");
    assert_eq!(manifest["collection"], "tools");
    assert_eq!(manifest["version"], hash.as_str());
    assert_eq!(manifest["frozen"], false);
    for key in ["id", "add_date", "metrics", "metadata"] {
        assert!(manifest.get(key).is_some(), "{key} missing from {manifest}");
    }
    assert_eq!(manifest["metadata"]["entity"], "alice");
    let link = manifest["image"].as_str().unwrap().to_string();
    assert!(link.starts_with(&reg.server.url), "{link}");
    assert!(
        !link.contains(&alice_token) && !link.contains(&alice_token[5..]),
        "the link carries a token: {link}"
    );

    // `@version` names the content itself.
    let (status, by_hash) = reg.get(&format!("/api/container/tools/samtools:1.17@{hash}"), None);
    assert_eq!(
        (status, &by_hash["version"]),
        (StatusCode::OK, &json!(hash))
    );
    let zeros = format!("sha256.{}", "0".repeat(64));
    let (status, _) = reg.get(&format!("/api/container/tools/samtools:1.17@{zeros}"), None);
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Pull: byte-identical, under the client's own file name.
    let (bytes, path) = pulled_bytes(&alice, "tools/samtools:1.17");
    assert_eq!(bytes, std::fs::read(&file).unwrap());
    assert_eq!(file_name(&path), "tools-samtools:1.17.sif");
    // Anyone may pull a public image.
    assert_eq!(pulled_bytes(&bob, "tools/samtools:1.17").0, bytes);
    // The link: HEAD answers 200 and counts nothing, GET counts one pull.
    let before = reg.downloads(&hash);
    assert_eq!(before, 2, "one per client pull");
    let head = reg.http.head(&link).send().unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(reg.downloads(&hash), before);
    let got = reg.http.get(&link).send().unwrap();
    assert_eq!(got.status(), StatusCode::OK);
    assert_eq!(got.bytes().unwrap().as_ref(), bytes.as_slice());
    assert_eq!(reg.downloads(&hash), before + 1);

    // Search, as the client asks it (anonymously).
    let all = alice.search(None);
    assert!(
        all.assert_success().stdout.contains("tools/samtools:1.17"),
        "{all}"
    );
    let coll = alice.search(Some("tools"));
    assert!(
        coll.assert_success().stdout.contains("tools/samtools:1.17"),
        "{coll}"
    );
    // `search /NAME` (across collections) crashes inside sregistry-cli
    // 0.2.39 before it sends anything; its route is checked below.
    let across = alice.search(Some("/samtool"));
    assert!(across.stderr.contains("AttributeError"), "{across}");
    let one = alice.search(Some("tools/samtools:1.17"));
    assert!(
        one.assert_success().stdout.contains("tools/samtools"),
        "{one}"
    );
    assert!(!alice.search(Some("nothing/here:1")).success());
    // Plain lists, never paginated.
    let (_, list) = reg.get("/api/collections/", None);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["containers"][0]["uri"], "tools/samtools:1.17");
    let (_, found) = reg.get("/api/container/search/name/sam/tag/1.17", None);
    assert_eq!(found[0]["version"], hash.as_str(), "{found}");
    assert!(found[0].get("image").is_none(), "search hands out no links");
    let (_, none) = reg.get(
        "/api/container/search/collection/tools/name/sam/tag/2",
        None,
    );
    assert_eq!(none, json!([]));
    assert_eq!(reg.get("/api/collection/nothing", None).1, json!({}));

    // Labels (sregistry-cli 0.2.39 cannot ask: its CLI calls a missing method).
    let labels = alice.run(&["labels"]);
    assert!(
        !labels.success(),
        "the client's labels command works now: {labels}"
    );
    let uri = json!(["tools/samtools:1.17"]);
    let (_, all_labels) = reg.get("/api/labels/search", None);
    assert!(
        all_labels
            .as_array()
            .unwrap()
            .contains(&json!({"key": "seed", "value": "1", "containers": uri})),
        "{all_labels}"
    );
    let (_, by_key) = reg.get("/api/labels/search/seed/key", None);
    assert_eq!(
        by_key,
        json!([{"key": "seed", "value": "1", "containers": uri}])
    );
    let (_, by_value) = reg.get("/api/labels/search/amd64/value", None);
    assert_eq!(
        by_value,
        json!([{"key": "org.label-schema.build-arch", "value": "amd64", "containers": uri}])
    );
    let (_, both) = reg.get("/api/labels/search/SEED/key/1/value", None);
    assert_eq!(both.as_array().unwrap().len(), 1, "{both}");
    assert_eq!(
        reg.get("/api/labels/search/seed/key/2/value", None).1,
        json!([])
    );

    // A file that is not a SIF is refused, and nothing shows.
    let junk = reg.dir.path().join("junk.sif");
    std::fs::write(&junk, b"#!/bin/sh\necho not an image\n").unwrap();
    let refused = alice.push(&junk, "tools/broken:1");
    assert!(!refused.pushed(), "{}", refused.run);
    assert_eq!(refused.upload_status, Some(400), "{}", refused.run);
    let (status, _) = reg.get("/api/container/tools/broken:1", None);
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        reg.get("/api/container/search/name/broken", None).1,
        json!([])
    );

    // A wrong token is refused at the first step, with the server's reason.
    let forger = reg.cli("alice", "sreg_0000000000000000000000000000000000000000");
    let forged = forger.push(&file, "tools/samtools:evil");
    assert_eq!(forged.collection_status, Some(403), "{}", forged.run);
    assert!(
        forged.run.stdout.contains("signature does not verify"),
        "{}",
        forged.run
    );
    let (status, _) = reg.get("/api/container/tools/samtools:evil", None);
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Signatures outside the current and previous UTC hour are refused.
    let names = ("tools", "samtools", "1.17");
    for hours in [2, -1] {
        let resp = reg
            .http
            .delete(reg.url("/api/container/tools/samtools:1.17"))
            .header(
                AUTHORIZATION,
                signed("delete", "alice", &alice_token, names, hours),
            )
            .send()
            .unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        assert!(resp.text().unwrap().contains("time stamp"));
    }
    // A signature of another kind does not do.
    let resp = reg
        .http
        .delete(reg.url("/api/container/tools/samtools:1.17"))
        .header(
            AUTHORIZATION,
            signed("pull", "alice", &alice_token, names, 0),
        )
        .send()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);

    // Only owners delete: bob is refused and the image stays.
    let denied = bob.delete("tools/samtools:1.17");
    assert_eq!(denied.status, Some(403), "{}", denied.run);
    assert!(denied.run.stdout.contains("only owners"), "{}", denied.run);
    assert_eq!(
        reg.get("/api/container/tools/samtools:1.17", None).0,
        StatusCode::OK
    );
    // Nor may bob push into alice's collection.
    let (other, _) = reg.sif("two.sif", 2);
    let intruder = bob.push(&other, "tools/samtools:1.17");
    assert_eq!(intruder.collection_status, Some(403), "{}", intruder.run);

    // An unfrozen tag is overwritten by a push.
    let (file2, hash2) = reg.sif("three.sif", 3);
    assert!(alice.push(&file2, "tools/samtools:1.17").pushed());
    assert_eq!(
        pulled_bytes(&alice, "tools/samtools:1.17").0,
        std::fs::read(&file2).unwrap()
    );
    // The image it replaced is gone, with its links (no history unless frozen).
    assert_eq!(
        reg.http.get(&link).send().unwrap().status(),
        StatusCode::NOT_FOUND
    );
    let link = reg.get("/api/container/tools/samtools:1.17", None).1["image"]
        .as_str()
        .unwrap()
        .to_string();

    // A frozen one is not, and cannot be deleted.
    reg.set_frozen(("alice", "tools", "samtools", "1.17"), true);
    let (status, manifest) = reg.get("/api/container/tools/samtools:1.17", None);
    assert_eq!(
        (status, &manifest["frozen"]),
        (StatusCode::OK, &json!(true))
    );
    let over = alice.push(&file, "tools/samtools:1.17");
    assert!(!over.pushed(), "{}", over.run);
    assert_eq!(over.upload_status, Some(409), "{}", over.run);
    assert_eq!(
        reg.get("/api/container/tools/samtools:1.17", None).1["version"],
        hash2.as_str()
    );
    let kept = alice.delete("tools/samtools:1.17");
    assert_eq!(kept.status, Some(403), "{}", kept.run);
    assert!(kept.run.stdout.contains("frozen"), "{}", kept.run);

    // Thawed, the owner deletes it; then it is gone.
    reg.set_frozen(("alice", "tools", "samtools", "1.17"), false);
    let deleted = alice.delete("tools/samtools:1.17");
    assert_eq!(deleted.status, Some(204), "{}", deleted.run);
    assert_eq!(
        reg.get("/api/container/tools/samtools:1.17", None).0,
        StatusCode::NOT_FOUND
    );
    let again = alice.delete("tools/samtools:1.17");
    assert!(again.run.stderr.contains("404"), "{}", again.run);
    let gone = alice.pull("tools/samtools:1.17");
    assert!(!gone.run.success() && gone.path.is_none(), "{}", gone.run);
    // Its link now leads nowhere either.
    assert_eq!(
        reg.http.get(&link).send().unwrap().status(),
        StatusCode::NOT_FOUND
    );
    eprintln!("sregistry-cli flow: {:?}", t0.elapsed());
}

#[test]
fn private_collections_limits_and_ambiguous_names() {
    let reg = Registry::start(
        "[registry]\ndefault_private = true\nuser_collection_limit = 1\n",
        None,
    );
    let alice_token = reg.user("alice", false);
    let bob_token = reg.user("bob", false);
    let root_token = reg.user("root", true);
    let alice = reg.cli("alice", &alice_token);
    let bob = reg.cli("bob", &bob_token);
    let (file, hash) = reg.sif("one.sif", 11);
    assert!(alice.push(&file, "secret/tool:1").pushed());

    // Anonymous: the same answer as for a collection that does not exist.
    let (status, hidden) = reg.get("/api/container/secret/tool:1", None);
    let (status2, missing) = reg.get("/api/container/nosuch/tool:1", None);
    assert_eq!(
        (status, status2),
        (StatusCode::FORBIDDEN, StatusCode::FORBIDDEN)
    );
    assert_eq!(
        hidden["detail"]
            .as_str()
            .unwrap()
            .replace("secret", "nosuch"),
        missing["detail"].as_str().unwrap()
    );
    // Another user: not found.
    let names = ("secret", "tool", "1");
    let (status, _) = reg.get(
        "/api/container/secret/tool:1",
        Some(signed("pull", "bob", &bob_token, names, 0)),
    );
    assert_eq!(status, StatusCode::NOT_FOUND);
    let denied = bob.pull("secret/tool:1");
    assert!(denied.path.is_none(), "{}", denied.run);
    assert!(denied.run.stderr.contains("404"), "{}", denied.run);
    let not_deleted = bob.delete("secret/tool:1");
    assert!(
        not_deleted.run.stderr.contains("404"),
        "{}",
        not_deleted.run
    );
    // Nor does it show in any listing.
    assert_eq!(reg.get("/api/collections/", None).1, json!([]));
    assert_eq!(reg.get("/api/collection/secret", None).1, json!({}));
    assert_eq!(
        reg.get("/api/container/search/name/tool", None).1,
        json!([])
    );
    assert_eq!(reg.get("/api/labels/search", None).1, json!([]));
    assert!(!bob.search(Some("secret")).success());

    // The owner pulls it: the client asks anonymously, gets the 403, signs.
    let (bytes, _) = pulled_bytes(&alice, "secret/tool:1");
    assert_eq!(bytes, std::fs::read(&file).unwrap());
    // Signed within the previous hour still works; not before, nor ahead.
    let (status, manifest) = reg.get(
        "/api/container/secret/tool:1",
        Some(signed("pull", "alice", &alice_token, names, 1)),
    );
    assert_eq!(status, StatusCode::OK);
    assert_eq!(manifest["version"], hash.as_str());
    for hours in [2, -1] {
        let (status, body) = reg.get(
            "/api/container/secret/tool:1",
            Some(signed("pull", "alice", &alice_token, names, hours)),
        );
        assert_eq!(status, StatusCode::FORBIDDEN, "{hours}: {body}");
    }
    // The owner's link works without any credentials: it is the capability.
    let link = manifest["image"].as_str().unwrap();
    assert_eq!(
        reg.http.get(link).send().unwrap().bytes().unwrap().as_ref(),
        bytes.as_slice()
    );

    // The per-user limit: alice has her one collection.
    let more = alice.push(&file, "another/tool:1");
    assert_eq!(more.collection_status, Some(403), "{}", more.run);
    assert!(more.run.stdout.contains("limit"), "{}", more.run);

    // bob cannot see alice's "secret", so his push makes his own.
    let (file_b, hash_b) = reg.sif("two.sif", 12);
    assert!(bob.push(&file_b, "secret/tool:1").pushed());
    assert_eq!(
        pulled_bytes(&bob, "secret/tool:1").0,
        std::fs::read(&file_b).unwrap()
    );
    assert_eq!(
        pulled_bytes(&alice, "secret/tool:1").0,
        bytes,
        "each sees their own"
    );

    // An admin sees both: the two-part name is ambiguous.
    let (status, body) = reg.get(
        "/api/container/secret/tool:1",
        Some(signed("pull", "root", &root_token, names, 0)),
    );
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("alice/secret") && detail.contains("bob/secret"),
        "{detail}"
    );
    let root = reg.cli("root", &root_token);
    assert!(root.pull("secret/tool:1").path.is_none());
    let refused = root.push(&file, "secret/tool:2");
    assert_eq!(refused.collection_status, Some(409), "{}", refused.run);
    assert!(refused.run.stdout.contains("ambiguous"), "{}", refused.run);
    assert_ne!(hash, hash_b);
}

#[test]
fn download_links_expire_and_carry_no_secret() {
    let reg = Registry::start("[registry]\ndownload_link_ttl = 2\n", None);
    let token = reg.user("alice", false);
    let alice = reg.cli("alice", &token);
    let (file, _) = reg.sif("one.sif", 21);
    assert!(alice.push(&file, "c/n:t").pushed());

    let (_, manifest) = reg.get("/api/container/c/n:t", None);
    let link = manifest["image"].as_str().unwrap().to_string();
    assert!(!link.contains(&token[5..]), "{link}");
    let key = std::fs::read_to_string(reg.dir.path().join("data/secret.key")).unwrap();
    assert!(!link.contains(key.trim()), "{link}");
    assert_eq!(
        reg.http.head(&link).send().unwrap().status(),
        StatusCode::OK
    );

    // A forged link: another image id, or a changed expiry.
    let parts: Vec<&str> = link.rsplitn(5, '/').collect(); // sig, user, expires, image, prefix
    let forged_image = format!(
        "{}/{}/{}/{}/{}",
        parts[4], "999", parts[2], parts[1], parts[0]
    );
    let later = parts[2].parse::<i64>().unwrap() + 3600;
    let forged_expiry = format!(
        "{}/{}/{}/{}/{}",
        parts[4], parts[3], later, parts[1], parts[0]
    );
    for forged in [forged_image, forged_expiry] {
        let resp = reg.http.get(&forged).send().unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{forged}");
        assert!(resp.text().unwrap().contains("not valid or has expired"));
    }

    std::thread::sleep(Duration::from_millis(3200));
    assert_eq!(
        reg.http.head(&link).send().unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let expired = reg.http.get(&link).send().unwrap();
    assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
    // A fresh manifest hands out a fresh link.
    assert_eq!(
        pulled_bytes(&alice, "c/n:t").0,
        std::fs::read(&file).unwrap()
    );
}

#[test]
fn push_and_pull_on_postgres() {
    let pg = Postgres::start();
    let reg = Registry::start("", Some(&pg.url));
    let token = reg.user("alice", false);
    let alice = reg.cli("alice", &token);
    let (file, hash) = reg.sif("one.sif", 31);
    let pushed = alice.push(&file, "tools/samtools:1.17");
    assert!(pushed.pushed(), "{}", pushed.run);
    let (status, manifest) = reg.get("/api/container/tools/samtools:1.17", None);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(manifest["version"], hash.as_str());
    let (bytes, path) = pulled_bytes(&alice, "tools/samtools:1.17");
    assert_eq!(bytes, std::fs::read(&file).unwrap());
    assert_eq!(file_name(&path), "tools-samtools:1.17.sif");
    assert_eq!(reg.downloads(&hash), 1);
    let found = alice.search(Some("tools/samtools:1.17"));
    assert!(
        found.assert_success().stdout.contains("tools/samtools"),
        "{found}"
    );
    assert_eq!(alice.delete("tools/samtools:1.17").status, Some(204));
    // A larger image streams through too (several storage parts).
    let big = reg.dir.path().join("big.sif");
    std::fs::write(&big, sif_bytes("amd64", 20 << 20, 32)).unwrap();
    assert!(alice.push(&big, "tools/big:1").pushed());
    let (bytes, _) = pulled_bytes(&alice, "tools/big:1");
    assert_eq!(
        library_hash(&bytes),
        library_hash(&std::fs::read(&big).unwrap())
    );
}
