//! The data model's rules, on both database backends: SQLite, and a real
//! PostgreSQL server started for the test.

use registry_server::db::{Database, now_ms};
use registry_server::error::Error;
use registry_server::model::access::{Access, Caller, collection_access};
use registry_server::model::{accounts, activity, catalog, tags, tokens};
use registry_server::sealing::Keys;
use sreg_tests::postgres::Postgres;

async fn scenario(db: &Database) {
    let pool = &db.pool;
    let keys = Keys::from_master(&[9; 32]);

    // Accounts: names follow the library client's rule and are unique.
    let alice = accounts::create_user(pool, "alice", "alice@example.org", false)
        .await
        .unwrap();
    let bob = accounts::create_user(pool, "bob", "", false).await.unwrap();
    let root = accounts::create_user(pool, "root", "", true).await.unwrap();
    assert!(matches!(
        accounts::create_user(pool, "alice", "", false).await,
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        accounts::create_user(pool, "Alice", "", false).await,
        Err(Error::BadRequest(_))
    ));
    assert!(matches!(
        accounts::create_user(pool, "../x", "", false).await,
        Err(Error::BadRequest(_))
    ));

    // Tokens: valid until revoked or expired; never stored in clear.
    let (t1, row) = tokens::create(pool, &keys, alice.id, "ci", None)
        .await
        .unwrap();
    assert!(t1.starts_with("sreg_") && t1.len() == 45);
    let (user, _) = tokens::authenticate(pool, &t1)
        .await
        .unwrap()
        .expect("valid token");
    assert_eq!(user.name, "alice");
    let stored: String = sqlx::query_scalar("SELECT token_hash FROM tokens WHERE id = $1")
        .bind(row.id)
        .fetch_one(pool)
        .await
        .unwrap();
    assert!(!stored.contains(&t1[5..]), "token stored in clear");
    let used: Option<i64> = sqlx::query_scalar("SELECT last_used_at FROM tokens WHERE id = $1")
        .bind(row.id)
        .fetch_one(pool)
        .await
        .unwrap();
    assert!(used.is_some(), "last use recorded");
    let mut wrong = t1.clone();
    wrong.replace_range(40..41, if &t1[40..41] == "a" { "b" } else { "a" });
    assert!(tokens::authenticate(pool, &wrong).await.unwrap().is_none());
    assert!(
        tokens::authenticate(pool, "garbage")
            .await
            .unwrap()
            .is_none()
    );
    tokens::revoke(pool, alice.id, row.id).await.unwrap();
    assert!(
        tokens::authenticate(pool, &t1).await.unwrap().is_none(),
        "revoked"
    );
    assert!(
        matches!(
            tokens::revoke(pool, bob.id, row.id).await,
            Err(Error::NotFound(_))
        ),
        "not bob's"
    );
    let (t2, _) = tokens::create(pool, &keys, alice.id, "old", Some(now_ms() - 1))
        .await
        .unwrap();
    assert!(
        tokens::authenticate(pool, &t2).await.unwrap().is_none(),
        "expired"
    );
    assert_eq!(tokens::list(pool, alice.id).await.unwrap().len(), 2);

    // Access: private means invisible to those without access.
    let coll = catalog::create_collection(pool, alice.id, "tools", true, alice.id)
        .await
        .unwrap();
    let (a, b, r, anon) = (
        Caller::user(alice.clone()),
        Caller::user(bob.clone()),
        Caller::user(root.clone()),
        Caller::anonymous(),
    );
    assert_eq!(
        collection_access(pool, &a, &coll).await.unwrap(),
        Access::Write
    );
    assert_eq!(
        collection_access(pool, &b, &coll).await.unwrap(),
        Access::None
    );
    assert_eq!(
        collection_access(pool, &anon, &coll).await.unwrap(),
        Access::None
    );
    assert_eq!(
        collection_access(pool, &r, &coll).await.unwrap(),
        Access::Write
    );
    catalog::add_collection_member(pool, coll.id, bob.id, "contributor")
        .await
        .unwrap();
    assert_eq!(
        collection_access(pool, &b, &coll).await.unwrap(),
        Access::Read
    );
    catalog::set_collection_private(pool, coll.id, false)
        .await
        .unwrap();
    let coll = catalog::collection(pool, "alice", "tools")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        collection_access(pool, &anon, &coll).await.unwrap(),
        Access::Read
    );
    let team = accounts::create_team(pool, "lab", alice.id).await.unwrap();
    let lab = catalog::create_collection(pool, team.id, "tools", true, alice.id)
        .await
        .unwrap();
    assert_eq!(
        collection_access(pool, &b, &lab).await.unwrap(),
        Access::None
    );
    accounts::add_team_member(pool, team.id, bob.id, "member")
        .await
        .unwrap();
    assert_eq!(
        collection_access(pool, &b, &lab).await.unwrap(),
        Access::Write
    );
    assert_eq!(
        catalog::collections_named(pool, "tools")
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(matches!(
        catalog::create_collection(pool, alice.id, "tools", false, alice.id).await,
        Err(Error::Conflict(_))
    ));

    // Images are content-addressed within a container; same hash, same image.
    let c = catalog::create_container(pool, coll.id, "samtools", "")
        .await
        .unwrap();
    let hash = format!("sha256.{}", "ab".repeat(32));
    let img = catalog::get_or_create_image(pool, c.id, &hash, "", alice.id)
        .await
        .unwrap();
    let again = catalog::get_or_create_image(pool, c.id, &hash, "", alice.id)
        .await
        .unwrap();
    assert_eq!(img.id, again.id);
    assert!(!img.is_uploaded());
    assert!(matches!(
        catalog::get_or_create_image(pool, c.id, "sha256.XYZ", "", alice.id).await,
        Err(Error::BadRequest(_))
    ));
    let img = catalog::publish_image(
        pool,
        img.id,
        &catalog::Published {
            size: 3 << 30,
            arch: "amd64".into(),
            blob_digest: format!("sha256:{}", "ab".repeat(32)),
            deffile: Some("Bootstrap: docker\n".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(img.is_uploaded());
    assert_eq!(img.size, 3 << 30, "sizes over 2 GiB survive");

    // Tags per arch; frozen tags never move.
    tags::set(pool, c.id, "amd64", "latest", img.id)
        .await
        .unwrap();
    tags::set(pool, c.id, "amd64", "1.17", img.id)
        .await
        .unwrap();
    assert_eq!(
        tags::resolve(pool, c.id, "latest", Some("amd64"))
            .await
            .unwrap(),
        Some(img.id)
    );
    assert_eq!(
        tags::resolve(pool, c.id, "latest", Some("arm64"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        tags::resolve(pool, c.id, "latest", None).await.unwrap(),
        Some(img.id)
    );
    assert!(matches!(
        tags::set(pool, c.id, "amd64", "a/b", img.id).await,
        Err(Error::BadRequest(_))
    ));
    let hash2 = format!("sha256.{}", "cd".repeat(32));
    let img2 = catalog::get_or_create_image(pool, c.id, &hash2, "", alice.id)
        .await
        .unwrap();
    tags::set_frozen(pool, c.id, "amd64", "1.17", true)
        .await
        .unwrap();
    assert!(matches!(
        tags::set(pool, c.id, "amd64", "1.17", img2.id).await,
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        tags::delete(pool, c.id, "amd64", "1.17").await,
        Err(Error::Conflict(_))
    ));
    tags::set(pool, c.id, "amd64", "latest", img2.id)
        .await
        .unwrap();
    assert_eq!(
        tags::resolve(pool, c.id, "latest", Some("amd64"))
            .await
            .unwrap(),
        Some(img2.id)
    );
    assert_eq!(tags::of_image(pool, img.id).await.unwrap().len(), 1);

    // Pulls count per image, container and collection; stars per user.
    activity::record_pull(pool, img.id, Some(bob.id), activity::Client::Library)
        .await
        .unwrap();
    activity::record_pull(pool, img.id, None, activity::Client::Shub)
        .await
        .unwrap();
    let img = catalog::image_by_id(pool, img.id).await.unwrap().unwrap();
    assert_eq!(img.downloads, 2);
    assert_eq!(
        catalog::container_by_id(pool, c.id)
            .await
            .unwrap()
            .unwrap()
            .downloads,
        2
    );
    assert_eq!(
        catalog::collection_by_id(pool, coll.id)
            .await
            .unwrap()
            .unwrap()
            .downloads,
        2
    );
    activity::star(pool, bob.id, c.id).await.unwrap();
    activity::star(pool, bob.id, c.id).await.unwrap();
    activity::star(pool, alice.id, c.id).await.unwrap();
    assert_eq!(activity::star_count(pool, c.id).await.unwrap(), 2);
    activity::unstar(pool, bob.id, c.id).await.unwrap();
    assert_eq!(activity::star_count(pool, c.id).await.unwrap(), 1);

    // Deleting an image removes its tags too.
    catalog::delete_image(pool, img2.id).await.unwrap();
    assert_eq!(
        tags::resolve(pool, c.id, "latest", Some("amd64"))
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn model_rules_on_sqlite() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Database::connect(&format!("sqlite://{}/m.db", tmp.path().display()))
        .await
        .unwrap();
    db.migrate().await.unwrap();
    scenario(&db).await;
}

#[tokio::test]
async fn model_rules_on_postgres() {
    let pg = Postgres::start();
    let db = Database::connect(&pg.url).await.unwrap();
    db.migrate().await.unwrap();
    scenario(&db).await;
}
