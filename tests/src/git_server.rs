//! A real `git daemon` on a loopback port serving the bare repositories of
//! a temporary folder over `git://`, with pushes (receive-pack) enabled,
//! killed on drop; and a work repository that commits and pushes to it.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

/// `git daemon --enable=receive-pack` over a temporary folder.
pub struct GitServer {
    child: Child,
    pub port: u16,
    base: tempfile::TempDir,
}

impl GitServer {
    /// Starts on a free port.
    pub fn start() -> Self {
        Self::start_on(free_port(), tempfile::tempdir().unwrap())
    }

    /// Starts on `port`, serving `base` (to bring a server back on the same
    /// address and repositories).
    pub fn start_on(port: u16, base: tempfile::TempDir) -> Self {
        // `git daemon` would run git-daemon as a child of its own, which
        // killing `git` leaves behind: run git-daemon itself.
        let child = Command::new(daemon_program())
            .args([
                "--reuseaddr",
                "--export-all",
                "--enable=receive-pack",
                "--informative-errors",
                "--listen=127.0.0.1",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.path().display()))
            .arg(base.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("git daemon (run scripts/setup)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "git daemon did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, port, base }
    }

    /// Creates an empty bare repository `NAME.git`; returns its URL.
    pub fn create(&self, name: &str) -> String {
        let dir = self.base.path().join(format!("{name}.git"));
        let ok = Command::new("git")
            .args(["init", "-q", "--bare", "-b", "main"])
            .arg(&dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "git init --bare {}", dir.display());
        self.url(name)
    }

    /// `git://127.0.0.1:PORT/NAME.git`
    pub fn url(&self, name: &str) -> String {
        format!("git://127.0.0.1:{}/{name}.git", self.port)
    }

    /// Stops the daemon and hands back its folder (for [`GitServer::start_on`]).
    pub fn stop(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::replace(&mut self.base, tempfile::tempdir().unwrap())
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn git_output(dir: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.org")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.org")
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(format!("git {args:?}: {out:?}"))
    }
}

/// `git-daemon` in git's exec path.
/// `git-daemon` itself (see [`GitServer::start_on`] for why not `git daemon`).
pub fn daemon_program() -> PathBuf {
    let out = Command::new("git")
        .arg("--exec-path")
        .output()
        .expect("git (run scripts/setup)");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("git-daemon")
}

/// A work tree that commits and pushes to a remote.
pub struct WorkRepo {
    dir: tempfile::TempDir,
    remote: String,
}

impl WorkRepo {
    /// A new repository on branch `main` whose remote is `remote`.
    pub fn new(remote: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        git_output(dir.path(), &["init", "-q", "-b", "main"]).unwrap();
        Self {
            dir,
            remote: remote.to_owned(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file (creating folders).
    pub fn write(&self, path: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Commits everything; returns the commit id.
    pub fn commit(&self, message: &str) -> String {
        git_output(self.path(), &["add", "-A"]).unwrap();
        git_output(self.path(), &["commit", "-q", "-m", message]).unwrap();
        self.head()
    }

    pub fn head(&self) -> String {
        git_output(self.path(), &["rev-parse", "HEAD"]).unwrap()
    }

    /// Pushes HEAD to `branch` of the remote.
    pub fn push(&self, branch: &str) {
        let spec = format!("HEAD:refs/heads/{branch}");
        git_output(self.path(), &["push", "-q", &self.remote, &spec]).unwrap();
    }

    /// Runs git in the work tree.
    pub fn git(&self, args: &[&str]) -> String {
        git_output(self.path(), args).unwrap()
    }
}
