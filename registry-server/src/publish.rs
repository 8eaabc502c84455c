//! The last step of every upload, whatever the protocol: check the bytes
//! against what the client declared, check that they are a sound SIF, then
//! move them to their content address and make the image visible in one
//! transaction. Any failure removes the temporary object and changes
//! nothing else.

use serde_json::json;
use sqlx::AnyPool;
use sreg_sif::{DataType, FsType, PartType, Sif};

use crate::blobs::Ingested;
use crate::error::{Error, Result};
use crate::model::catalog::{self, Image, Published};
use crate::storage::Storage;

/// Metadata objects larger than this are not stored in the database.
const METADATA_LIMIT: u64 = 1 << 20;

/// What the client declared about the bytes it sent.
#[derive(Debug, Clone, Default)]
pub struct Expect {
    pub size: Option<u64>,
    /// Lower-case hex.
    pub sha256: Option<String>,
}

/// What the SIF itself says.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct SifFacts {
    /// Architecture of the primary partition ("" when there is none).
    pub arch: String,
    pub signed: bool,
    pub encrypted: bool,
    pub deffile: Option<String>,
    /// JSON object text.
    pub labels: Option<String>,
    /// JSON array text: one object per partition.
    pub partitions: String,
    /// Signing entities of the signature objects (upper-case hex).
    #[serde(default)]
    pub fingerprints: Vec<String>,
}

/// Checks an upload and moves it to its content address. Returns the SIF
/// facts and the blob digest; on error the temporary object is gone.
pub async fn verify_and_commit(
    storage: &Storage,
    upload: &Ingested,
    expect: &Expect,
) -> Result<(SifFacts, String)> {
    let checked = async {
        if let Some(size) = expect.size
            && size != upload.size
        {
            return Err(Error::BadRequest(format!(
                "received {} bytes, but the upload declared {size}: the upload was truncated or padded",
                upload.size
            )));
        }
        if let Some(sha) = &expect.sha256
            && !sha.eq_ignore_ascii_case(&upload.sha256)
        {
            return Err(Error::BadRequest(format!(
                "the sha256 of the received bytes is {}, but the image was declared as {sha}",
                upload.sha256
            )));
        }
        inspect(storage, upload).await
    }
    .await;
    match checked {
        Ok(facts) => {
            let digest = storage.commit(upload).await?;
            Ok((facts, digest))
        }
        Err(e) => {
            storage.discard(&upload.temp).await;
            Err(e)
        }
    }
}

/// Verifies, commits and publishes an upload for an existing image, whose
/// hash the client declared when it created the image.
pub async fn publish(
    db: &AnyPool,
    storage: &Storage,
    image: &Image,
    upload: &Ingested,
    mut expect: Expect,
) -> Result<Image> {
    let declared = image
        .hash
        .strip_prefix("sha256.")
        .unwrap_or(&image.hash)
        .to_string();
    expect.sha256 = Some(declared);
    let (facts, digest) = verify_and_commit(storage, upload, &expect).await?;
    catalog::publish_image(db, image.id, &published(&facts, upload.size, digest)).await
}

pub fn published(facts: &SifFacts, size: u64, blob_digest: String) -> Published {
    Published {
        size: size as i64,
        arch: facts.arch.clone(),
        blob_digest,
        signed: facts.signed,
        encrypted: facts.encrypted,
        deffile: facts.deffile.clone(),
        labels: facts.labels.clone(),
        partitions: Some(facts.partitions.clone()),
        build: None,
        fingerprints: Some(serde_json::json!(facts.fingerprints).to_string()),
    }
}

/// A tag for `arch` may only point at an image of that architecture (or of
/// none known).
pub fn check_arch(image: &Image, arch: &str) -> Result<()> {
    if arch.is_empty() || image.arch.is_empty() || image.arch == arch {
        Ok(())
    } else {
        Err(Error::BadRequest(format!(
            "the image is for {}, not for {arch}: tag it for {}",
            image.arch, image.arch
        )))
    }
}

/// Reads the stored upload with the SIF reader (header, descriptors and
/// small metadata objects only) and refuses anything unsound.
async fn inspect(storage: &Storage, upload: &Ingested) -> Result<SifFacts> {
    let reader = storage.object_reader(&upload.temp, upload.size);
    tokio::task::spawn_blocking(move || facts(reader))
        .await
        .map_err(|e| Error::Internal(format!("SIF check failed: {e}")))?
}

fn facts<R: std::io::Read + std::io::Seek>(reader: R) -> Result<SifFacts> {
    let not_sif = |e: sreg_sif::SifError| Error::BadRequest(format!("not a valid SIF image: {e}"));
    let mut sif = Sif::from_reader(reader).map_err(not_sif)?;
    if let Some(problem) = sif.problems().into_iter().next() {
        return Err(not_sif(problem));
    }
    let arch = match sif.primary_partition() {
        Some(_) => sif.primary_arch().name().to_string(),
        None => String::new(),
    };
    let mut partitions = Vec::new();
    let mut encrypted = false;
    for d in sif.descriptors() {
        if let Some(p) = d.partition() {
            encrypted |= p.fs_type == FsType::EncryptedSquashfs;
            partitions.push(json!({
                "id": d.id(),
                "fs_type": p.fs_type,
                "part_type": p.part_type,
                "primary": p.part_type == PartType::PrimarySystem,
                "arch": p.arch,
                "size": d.size(),
            }));
        }
    }
    let signed = sif.first_of(DataType::Signature).is_some();
    let mut fingerprints: Vec<String> = sif
        .descriptors_of(DataType::Signature)
        .filter_map(|d| d.signature()?.fingerprint_hex())
        .collect();
    fingerprints.sort();
    fingerprints.dedup();
    let small_text = |sif: &mut Sif<R>, kind: DataType| -> Option<String> {
        let id = sif
            .first_of(kind)
            .filter(|d| (d.size() as u64) <= METADATA_LIMIT)?
            .id();
        let bytes = sif.read_object_limited(id, METADATA_LIMIT).ok()?;
        String::from_utf8(bytes).ok()
    };
    let deffile = small_text(&mut sif, DataType::Deffile);
    // Labels are kept only when they are a JSON object, as Apptainer writes them.
    let labels = small_text(&mut sif, DataType::Labels).filter(|text| {
        serde_json::from_str::<serde_json::Value>(text).is_ok_and(|v| v.is_object())
    });
    Ok(SifFacts {
        arch,
        signed,
        encrypted,
        deffile,
        labels,
        partitions: serde_json::Value::Array(partitions).to_string(),
        fingerprints,
    })
}
