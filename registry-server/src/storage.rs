//! Blob storage behind `object_store`: a local folder by default, any
//! S3-compatible server by URL.

use std::sync::Arc;

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use url::Url;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage URL {0:?} is not a URL: use file:///PATH or s3://bucket/prefix")]
    Url(String),
    #[error("cannot create storage folder {path}: {source}")]
    Folder {
        path: String,
        source: std::io::Error,
    },
    #[error("storage: {0}")]
    Store(#[from] object_store::Error),
}

/// Where blobs live: a store, and the prefix inside it that belongs to us.
#[derive(Debug, Clone)]
pub struct Storage {
    pub store: Arc<dyn ObjectStore>,
    pub prefix: Path,
    /// A local folder (`file://`): its objects are files under `/`, which
    /// `commit` fsyncs so that a published image survives a power loss.
    local: bool,
}

impl Storage {
    /// Opens the store named by `url`. S3 credentials and endpoint come from
    /// the usual `AWS_*` environment variables.
    pub fn open(url: &str) -> Result<Self, StorageError> {
        let options = std::env::vars().filter(|(k, _)| k.starts_with("AWS_"));
        Self::open_with(url, options)
    }

    /// Opens the store named by `url` with explicit options (`AWS_*` names
    /// or object_store's own keys).
    pub fn open_with(
        url: &str,
        options: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, StorageError> {
        let parsed = Url::parse(url).map_err(|_| StorageError::Url(url.into()))?;
        let local = parsed.scheme() == "file";
        if local {
            let dir = parsed
                .to_file_path()
                .map_err(|_| StorageError::Url(url.into()))?;
            std::fs::create_dir_all(&dir).map_err(|source| StorageError::Folder {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let options: Vec<(String, String)> = options
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        let (store, prefix) = object_store::parse_url_opts(&parsed, options)?;
        Ok(Self {
            store: Arc::from(store),
            prefix,
            local,
        })
    }

    /// The file behind an object of a local folder.
    pub fn local_file(&self, path: &Path) -> Option<std::path::PathBuf> {
        self.local
            .then(|| std::path::Path::new("/").join(path.as_ref()))
    }

    /// Writes and deletes a tiny object: fails when the store is unreachable,
    /// denies us, or cannot take writes (a registry that cannot write is down).
    pub async fn ping(&self) -> Result<(), StorageError> {
        let probe = self.prefix.clone().join(".healthz");
        self.store.put(&probe, "ok".into()).await?;
        self.store.delete(&probe).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_folder_is_created_and_answers() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("blobs");
        let url = Url::from_directory_path(&dir).unwrap();
        let storage = Storage::open(url.as_str()).unwrap();
        assert!(dir.is_dir());
        storage.ping().await.unwrap();
    }

    #[test]
    fn garbage_is_refused() {
        assert!(matches!(
            Storage::open("not a url"),
            Err(StorageError::Url(_))
        ));
    }
}
