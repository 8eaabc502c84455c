//! What the `library://` tests share: a real `sreg-server` on a database
//! the test can also open (to freeze a tag or make a collection private,
//! which the library API cannot do), SIF files, and an HTTP client that
//! does not follow redirects.

#![allow(dead_code)]

use std::future::Future;
use std::path::PathBuf;

use registry_server::db::Database;
use sreg_tests::Server;
use sreg_tests::images::{library_hash, sif_bytes};

pub struct Registry {
    pub dir: tempfile::TempDir,
    pub server: Server,
    pub db_url: String,
}

impl Registry {
    /// A server on SQLite and a local blob folder, both in a fresh folder.
    pub fn start() -> Self {
        Self::start_with(&[], &[])
    }

    /// A server with extra options; `--database` defaults to a SQLite file
    /// in the folder.
    pub fn start_with(args: &[&str], env: &[(&str, String)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let db_url = match all.iter().position(|a| a == "--database") {
            Some(i) => all[i + 1].clone(),
            None => {
                let url = format!("sqlite://{}/library.db", dir.path().display());
                all.push("--database".into());
                all.push(url.clone());
                url
            }
        };
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let server = Server::start_with_env(dir.path(), &refs, env);
        Self {
            dir,
            server,
            db_url,
        }
    }

    pub fn url(&self) -> &str {
        &self.server.url
    }

    /// A new user and a token for it.
    pub fn user(&self, name: &str, admin: bool) -> String {
        self.server.user_with_token(name, admin)
    }

    /// Runs `f` on the server's database, from the test.
    pub fn db<F, Fut, T>(&self, f: F) -> T
    where
        F: FnOnce(Database) -> Fut,
        Fut: Future<Output = T>,
    {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let db = Database::connect(&self.db_url).await.unwrap();
            let out = f(db.clone()).await;
            db.pool.close().await;
            out
        })
    }

    /// A SIF file in the folder; returns its path, bytes and library hash.
    pub fn sif(
        &self,
        name: &str,
        arch: &str,
        payload: usize,
        seed: u64,
    ) -> (PathBuf, Vec<u8>, String) {
        let bytes = sif_bytes(arch, payload, seed);
        let path = self.dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        let hash = library_hash(&bytes);
        (path, bytes, hash)
    }

    /// Files under the blob store's `uploads/` (temporary objects).
    pub fn temporary_objects(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let root = self.dir.path().join("sreg-data/blobs/uploads");
        let mut stack = vec![root];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push(p);
                }
            }
        }
        out
    }
}

/// A blocking client that shows redirects instead of following them.
pub fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(300))
        .build()
        .unwrap()
}

/// The `{"error":{...}}` envelope of a refusal: its code equals the status.
pub fn envelope_error(resp: reqwest::blocking::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().expect("an error envelope");
    assert_eq!(body["error"]["code"], status, "{body}");
    let message = body["error"]["message"]
        .as_str()
        .expect("a message")
        .to_string();
    (status, message)
}
