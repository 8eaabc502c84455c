//! Upload sessions of `/api/v1/uploads`: what a push declared, kept as a
//! small JSON object beside the temporary uploads (`uploads/sessions/ID.json`)
//! until the image arrives. Nothing in the catalog changes before the bytes
//! are verified, and an abandoned session is an object under `uploads/`,
//! which `gc` removes like any other abandoned upload.

use object_store::ObjectStoreExt;
use object_store::path::Path;
use rand::distr::{Alphanumeric, SampleString};
use serde::{Deserialize, Serialize};
use sreg_api::v1::{BuildMetadata, LogInfo};

use crate::db::now_ms;
use crate::error::{Error, Result};
use crate::storage::Storage;

/// A session must be used within this time (ms). `gc`'s default grace
/// period is the same hour.
pub const SESSION_TTL_MS: i64 = 60 * 60 * 1000;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub id: String,
    pub user_id: i64,
    /// Where the image goes, with its entity resolved.
    pub entity: String,
    pub collection: String,
    pub container: String,
    /// Every tag to set: the reference's first.
    pub tags: Vec<String>,
    pub size: u64,
    /// Lower-case hex, when declared up front.
    pub sha256: Option<String>,
    /// Bytes received but not yet published: the image of a session opened
    /// without a sha256 waits here for the client's confirmation.
    #[serde(default)]
    pub received: Option<Received>,
    pub arch: Option<String>,
    pub private: Option<bool>,
    pub build: Option<BuildMetadata>,
    /// The build log, once uploaded (already at its content address).
    pub log: Option<LogInfo>,
    pub created_at: i64,
    pub expires_at: i64,
}

/// A verified SIF, at its content address, not yet published.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Received {
    pub sha256: String,
    pub size: u64,
    /// `sha256:<hex>`
    pub digest: String,
    pub facts: crate::publish::SifFacts,
}

impl Session {
    pub fn new_id() -> String {
        Alphanumeric.sample_string(&mut rand::rng(), 32)
    }
}

fn path(storage: &Storage, id: &str) -> Path {
    storage
        .uploads_prefix()
        .join("sessions")
        .join(format!("{id}.json"))
}

pub async fn save(storage: &Storage, s: &Session) -> Result<()> {
    let body = serde_json::to_vec(s).map_err(|e| Error::Internal(e.to_string()))?;
    storage
        .store
        .put(&path(storage, &s.id), body.into())
        .await?;
    Ok(())
}

/// The caller's live session `id`; anything else is "not found".
pub async fn load(storage: &Storage, id: &str, user_id: i64) -> Result<Session> {
    let missing = || {
        Error::NotFound(format!(
            "upload session {id:?} not found: it expired or was used already; start the push again"
        ))
    };
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(missing());
    }
    let bytes = match storage.store.get(&path(storage, id)).await {
        Ok(r) => r.bytes().await?,
        Err(object_store::Error::NotFound { .. }) => return Err(missing()),
        Err(e) => return Err(e.into()),
    };
    let s: Session = serde_json::from_slice(&bytes).map_err(|e| Error::Internal(e.to_string()))?;
    if s.user_id != user_id || s.expires_at <= now_ms() {
        return Err(missing());
    }
    Ok(s)
}

pub async fn remove(storage: &Storage, id: &str) {
    if let Err(e) = storage.store.delete(&path(storage, id)).await {
        tracing::warn!("could not remove upload session {id}: {e}");
    }
}
