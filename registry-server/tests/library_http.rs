//! `library://` at the HTTP level, against a real `sreg-server`: the test
//! vectors of shared/docs/library-api.md §9 (TV1-TV12) and what the Go
//! client cannot produce (double slashes, `BEARER`, bodies without a
//! Content-Type, oversize or ill-shaped JSON, exact 206s, multipart abort,
//! upload URL reuse and expiry, images not uploaded yet), plus the HKP
//! keyserver.

mod library_support;

use library_support::{Registry, envelope_error, http};
use reqwest::blocking::{Client, RequestBuilder, Response};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sreg_tests::postgres::Postgres;

fn data(resp: Response) -> Value {
    let status = resp.status();
    let body: Value = resp.json().unwrap();
    assert!(status.is_success(), "{status}: {body}");
    body["data"].clone()
}

fn hex_of(hash: &str) -> &str {
    hash.trim_start_matches("sha256.")
}

/// A JSON body exactly as the Go client sends it: no Content-Type.
fn raw_json(rb: RequestBuilder, v: &Value) -> RequestBuilder {
    rb.body(v.to_string())
}

struct Api<'a> {
    reg: &'a Registry,
    c: Client,
}

impl Api<'_> {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.reg.url())
    }
    fn get(&self, path: &str, token: Option<&str>) -> Response {
        let mut rb = self.c.get(self.url(path));
        if let Some(t) = token {
            rb = rb.header("Authorization", format!("BEARER {t}"));
        }
        rb.send().unwrap()
    }
    fn send(&self, method: &str, path: &str, token: Option<&str>, body: &Value) -> Response {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut rb = raw_json(self.c.request(m, self.url(path)), body);
        if let Some(t) = token {
            rb = rb.header("Authorization", format!("Bearer {t}"));
        }
        rb.send().unwrap()
    }
    /// Entity, collection, container and image (not uploaded) of a push.
    fn prepare(&self, token: &str, e: &str, c: &str, n: &str, hash: &str) -> (String, String) {
        let ent = data(self.get(&format!("/v1/entities/{e}"), Some(token)));
        let col = self.send(
            "POST",
            "/v1/collections",
            Some(token),
            &json!({"name": c, "entity": ent["id"], "private": false}),
        );
        let col = data(col);
        let con = data(self.send(
            "POST",
            "/v1/containers",
            Some(token),
            &json!({"name": n, "collection": col["id"]}),
        ));
        let img = data(self.send(
            "POST",
            "/v1/images",
            Some(token),
            &json!({"hash": hash, "container": con["id"], "description": "d"}),
        ));
        (
            con["id"].as_str().unwrap().into(),
            img["id"].as_str().unwrap().into(),
        )
    }
    /// A v2 single-part upload of `bytes` to image `id`.
    fn upload(&self, token: &str, id: &str, bytes: &[u8]) -> Response {
        let start = data(self.send(
            "POST",
            &format!("/v2/imagefile/{id}"),
            Some(token),
            &json!({"filesize": bytes.len(), "sha256sum": hex::encode(Sha256::digest(bytes)), "md5sum": ""}),
        ));
        let url = start["uploadURL"].as_str().unwrap().to_string();
        self.c
            .put(url)
            .header("Content-Type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .unwrap()
    }
    fn tag(&self, token: &str, con: &str, arch: &str, tag: &str, img: &str) -> Response {
        self.send(
            "POST",
            &format!("/v2/tags/{con}"),
            Some(token),
            &json!({"Arch": arch, "Tag": tag, "ImageID": img}),
        )
    }
}

/// TV1, TV2, TV3, TV12 and the user of a token.
#[test]
fn discovery_version_token_status_oci_redirect() {
    discovery_version_token_status_oci_redirect_on(&Registry::start());
}

fn discovery_version_token_status_oci_redirect_on(reg: &Registry) {
    let token = reg.user("alice", false);
    let api = Api { reg, c: http() };

    // TV1: every top-level value is an object; all services are this server.
    let cfg: Value = api
        .get("/assets/config/config.prod.json", None)
        .json()
        .unwrap();
    let map = cfg.as_object().unwrap();
    assert!(map.values().all(Value::is_object), "{cfg}");
    for key in ["libraryAPI", "keystoreAPI", "tokenAPI"] {
        assert_eq!(cfg[key]["uri"], reg.url(), "{cfg}");
    }

    // TV2, also through a doubled slash.
    for path in ["/version", "//version"] {
        let v = data(api.get(path, None));
        assert_eq!(v["apiVersion"], "2.0.0");
        assert!(v["version"].is_string());
    }

    // TV3: both spellings of the scheme; bad and missing tokens get 404.
    for scheme in ["BEARER", "Bearer", "bearer"] {
        let r = api
            .c
            .get(api.url("/v1/token-status"))
            .header("Authorization", format!("{scheme} {token}"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "{scheme}");
    }
    let r = api.get(
        "/v1/token-status",
        Some("sreg_notavalidtokenatallxxxxxxxxxxxxxxxxxxxx"),
    );
    let body: Value = {
        assert_eq!(r.status(), 404);
        r.json().unwrap()
    };
    assert_eq!(
        body,
        json!({"error": {"code": 404, "message": "invalid token"}})
    );
    assert_eq!(envelope_error(api.get("/v1/token-status", None)).0, 404);

    let me: Value = api
        .get("/v1/rbac/users/current", Some(&token))
        .json()
        .unwrap();
    assert_eq!(me["username"], "alice", "a bare object: {me}");
    assert_eq!(
        envelope_error(api.get("/v1/rbac/users/current", None)).0,
        401
    );

    // TV12: no OCI registry behind this library.
    let r = api.get(
        "/v1/oci-redirect?accessTypes=pull%2Cpush&mapped=1&namespace=alice%2Ftools%2Fsamtools",
        Some(&token),
    );
    assert_eq!(envelope_error(r).0, 404);
}

/// TV4-TV11 in the order of a push and a pull, with the refusals around
/// each step.
#[test]
fn push_and_pull_step_by_step() {
    push_and_pull_step_by_step_on(&Registry::start());
}

fn push_and_pull_step_by_step_on(reg: &Registry) {
    let alice = reg.user("alice", false);
    let bob = reg.user("bob", false);
    let admin = reg.user("root", true);
    let api = Api { reg, c: http() };

    // TV4: entities. Users exist; others are 404, and only an admin makes one.
    assert_eq!(
        envelope_error(api.get("/v1/entities/nosuch", Some(&alice))).0,
        404
    );
    let tv4 = json!({"deleted":false,"createdBy":"","createdAt":"0001-01-01T00:00:00Z","updatedAt":"0001-01-01T00:00:00Z","deletedAt":"0001-01-01T00:00:00Z","id":"","name":"nosuch","description":"No description","collections":null,"size":0,"quota":0,"defaultPrivate":false,"customData":""});
    let (status, msg) = envelope_error(api.send("POST", "/v1/entities", Some(&alice), &tv4));
    assert_eq!(status, 403, "{msg}");
    assert_eq!(
        envelope_error(api.send("POST", "/v1/entities", None, &tv4)).0,
        401
    );
    let r = api.send("POST", "/v1/entities", Some(&admin), &tv4);
    assert_eq!(r.status(), 201);
    let team = data(r);
    assert_eq!(team["name"], "nosuch");
    assert!(
        team["id"].as_str().unwrap().parse::<i64>().is_ok(),
        "{team}"
    );
    let mut own = tv4.clone();
    own["name"] = json!("alice");
    let ent = data(api.send("POST", "/v1/entities", Some(&alice), &own));
    assert_eq!(ent["name"], "alice");
    let got = data(api.get("/v1/entities/alice", None));
    assert_eq!(got["id"], ent["id"]);
    assert!(got["createdAt"].as_str().unwrap().ends_with('Z'), "{got}");

    // Collections: 404, created (201), then found (200), also as POSTed again.
    assert_eq!(
        envelope_error(api.get("/v1/collections/alice/tools", Some(&alice))).0,
        404
    );
    let col_body = json!({"name":"tools","entity":ent["id"],"private":false,"description":"No description","containers":null});
    assert_eq!(
        envelope_error(api.send("POST", "/v1/collections", Some(&bob), &col_body)).0,
        403
    );
    let r = api.send("POST", "/v1/collections", Some(&alice), &col_body);
    assert_eq!(r.status(), 201);
    let col = data(r);
    assert_eq!(
        (col["entityName"].as_str(), col["private"].as_bool()),
        (Some("alice"), Some(false))
    );
    let r = api.send("POST", "/v1/collections", Some(&alice), &col_body);
    assert_eq!(r.status(), 200);
    assert_eq!(data(r)["id"], col["id"]);
    assert_eq!(
        data(api.get("/v1/collections/alice/tools", None))["id"],
        col["id"]
    );

    // Containers.
    let con_body = json!({"name":"samtools","collection":col["id"],"description":"No description"});
    assert_eq!(
        envelope_error(api.send("POST", "/v1/containers", Some(&bob), &con_body)).0,
        403
    );
    assert_eq!(
        envelope_error(api.send("POST", "/v1/containers", None, &con_body)).0,
        401
    );
    let r = api.send("POST", "/v1/containers", Some(&alice), &con_body);
    assert_eq!(r.status(), 201);
    let con = data(r);
    let con_id = con["id"].as_str().unwrap().to_string();
    let got = data(api.get("/v1/containers/alice/tools/samtools", None));
    assert_eq!(got["id"], con_id);
    assert_eq!(got["readOnly"], true, "anonymous cannot write: {got}");
    assert_eq!(
        data(api.get("/v1/containers/alice/tools/samtools", Some(&alice)))["readOnly"],
        false
    );

    // TV5: the image by hash is 404, then created, not uploaded.
    let (_, sif, hash) = reg.sif("a.sif", "amd64", 2048, 1);
    let path = format!("/v1/images/alice/tools/samtools:{hash}?arch=amd64");
    assert_eq!(envelope_error(api.get(&path, Some(&alice))).0, 404);
    let tv5 = json!({"deleted":false,"createdBy":"","createdAt":"0001-01-01T00:00:00Z","id":"","hash":hash,"description":"samtools image","container":con_id,"size":0,"uploaded":false,"customData":"","containerStars":0,"containerDownloads":0});
    assert_eq!(
        envelope_error(api.send("POST", "/v1/images", Some(&bob), &tv5)).0,
        403
    );
    let r = api.send("POST", "/v1/images", Some(&alice), &tv5);
    assert_eq!(r.status(), 201);
    let img = data(r);
    assert_eq!(
        (img["hash"].as_str(), img["container"].as_str()),
        (Some(hash.as_str()), Some(con_id.as_str()))
    );
    assert_eq!(img["uploaded"], false);
    let img_id = img["id"].as_str().unwrap().to_string();
    assert_eq!(
        data(api.send("POST", "/v1/images", Some(&alice), &tv5))["id"],
        img_id.as_str()
    );

    // Not uploaded yet: invisible to lookups, pulls, tags and search.
    assert_eq!(envelope_error(api.get(&path, Some(&alice))).0, 404);
    let file = format!("/v1/imagefile/alice/tools/samtools:{hash}?arch=amd64");
    assert_eq!(envelope_error(api.get(&file, Some(&alice))).0, 404);
    let (status, msg) = envelope_error(api.tag(&alice, &con_id, "amd64", "latest", &img_id));
    assert_eq!(status, 400, "{msg}");
    assert!(
        data(api.get("/v1/search?value=samtools", Some(&alice)))["image"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let r = api.send(
        "PUT",
        &format!("/v2/imagefile/{img_id}/_complete"),
        Some(&alice),
        &json!({}),
    );
    assert_eq!(envelope_error(r).0, 400);

    // TV6, refused first: a flipped byte, a truncated body, a reused or expired URL.
    let mut flipped = sif.clone();
    flipped[1500] ^= 0xff;
    let start = |bytes: &[u8], sha: &str| {
        data(api.send(
            "POST",
            &format!("/v2/imagefile/{img_id}"),
            Some(&alice),
            &json!({"filesize": bytes.len(), "sha256sum": sha, "md5sum": "9ee0a0e0c0bc0f1ff29d663d1fdf0743"}),
        ))["uploadURL"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let url = start(&sif, hex_of(&hash));
    assert!(
        url.starts_with(&format!("{}/v2/imagefile/_upload/", reg.url())),
        "{url}"
    );
    let (status, msg) = envelope_error(api.c.put(&url).body(flipped.clone()).send().unwrap());
    assert_eq!(status, 400);
    assert!(msg.contains("sha256"), "{msg}");
    let (status, msg) = envelope_error(api.c.put(&url).body(sif.clone()).send().unwrap());
    assert_eq!(status, 404, "an upload URL works once: {msg}");
    let url = start(&sif, hex_of(&hash));
    let (status, msg) = envelope_error(api.c.put(&url).body(sif[..1000].to_vec()).send().unwrap());
    assert_eq!(status, 400);
    assert!(msg.contains("truncated"), "{msg}");
    let url = start(&sif, hex_of(&hash));
    reg.db(|db| async move {
        sqlx::query("UPDATE uploads SET expires_at = 0")
            .execute(&db.pool)
            .await
            .unwrap();
    });
    let (status, msg) = envelope_error(api.c.put(&url).body(sif.clone()).send().unwrap());
    assert_eq!(status, 404);
    assert!(msg.contains("expired"), "{msg}");
    // A sha256 that is not the image's is refused before any byte moves.
    let r = api.send(
        "POST",
        &format!("/v2/imagefile/{img_id}"),
        Some(&alice),
        &json!({"filesize": sif.len(), "sha256sum": "00".repeat(32)}),
    );
    assert_eq!(envelope_error(r).0, 400);
    let r = api.send(
        "POST",
        &format!("/v2/imagefile/{img_id}"),
        Some(&bob),
        &json!({"filesize": 1}),
    );
    assert_eq!(envelope_error(r).0, 403);
    assert_eq!(
        envelope_error(api.get(&path, Some(&alice))).0,
        404,
        "still not uploaded"
    );
    assert!(reg.temporary_objects().is_empty());

    // TV6 for real: the upload URL needs no token; the completion answers the quota.
    let url = start(&sif, hex_of(&hash));
    let r = api
        .c
        .put(&url)
        .header("Content-Type", "application/octet-stream")
        .body(sif.clone())
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let done = data(api.send(
        "PUT",
        &format!("/v2/imagefile/{img_id}/_complete"),
        Some(&alice),
        &json!({}),
    ));
    assert_eq!(
        done,
        json!({"quota": {"quotaTotal": 0, "quotaUsage": sif.len()}, "containerUrl": "alice/tools/samtools"})
    );

    // TV8: tags. v2 per arch; another arch than the SIF's is refused.
    assert_eq!(
        data(api.get(&format!("/v2/tags/{con_id}"), Some(&alice))),
        json!({})
    );
    for t in ["latest", "1.17"] {
        assert_eq!(api.tag(&alice, &con_id, "amd64", t, &img_id).status(), 200);
    }
    let (status, msg) = envelope_error(api.tag(&alice, &con_id, "arm64", "latest", &img_id));
    assert_eq!(status, 400);
    assert!(msg.contains("not for arm64"), "{msg}");
    let (status, msg) = envelope_error(api.tag(&alice, &con_id, "amd64", "bad tag", &img_id));
    assert_eq!(status, 400, "{msg}");
    assert_eq!(
        envelope_error(api.tag(&alice, &con_id, "nosucharch", "x", &img_id)).0,
        400
    );
    assert_eq!(
        envelope_error(api.tag(&bob, &con_id, "amd64", "x", &img_id)).0,
        403
    );
    assert_eq!(
        data(api.get(&format!("/v2/tags/{con_id}"), None)),
        json!({"amd64": {"1.17": img_id, "latest": img_id}})
    );
    let got = data(api.get("/v1/images/alice/tools/samtools:1.17?arch=amd64", None));
    assert_eq!(
        (got["id"].as_str(), got["arch"].as_str()),
        (Some(img_id.as_str()), Some("amd64"))
    );
    let mut tags: Vec<&str> = got["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    tags.sort();
    assert_eq!(tags, ["1.17", "latest"]);
    assert_eq!(got["size"], sif.len());
    assert_eq!(
        envelope_error(api.get("/v1/images/alice/tools/samtools:1.17?arch=arm64", None)).0,
        404
    );
    // v1 tags, both body shapes; old clients send no arch.
    let r = api.send(
        "POST",
        &format!("/v1/tags/{con_id}"),
        Some(&alice),
        &json!({"Tag": "v1tag", "ImageID": img_id}),
    );
    assert_eq!(r.status(), 200);
    let r = api.send(
        "POST",
        &format!("/v1/tags/{con_id}"),
        Some(&alice),
        &json!({"maptag": img_id}),
    );
    assert_eq!(r.status(), 200);
    let v1 = data(api.get(&format!("/v1/tags/{con_id}"), None));
    assert_eq!(
        (v1["v1tag"].as_str(), v1["maptag"].as_str()),
        (Some(img_id.as_str()), Some(img_id.as_str()))
    );
    assert_eq!(
        data(api.get("/v1/images/alice/tools/samtools:v1tag?arch=", None))["id"],
        img_id.as_str()
    );
    let r = api.send(
        "POST",
        &format!("/v1/tags/{con_id}"),
        Some(&alice),
        &json!({"maptag": ""}),
    );
    assert!(data(r).get("maptag").is_none());
    let got = data(api.get("/v1/containers/alice/tools/samtools", None));
    assert_eq!(got["imageTags"]["latest"], img_id.as_str());
    assert_eq!(got["archTags"]["amd64"]["v1tag"], img_id.as_str());
    assert_eq!(got["images"], json!([img_id]));

    // TV9: the pull, whole and in ranges; Singularity 3.7's escaped query; `//`.
    let img = data(api.get("/v1/images//alice/tools/samtools:latest?arch%3Damd64", None));
    assert_eq!(
        (img["hash"].as_str(), img["uploaded"].as_bool()),
        (Some(hash.as_str()), Some(true))
    );
    let r = api.get("/v1/imagefile/alice/tools/samtools:latest?arch=amd64", None);
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-length"],
        sif.len().to_string().as_str()
    );
    assert_eq!(r.bytes().unwrap().as_ref(), sif.as_slice());
    let n = sif.len();
    for (range, from, to) in [
        ("bytes=0-511", 0, 511),
        ("bytes=512-1023", 512, 1023),
        (&*format!("bytes=1024-{}", n + 100), 1024, n - 1),
    ] {
        let r = api
            .c
            .get(api.url("/v1/imagefile/alice/tools/samtools:latest?arch=amd64"))
            .header("Range", range)
            .send()
            .unwrap();
        assert_eq!(r.status(), 206, "{range}");
        assert_eq!(
            r.headers()["content-range"],
            format!("bytes {from}-{to}/{n}").as_str()
        );
        assert_eq!(r.bytes().unwrap().as_ref(), &sif[from..=to], "{range}");
    }
    let r = api
        .c
        .get(api.url("/v1/imagefile/alice/tools/samtools:latest?arch=amd64"))
        .header("Range", format!("bytes={}-", n + 5))
        .send()
        .unwrap();
    assert_eq!(r.status(), 416);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes */{n}").as_str()
    );
    // One pull counted: the 200, not the ranges.
    assert_eq!(
        data(api.get("/v1/containers/alice/tools/samtools", None))["downloadCount"],
        1
    );

    // TV10: search.
    let found = data(api.get("/v1/search?value=samtools", None));
    assert_eq!(found["entity"], json!([]));
    assert_eq!(found["collection"], json!([]));
    assert_eq!(found["container"].as_array().unwrap().len(), 1);
    let found = data(api.get("/v1/search?arch=amd64&value=samtools", None));
    assert_eq!(
        found["container"],
        json!([]),
        "arch limits the answer to images"
    );
    let hit = &found["image"][0];
    assert_eq!(
        (
            hit["entityName"].as_str(),
            hit["collectionName"].as_str(),
            hit["containerName"].as_str(),
            hit["hash"].as_str()
        ),
        (
            Some("alice"),
            Some("tools"),
            Some("samtools"),
            Some(hash.as_str())
        )
    );
    assert!(
        data(api.get("/v1/search?arch=amd64&signed=true&value=samtools", None))["image"]
            .as_array()
            .unwrap()
            .is_empty(),
        "the image is not signed"
    );
    assert!(
        data(api.get("/v1/search?arch=arm64&value=samtools", None))["image"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        data(api.get("/v1/search?value=alic", None))["entity"][0]["name"],
        "alice"
    );
    assert_eq!(envelope_error(api.get("/v1/search?value=sa", None)).0, 400);

    // TV11: delete needs write access, answers 200 with the image, then 404.
    let del = "/v1/images/alice/tools/samtools:1.17?arch=amd64";
    assert_eq!(
        envelope_error(api.send("DELETE", del, None, &json!({}))).0,
        401
    );
    assert_eq!(
        envelope_error(api.send("DELETE", del, Some(&bob), &json!({}))).0,
        403
    );
    let r = api.send("DELETE", del, Some(&alice), &json!({}));
    assert_eq!(r.status(), 200);
    assert_eq!(data(r)["id"], img_id.as_str());
    assert_eq!(
        envelope_error(api.get("/v1/images/alice/tools/samtools:1.17?arch=amd64", None)).0,
        404
    );
    assert_eq!(
        envelope_error(api.send("DELETE", del, Some(&alice), &json!({}))).0,
        404
    );
}

/// What a request must look like, and what is refused without change.
#[test]
fn tolerant_parsing_and_bad_input() {
    tolerant_parsing_and_bad_input_on(&Registry::start());
}

fn tolerant_parsing_and_bad_input_on(reg: &Registry) {
    let alice = reg.user("alice", false);
    let api = Api { reg, c: http() };

    // No Content-Type, any JSON Content-Type, or a wrong one: all parsed as JSON.
    let body = json!({"name": "alice"}).to_string();
    for ct in [None, Some("application/json"), Some("text/plain")] {
        let mut rb = api
            .c
            .post(api.url("/v1/entities"))
            .bearer_auth(&alice)
            .body(body.clone());
        if let Some(ct) = ct {
            rb = rb.header("Content-Type", ct);
        }
        assert_eq!(rb.send().unwrap().status(), 200, "{ct:?}");
    }
    // Ill-shaped or oversize bodies get the envelope.
    let (status, msg) =
        envelope_error(api.send("POST", "/v1/entities", Some(&alice), &json!({"name": 5})));
    assert_eq!(status, 400);
    assert!(msg.contains("JSON"), "{msg}");
    let r = api
        .c
        .post(api.url("/v1/entities"))
        .bearer_auth(&alice)
        .body("{not json")
        .send()
        .unwrap();
    assert_eq!(envelope_error(r).0, 400);
    let huge = format!(
        "{{\"name\":\"alice\",\"description\":\"{}\"}}",
        "x".repeat(2 << 20)
    );
    let r = api
        .c
        .post(api.url("/v1/entities"))
        .bearer_auth(&alice)
        .body(huge)
        .send()
        .unwrap();
    assert_eq!(
        r.headers()["connection"],
        "close",
        "the connection is not reused"
    );
    assert_eq!(envelope_error(r).0, 413);

    // A token that is not valid is refused, never taken as anonymous.
    let bad = "sreg_notavalidtokenatallxxxxxxxxxxxxxxxxxxxx";
    assert_eq!(
        envelope_error(api.get("/v1/entities/alice", Some(bad))).0,
        401
    );
    assert_eq!(
        envelope_error(api.get("/v1/search?value=alice", Some(bad))).0,
        401
    );

    // Malformed names, hashes, tags and ids: 400, nothing created.
    let ent = data(api.get("/v1/entities/alice", None));
    for (path, body) in [
        (
            "/v1/collections",
            json!({"name": "Bad_Name", "entity": ent["id"]}),
        ),
        ("/v1/collections", json!({"name": "ok", "entity": "x1"})),
        (
            "/v1/containers",
            json!({"name": "ok", "collection": "1; DROP TABLE"}),
        ),
        (
            "/v1/images",
            json!({"hash": "sha256:abc", "container": "1"}),
        ),
        (
            "/v1/images",
            json!({"hash": format!("sha256.{}", "A".repeat(64)), "container": "1"}),
        ),
    ] {
        let (status, msg) = envelope_error(api.send("POST", path, Some(&alice), &body));
        assert_eq!(status, 400, "{path} {body}: {msg}");
    }
    assert!(
        data(api.get("/v1/entities/alice", None))["collections"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    for path in [
        "/v1/images/alice/tools/UPPER:latest",
        "/v1/images/alice/tools/x:sha256.1234",
        "/v1/images/alice/tools/x:bad%21tag",
        "/v1/images/a/b/c/d:latest",
        "/v2/tags/notanid",
    ] {
        assert_eq!(envelope_error(api.get(path, Some(&alice))).0, 400, "{path}");
    }
    // An upload to an unknown URL is drained before the 404, so the
    // connection stays usable.
    let r = api
        .c
        .put(api.url("/v2/imagefile/_upload/nosuchupload"))
        .body(vec![0u8; 3 << 20])
        .send()
        .unwrap();
    assert_eq!(envelope_error(r).0, 404);
    let r = api
        .c
        .post(api.url("/v1/imagefile/1"))
        .body(vec![0u8; 1 << 20])
        .send()
        .unwrap();
    assert_eq!(envelope_error(r).0, 401);
}

/// The v2 multipart protocol (TV7) at the HTTP level, on a small file, with
/// part checks and the abort; and the legacy v1 upload.
#[test]
fn multipart_and_legacy_uploads() {
    multipart_and_legacy_uploads_on(&Registry::start());
}

fn multipart_and_legacy_uploads_on(reg: &Registry) {
    let alice = reg.user("alice", false);
    let api = Api { reg, c: http() };
    let (_, sif, hash) = reg.sif("m.sif", "amd64", 50_000, 5);
    let (con, img) = api.prepare(&alice, "alice", "tools", "multi", &hash);
    let base = format!("/v2/imagefile/{img}");

    // TV7 step 1 for F2's size: two parts of 64 MiB and 10 bytes, S3 mode off.
    let start = data(api.send(
        "POST",
        &format!("{base}/_multipart"),
        Some(&alice),
        &json!({"filesize": 67_108_874}),
    ));
    assert_eq!(
        (start["totalParts"].as_i64(), start["partSize"].as_i64()),
        (Some(2), Some(67_108_864))
    );
    assert_eq!(start["options"], json!({"s3compliant": "false"}));
    let big_id = start["uploadID"].as_str().unwrap().to_string();
    let r = api.send(
        "PUT",
        &format!("{base}/_multipart"),
        Some(&alice),
        &json!({"partSize": 10, "uploadID": big_id, "partNumber": 2, "sha256sum": ""}),
    );
    let part2 = data(r)["presignedURL"].as_str().unwrap().to_string();
    assert!(
        part2.starts_with(&format!("{}/v2/imagefile/_part/", reg.url())),
        "{part2}"
    );
    let r = api.send(
        "PUT",
        &format!("{base}/_multipart"),
        Some(&alice),
        &json!({"partSize": 11, "uploadID": big_id, "partNumber": 2, "sha256sum": ""}),
    );
    assert_eq!(envelope_error(r).0, 400, "part 2 has 10 bytes");
    let r = api.send(
        "PUT",
        &format!("{base}/_multipart"),
        Some(&alice),
        &json!({"partSize": 10, "uploadID": big_id, "partNumber": 3, "sha256sum": ""}),
    );
    assert_eq!(envelope_error(r).0, 400, "there is no part 3");
    let r = api.c.put(&part2).body(vec![7u8; 10]).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(reg.temporary_objects().len(), 1, "the part is kept");
    // Abort: parts removed, the upload gone.
    let r = api.send(
        "PUT",
        &format!("{base}/_multipart_abort"),
        Some(&alice),
        &json!({"uploadID": big_id}),
    );
    assert_eq!(r.status(), 200);
    assert!(reg.temporary_objects().is_empty());
    assert_eq!(
        envelope_error(api.c.put(&part2).body(vec![7u8; 10]).send().unwrap()).0,
        404
    );
    let r = api.send(
        "PUT",
        &format!("{base}/_multipart_abort"),
        Some(&alice),
        &json!({"uploadID": big_id}),
    );
    assert_eq!(envelope_error(r).0, 404);

    // A one-part upload, with a wrong ETag named first.
    let start = data(api.send(
        "POST",
        &format!("{base}/_multipart"),
        Some(&alice),
        &json!({"filesize": sif.len()}),
    ));
    assert_eq!(start["totalParts"], 1);
    let id = start["uploadID"].as_str().unwrap().to_string();
    let sha = hex::encode(Sha256::digest(&sif));
    let url = data(api.send(
        "PUT",
        &format!("{base}/_multipart"),
        Some(&alice),
        &json!({"partSize": sif.len(), "uploadID": id, "partNumber": 1, "sha256sum": sha}),
    ))["presignedURL"]
        .as_str()
        .unwrap()
        .to_string();
    // A part whose bytes are not the declared ones is refused.
    let mut bad = sif.clone();
    bad[0] ^= 1;
    assert_eq!(
        envelope_error(api.c.put(&url).body(bad).send().unwrap()).0,
        400
    );
    let r = api.c.put(&url).body(sif.clone()).send().unwrap();
    assert_eq!(r.status(), 200);
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    assert_eq!(etag, format!("\"{sha}\""));
    let r = api.send(
        "PUT",
        &format!("{base}/_multipart_complete"),
        Some(&alice),
        &json!({"uploadID": id, "completedParts": [{"partNumber": 1, "token": "\"e1\""}]}),
    );
    assert_eq!(envelope_error(r).0, 400);
    assert!(
        reg.temporary_objects().is_empty(),
        "a failed completion uses the upload up"
    );
    assert_eq!(
        envelope_error(api.get(
            &format!("/v1/images/alice/tools/multi:{hash}"),
            Some(&alice)
        ))
        .0,
        404
    );

    // Again, completed properly: TV6's answer shape.
    let start = data(api.send(
        "POST",
        &format!("{base}/_multipart"),
        Some(&alice),
        &json!({"filesize": sif.len()}),
    ));
    let id = start["uploadID"].as_str().unwrap().to_string();
    let url = data(api.send(
        "PUT",
        &format!("{base}/_multipart"),
        Some(&alice),
        &json!({"partSize": sif.len(), "uploadID": id, "partNumber": 1, "sha256sum": ""}),
    ))["presignedURL"]
        .as_str()
        .unwrap()
        .to_string();
    let r = api.c.put(&url).body(sif.clone()).send().unwrap();
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let done = data(api.send(
        "PUT",
        &format!("{base}/_multipart_complete"),
        Some(&alice),
        &json!({"uploadID": id, "completedParts": [{"partNumber": 1, "token": etag}]}),
    ));
    assert_eq!(done["containerUrl"], "alice/tools/multi");
    assert_eq!(done["quota"]["quotaUsage"], sif.len());
    assert!(reg.temporary_objects().is_empty());
    let got = data(api.get(
        &format!("/v1/images/alice/tools/multi:{hash}?arch=amd64"),
        None,
    ));
    assert_eq!(
        (got["uploaded"].as_bool(), got["size"].as_u64()),
        (Some(true), Some(sif.len() as u64))
    );

    // Legacy v1: the whole file in the POST; 200 only.
    let (_, legacy, legacy_hash) = reg.sif("l.sif", "amd64", 30_000, 6);
    let (_, img2) = api.prepare(&alice, "alice", "tools", "multi", &legacy_hash);
    let r = api
        .c
        .post(api.url(&format!("/v1/imagefile/{img2}")))
        .header("Authorization", format!("BEARER {alice}"))
        .body(legacy.clone())
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        api.tag(&alice, &con, "amd64", "legacy", &img2).status(),
        200
    );
    let r = api.get("/v1/imagefile/alice/tools/multi:legacy?arch=amd64", None);
    assert_eq!(r.bytes().unwrap().as_ref(), legacy.as_slice());
}

/// The 303 for large public images, its target with and without a token,
/// and private images always answered directly.
#[test]
fn redirect_to_ranged_blob_for_large_public_images() {
    redirect_to_ranged_blob_for_large_public_images_on(&Registry::start());
}

fn redirect_to_ranged_blob_for_large_public_images_on(reg: &Registry) {
    let alice = reg.user("alice", false);
    let api = Api { reg, c: http() };
    let (_, sif, hash) = reg.sif("big.sif", "amd64", 9 << 20, 8);
    for (collection, private) in [("pub", false), ("priv", true)] {
        let (con, img) = api.prepare(&alice, "alice", collection, "big", &hash);
        assert_eq!(api.upload(&alice, &img, &sif).status(), 200);
        assert_eq!(api.tag(&alice, &con, "amd64", "latest", &img).status(), 200);
        if private {
            let c = collection.to_string();
            reg.db(|db| async move {
                let c = registry_server::model::catalog::collection(&db.pool, "alice", &c)
                    .await
                    .unwrap()
                    .unwrap();
                registry_server::model::catalog::set_collection_private(&db.pool, c.id, true)
                    .await
                    .unwrap();
            });
        }
    }
    let n = sif.len();
    let r = api.get(
        "/v1/imagefile/alice/pub/big:latest?arch=amd64",
        Some(&alice),
    );
    assert_eq!(r.status(), 303);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.starts_with(&format!("{}/v2/imagefile/_blob/", reg.url())),
        "{location}"
    );
    // The 1.0 client's probe, without a token: past the end is clamped.
    let r = api
        .c
        .get(&location)
        .header("Range", "bytes=0-1024")
        .send()
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes 0-1024/{n}").as_str()
    );
    assert_eq!(r.bytes().unwrap().len(), 1025);
    let r = api
        .c
        .get(&location)
        .header("Authorization", format!("Bearer {alice}"))
        .header("Range", format!("bytes={}-{}", n - 10, n - 1))
        .send()
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().unwrap().as_ref(), &sif[n - 10..]);
    let r = api.c.get(&location).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().unwrap().as_ref(), sif.as_slice());
    assert_eq!(
        data(api.get("/v1/containers/alice/pub/big", None))["downloadCount"],
        1,
        "the 303 counts, the blob GETs do not"
    );

    // Private: 200 with the bytes; its blob URL is 404 without access.
    let r = api.get(
        "/v1/imagefile/alice/priv/big:latest?arch=amd64",
        Some(&alice),
    );
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().unwrap().len(), n);
    let priv_id = data(api.get("/v1/images/alice/priv/big:latest?arch=amd64", Some(&alice)))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let blob = format!("/v2/imagefile/_blob/{priv_id}");
    assert_eq!(envelope_error(api.get(&blob, None)).0, 404);
    assert_eq!(api.get(&blob, Some(&alice)).status(), 200);
    assert_eq!(
        envelope_error(api.get("/v1/imagefile/alice/priv/big:latest?arch=amd64", None)).0,
        404
    );
}

const RSA_FINGERPRINT: &str = "22B8D2A32F352D3DE66E049240FFAB396E10680E";
const ED25519_FINGERPRINT: &str = "DEBA399097EEF44793A98C4F50F3FAA3AC7BC606";

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/pgp/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// The HKP keyserver the discovery document points at.
#[test]
fn hkp_add_and_lookup() {
    hkp_add_and_lookup_on(&Registry::start());
}

fn hkp_add_and_lookup_on(reg: &Registry) {
    let alice = reg.user("alice", false);
    let c = http();
    let add = |token: Option<&str>, keytext: &str| {
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("keytext", keytext)
            .finish();
        let mut rb = c
            .post(format!("{}/pks/add", reg.url()))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form);
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        rb.send().unwrap()
    };
    let lookup = |q: &str| {
        c.get(format!("{}/pks/lookup?{q}", reg.url()))
            .send()
            .unwrap()
    };

    let rsa = fixture("rsa2048.asc");
    assert_eq!(add(None, &rsa).status(), 401);
    assert_eq!(add(Some(&alice), "garbage").status(), 400);
    let truncated = &rsa[..rsa.len() / 2];
    assert_eq!(add(Some(&alice), truncated).status(), 400);
    let r = add(Some(&alice), &rsa);
    assert_eq!(r.status(), 200);
    assert!(r.text().unwrap().contains(RSA_FINGERPRINT));
    let both = format!("{rsa}\n{}", fixture("ed25519.asc"));
    assert_eq!(
        add(Some(&alice), &both).status(),
        200,
        "several keys at once"
    );

    for search in [
        format!("0x{RSA_FINGERPRINT}"),
        format!("0x{}", RSA_FINGERPRINT.to_lowercase()),
        format!("0x{}", &RSA_FINGERPRINT[24..]),
        format!("0x{}", &RSA_FINGERPRINT[32..]),
    ] {
        let r = lookup(&format!("op=get&options=mr&search={search}"));
        assert_eq!(r.status(), 200, "{search}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/pgp-keys")
        );
        let text = r.text().unwrap();
        assert!(
            text.starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----"),
            "{text}"
        );
    }
    let index = lookup(&format!(
        "op=index&options=mr&search=0x{ED25519_FINGERPRINT}"
    ))
    .text()
    .unwrap();
    let lines: Vec<&str> = index.lines().collect();
    assert_eq!(lines[0], "info:1:1");
    assert!(
        lines[1].starts_with(&format!("pub:{ED25519_FINGERPRINT}:22:256:")),
        "{index}"
    );
    assert_eq!(
        lines[2].split(':').nth(1),
        Some("Alice Tester <alice@example.org>")
    );
    let index = lookup(&format!("op=index&options=mr&search=0x{RSA_FINGERPRINT}"))
        .text()
        .unwrap();
    assert!(
        index.contains(&format!("pub:{RSA_FINGERPRINT}:1:2048:")),
        "{index}"
    );

    assert_eq!(lookup("op=get&search=0x0123456789ABCDEF").status(), 404);
    assert_eq!(lookup("op=get&search=alice").status(), 400);
    assert_eq!(lookup("op=get").status(), 400);
    assert_eq!(
        lookup(&format!("op=stats&search=0x{RSA_FINGERPRINT}")).status(),
        501
    );
    // What was stored is the key itself: the armored text comes back whole.
    let got = lookup(&format!("op=get&search=0x{ED25519_FINGERPRINT}"))
        .text()
        .unwrap();
    assert_eq!(got.matches("BEGIN PGP PUBLIC KEY BLOCK").count(), 1);
}

type Scenario = fn(&Registry);

/// The same scenarios on PostgreSQL, each on a database of its own.
#[test]
fn scenarios_on_postgres() {
    let pg = Postgres::start();
    let scenarios: [(&str, Scenario); 6] = [
        ("discovery", discovery_version_token_status_oci_redirect_on),
        ("steps", push_and_pull_step_by_step_on),
        ("parsing", tolerant_parsing_and_bad_input_on),
        ("multipart", multipart_and_legacy_uploads_on),
        (
            "redirect",
            redirect_to_ranged_blob_for_large_public_images_on,
        ),
        ("hkp", hkp_add_and_lookup_on),
    ];
    for (name, scenario) in scenarios {
        let out = std::process::Command::new("psql")
            .args([
                &pg.url,
                "-v",
                "ON_ERROR_STOP=1",
                "-qc",
                &format!("CREATE DATABASE {name}"),
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let (server, _) = pg.url.rsplit_once('/').unwrap();
        let url = format!("{server}/{name}");
        scenario(&Registry::start_with(&["--database", &url], &[]));
    }
}
