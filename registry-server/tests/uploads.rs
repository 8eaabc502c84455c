//! The upload pipeline every protocol uses: stream in while hashing, check,
//! move to the content address. Nothing half-done is ever left visible, on a
//! local folder and on a real S3-compatible server.

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt, stream};
use object_store::ObjectStore;
use registry_server::error::Error;
use registry_server::publish::{Expect, verify_and_commit};
use registry_server::storage::Storage;
use sreg_tests::images::{library_hash, sif_bytes};
use sreg_tests::s3::S3Server;

fn body(bytes: &[u8]) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Unpin {
    // Uneven chunks, as a network delivers them.
    let chunks: Vec<Result<Bytes, std::io::Error>> = bytes
        .chunks(70_001)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    stream::iter(chunks)
}

async fn keys(storage: &Storage, under: &str) -> Vec<String> {
    let prefix = storage.prefix.clone().join(under);
    storage
        .store
        .list(Some(&prefix))
        .map_ok(|m| m.location.to_string())
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
}

fn hex_of(hash: &str) -> String {
    hash.trim_start_matches("sha256.").to_string()
}

async fn scenario(storage: &Storage) {
    let good = sif_bytes("amd64", 3 << 20, 1);
    let hash = library_hash(&good);

    // A sound upload lands at its content address with its facts read.
    let up = storage.ingest(body(&good), 1 << 30).await.unwrap();
    assert_eq!(up.size, good.len() as u64);
    assert_eq!(up.sha256, hex_of(&hash));
    let expect = Expect {
        size: Some(good.len() as u64),
        sha256: Some(hex_of(&hash)),
    };
    let (facts, digest) = verify_and_commit(storage, &up, &expect).await.unwrap();
    assert_eq!(digest, format!("sha256:{}", hex_of(&hash)));
    assert_eq!(facts.arch, "amd64");
    assert!(facts.deffile.unwrap().contains("From: alpine:3.20"));
    assert!(facts.labels.unwrap().contains("\"seed\":\"1\""));
    assert!(facts.partitions.contains("\"primary\":true"));
    assert_eq!(keys(storage, "blobs").await.len(), 1);
    assert!(keys(storage, "uploads").await.is_empty());

    // The same content again is stored once.
    let up = storage.ingest(body(&good), 1 << 30).await.unwrap();
    verify_and_commit(storage, &up, &expect).await.unwrap();
    assert_eq!(keys(storage, "blobs").await.len(), 1);
    assert!(keys(storage, "uploads").await.is_empty());

    // Every bad upload is refused and leaves nothing behind.
    let other = sif_bytes("arm64", 1 << 20, 2);
    let up = storage.ingest(body(&other), 1 << 30).await.unwrap();
    let declared_hash_only = Expect {
        size: None,
        sha256: expect.sha256.clone(),
    };
    let err = verify_and_commit(storage, &up, &declared_hash_only)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("sha256 of the received bytes"),
        "{err}"
    );

    let cut = &good[..good.len() - 10];
    let up = storage.ingest(body(cut), 1 << 30).await.unwrap();
    let err = verify_and_commit(storage, &up, &expect).await.unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");

    // Truncated but honest about its hash: the SIF check catches it.
    let up = storage.ingest(body(cut), 1 << 30).await.unwrap();
    let err = verify_and_commit(storage, &up, &Expect::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not a valid SIF"), "{err}");

    let text = b"Bootstrap: docker\nFrom: alpine\n".repeat(100);
    let up = storage.ingest(body(&text), 1 << 30).await.unwrap();
    let err = verify_and_commit(storage, &up, &Expect::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("not a valid SIF image: bad magic"),
        "{err}"
    );

    let err = storage.ingest(body(&good), 1 << 20).await.unwrap_err();
    assert!(matches!(err, Error::TooLarge(_)), "{err}");

    let broken = stream::iter(vec![
        Ok(Bytes::from_static(b"SIF")),
        Err(std::io::Error::other("connection reset")),
    ])
    .boxed();
    let err = storage.ingest(broken, 1 << 30).await.unwrap_err();
    assert!(
        err.to_string().contains("interrupted after 3 bytes"),
        "{err}"
    );

    assert_eq!(
        keys(storage, "blobs").await.len(),
        1,
        "no bad content stored"
    );
    assert!(
        keys(storage, "uploads").await.is_empty(),
        "no temporary object left"
    );

    // Ranged reads of a stored blob.
    let got = storage
        .get_blob(&digest, Some(100..200))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&got[..], &good[100..200]);
}

#[tokio::test]
async fn uploads_on_a_local_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let url = url::Url::from_directory_path(tmp.path().join("blobs")).unwrap();
    let storage = Storage::open(url.as_str()).unwrap();
    scenario(&storage).await;
    // The layout on disk is the content address.
    let blob_dir = tmp.path().join("blobs/blobs/sha256");
    assert_eq!(std::fs::read_dir(blob_dir).unwrap().count(), 1);
}

/// A plain test: the S3 server's helper is blocking, the scenario async.
#[test]
fn uploads_on_s3() {
    let s3 = S3Server::start();
    s3.create_bucket("images");
    let options = s3.env().into_iter().map(|(k, v)| (k.to_string(), v));
    let storage = Storage::open_with("s3://images/reg", options).unwrap();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(scenario(&storage));
    let stored = s3.keys("images");
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(stored[0].starts_with("reg/blobs/sha256/"), "{stored:?}");
}

/// A signed SIF: its signing entity is kept, for `library://` image JSON
/// (`fingerprints`) and `/api/v1`.
#[tokio::test]
async fn signatures_give_their_signing_fingerprints() {
    use sreg_sif::{Arch, DataType, Extra, HashType, Link, ObjectInput, SifBuilder, SignatureMeta};
    let fingerprint = "433FE984155206BD962725E20E8713472A879943";
    let mut entity = [0u8; 256];
    entity[..20].copy_from_slice(&hex::decode(fingerprint).unwrap());
    let part = vec![7u8; 8192];
    let mut out = std::io::Cursor::new(Vec::new());
    SifBuilder::new()
        .object(ObjectInput::definition_file(&b"Bootstrap: scratch\n"[..]))
        .object(ObjectInput::primary_squashfs(part.as_slice(), Arch::AMD64))
        .object(
            ObjectInput::new(
                DataType::Signature,
                &b"-----BEGIN PGP SIGNED MESSAGE-----"[..],
            )
            .link(Link::Object(2))
            .extra(Extra::Signature(SignatureMeta {
                hash_type: HashType::Sha256,
                entity,
            })),
        )
        .write(&mut out)
        .unwrap();
    let bytes = out.into_inner();

    let tmp = tempfile::tempdir().unwrap();
    let url = url::Url::from_directory_path(tmp.path().join("blobs")).unwrap();
    let storage = Storage::open(url.as_str()).unwrap();
    let up = storage.ingest(body(&bytes), 1 << 30).await.unwrap();
    let (facts, _) = verify_and_commit(&storage, &up, &Expect::default())
        .await
        .unwrap();
    assert!(facts.signed);
    assert_eq!(facts.fingerprints, [fingerprint]);

    // Unsigned images have none.
    let plain = sif_bytes("amd64", 4096, 3);
    let up = storage.ingest(body(&plain), 1 << 30).await.unwrap();
    let (facts, _) = verify_and_commit(&storage, &up, &Expect::default())
        .await
        .unwrap();
    assert!(!facts.signed && facts.fingerprints.is_empty());
}
