//! `gc` removes what nothing references, and only that.

use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use registry_server::db::Database;
use registry_server::gc;
use registry_server::model::{accounts, catalog};
use registry_server::publish::{Expect, published, verify_and_commit};
use registry_server::storage::Storage;
use sreg_tests::images::{library_hash, sif_bytes};

fn body(b: Vec<u8>) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Unpin {
    stream::iter(vec![Ok(Bytes::from(b))])
}

/// A registry on SQLite and a local folder, with one user and one container.
async fn setup() -> (
    tempfile::TempDir,
    Database,
    Storage,
    registry_server::model::accounts::User,
    registry_server::model::catalog::Container,
) {
    let tmp = tempfile::tempdir().unwrap();
    let db = Database::connect(&format!("sqlite://{}/g.db", tmp.path().display()))
        .await
        .unwrap();
    db.migrate().await.unwrap();
    let url = url::Url::from_directory_path(tmp.path().join("blobs")).unwrap();
    let storage = Storage::open(url.as_str()).unwrap();
    let pool = &db.pool;
    let alice = accounts::create_user(pool, "alice", "", false)
        .await
        .unwrap();
    let coll = catalog::create_collection(pool, alice.id, "c", false, alice.id)
        .await
        .unwrap();
    let cont = catalog::create_container(pool, coll.id, "n", "")
        .await
        .unwrap();
    (tmp, db, storage, alice, cont)
}

#[tokio::test]
async fn unreferenced_blobs_and_abandoned_uploads_go_referenced_stay() {
    let (_tmp, db, storage, alice, cont) = setup().await;
    let pool = &db.pool;

    // One published image, one orphan blob, one abandoned upload.
    let kept = sif_bytes("amd64", 10_000, 1);
    let up = storage.ingest(body(kept.clone()), u64::MAX).await.unwrap();
    let (facts, digest) = verify_and_commit(&storage, &up, &Expect::default())
        .await
        .unwrap();
    let img = catalog::get_or_create_image(pool, cont.id, &library_hash(&kept), "", alice.id)
        .await
        .unwrap();
    catalog::publish_image(pool, img.id, &published(&facts, up.size, digest.clone()))
        .await
        .unwrap();

    let orphan = sif_bytes("amd64", 20_000, 2);
    let up = storage
        .ingest(body(orphan.clone()), u64::MAX)
        .await
        .unwrap();
    verify_and_commit(&storage, &up, &Expect::default())
        .await
        .unwrap();
    let _abandoned = storage
        .ingest(body(vec![0u8; 5000]), u64::MAX)
        .await
        .unwrap();

    // Young objects are safe.
    let r = gc::run(pool, &storage, Duration::from_secs(3600), false)
        .await
        .unwrap();
    assert_eq!(r, gc::GcReport::default());

    let dry = gc::run(pool, &storage, Duration::ZERO, true).await.unwrap();
    assert_eq!((dry.blobs_removed, dry.uploads_removed), (1, 1));
    let r = gc::run(pool, &storage, Duration::ZERO, false)
        .await
        .unwrap();
    assert_eq!(r, dry, "the dry run told the truth");
    assert_eq!(r.bytes_freed, orphan.len() as u64 + 5000);

    // The referenced blob is still readable; a second gc finds nothing.
    let got = storage
        .get_blob(&digest, None)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(got.len(), kept.len());
    let again = gc::run(pool, &storage, Duration::ZERO, false)
        .await
        .unwrap();
    assert_eq!(again, gc::GcReport::default());
}

#[tokio::test]
async fn parts_of_a_multipart_upload_under_way_are_kept_until_it_expires() {
    use object_store::ObjectStoreExt;
    let (_tmp, db, storage, alice, cont) = setup().await;
    let pool = &db.pool;
    let img = catalog::get_or_create_image(
        pool,
        cont.id,
        &format!("sha256.{}", "ab".repeat(32)),
        "",
        alice.id,
    )
    .await
    .unwrap();
    let now = registry_server::db::now_ms();
    sqlx::query(
        "INSERT INTO uploads (id, image_id, user_id, kind, size, created_at, expires_at)
         VALUES ('up1', $1, $2, 'library-multipart', 10, $3, $4)",
    )
    .bind(img.id)
    .bind(alice.id)
    .bind(now)
    .bind(now + 3_600_000)
    .execute(pool)
    .await
    .unwrap();
    let part = storage
        .uploads_prefix()
        .join("library-multipart")
        .join("up1")
        .join("1");
    storage
        .store
        .put(&part, vec![1u8; 10].into())
        .await
        .unwrap();

    let r = gc::run(pool, &storage, Duration::ZERO, false)
        .await
        .unwrap();
    assert_eq!(r.uploads_removed, 0, "a live upload keeps its parts");
    assert!(storage.store.head(&part).await.is_ok());

    sqlx::query("UPDATE uploads SET expires_at = $1 WHERE id = 'up1'")
        .bind(now - 1)
        .execute(pool)
        .await
        .unwrap();
    let r = gc::run(pool, &storage, Duration::ZERO, false)
        .await
        .unwrap();
    assert_eq!(r.uploads_removed, 1, "an expired upload loses them");
    assert!(storage.store.head(&part).await.is_err());
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM uploads")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(rows, 0);
}
