//! A real S3-compatible server (moto, installed into `.venv` by
//! scripts/setup), private to one test.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, workspace_root};

pub struct S3Server {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
}

impl S3Server {
    pub fn start() -> Self {
        let exe = workspace_root().join(".venv/bin/moto_server");
        assert!(
            exe.is_file(),
            "{} is missing: run scripts/setup",
            exe.display()
        );
        let port = free_port();
        let child = Command::new(exe)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn moto_server");
        let endpoint = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while reqwest::blocking::get(&endpoint).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Self { child, endpoint }
    }

    /// Creates a bucket (moto takes unsigned requests).
    pub fn create_bucket(&self, name: &str) {
        let resp = reqwest::blocking::Client::new()
            .put(format!("{}/{name}", self.endpoint))
            .send()
            .expect("create bucket");
        assert!(
            resp.status().is_success(),
            "create bucket: {}",
            resp.status()
        );
    }

    /// Keys of the objects in a bucket (ListObjectsV2, XML scanned for `<Key>`).
    pub fn keys(&self, bucket: &str) -> Vec<String> {
        let body = reqwest::blocking::get(format!("{}/{bucket}?list-type=2", self.endpoint))
            .and_then(|r| r.text())
            .expect("list bucket");
        body.split("<Key>")
            .skip(1)
            .filter_map(|s| s.split("</Key>").next())
            .map(str::to_string)
            .collect()
    }

    /// The environment `sreg-server` needs to reach this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ENDPOINT", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
        ]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
