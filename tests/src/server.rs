//! A real `sreg-server serve` process.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};

use std::sync::mpsc;
use std::time::Duration;

use crate::bin;

/// Set by `scripts/test` for its PostgreSQL pass: the URL of a server
/// (without a database name) on which each test server gets a database of
/// its own.
pub const POSTGRES_ENV: &str = "SREG_TEST_POSTGRES";

/// A `sreg-server serve` process, stopped (SIGTERM) on drop.
pub struct Server {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    log: mpsc::Receiver<String>,
    cwd: PathBuf,
    /// The options that name this registry (data dir, database, storage).
    registry_args: Vec<String>,
    env: Vec<(String, String)>,
}

impl Server {
    /// Starts `sreg-server serve --listen 127.0.0.1:0 ARGS...` in `cwd` and
    /// waits until it says it is ready. Under `scripts/test`'s PostgreSQL
    /// pass, a server not given `--database` gets a fresh PostgreSQL
    /// database, so the same tests run on both backends.
    pub fn start(cwd: &Path, args: &[&str]) -> Self {
        Self::start_with_env(cwd, args, &[])
    }

    /// As [`Server::start`], with extra environment variables.
    pub fn start_with_env(cwd: &Path, args: &[&str], env: &[(&str, String)]) -> Self {
        let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        if !args.iter().any(|a| a == "--database")
            && let Ok(base) = std::env::var(POSTGRES_ENV)
        {
            args.push("--database".into());
            args.push(fresh_postgres_database(&base));
        }
        Self::spawn(cwd, args, env)
    }

    /// Starts a server on exactly the given options: the embedded defaults
    /// when there are none, whatever the test pass.
    pub fn start_embedded(cwd: &Path, args: &[&str]) -> Self {
        Self::spawn(cwd, args.iter().map(|s| s.to_string()).collect(), &[])
    }

    /// Runs another `sreg-server` command (`admin ...`, `gc`) on the same
    /// registry: same folder, environment, data dir, database and storage.
    pub fn admin(&self, args: &[&str]) -> Output {
        Command::new(bin("sreg-server"))
            .args(args)
            .args(&self.registry_args)
            .current_dir(&self.cwd)
            .env_remove("SREG_CONFIG")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("run sreg-server")
    }

    /// As [`Server::admin`], with `stdin` written to the command's input
    /// (e.g. `admin user passwd NAME`).
    pub fn admin_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        use std::io::Write;
        let mut child = Command::new(bin("sreg-server"))
            .args(args)
            .args(&self.registry_args)
            .current_dir(&self.cwd)
            .env_remove("SREG_CONFIG")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run sreg-server");
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(stdin.as_bytes())
            .expect("write stdin");
        child.wait_with_output().expect("wait for sreg-server")
    }

    /// Creates a user (admin or not) and returns a new token for it.
    pub fn user_with_token(&self, name: &str, admin: bool) -> String {
        let mut add = vec!["admin", "user", "add", name];
        if admin {
            add.push("--admin");
        }
        let out = self.admin(&add);
        assert!(out.status.success(), "admin user add {name}: {out:?}");
        let out = self.admin(&["admin", "token", "create", name]);
        assert!(out.status.success(), "admin token create {name}: {out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    fn spawn(cwd: &Path, args: Vec<String>, env: &[(&str, String)]) -> Self {
        let registry_args = registry_args(&args);
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let mut child = Command::new(bin("sreg-server"))
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(&args)
            .current_dir(cwd)
            .env("RUST_LOG", "info")
            .env_remove("SREG_CONFIG")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sreg-server");
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut seen = Vec::new();
        loop {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => {
                    if line.contains("sreg-server ready") {
                        let addr = field(&line, "listen").expect("ready line names the address");
                        return Self {
                            child: Some(child),
                            url: format!("http://{addr}"),
                            log: rx,
                            cwd: cwd.to_path_buf(),
                            registry_args,
                            env,
                        };
                    }
                    seen.push(line);
                }
                Err(_) => {
                    // Timed out, or stderr closed because the server exited.
                    let _ = child.kill();
                    let status = child.wait();
                    panic!(
                        "sreg-server did not become ready ({status:?}); it said:\n{}",
                        seen.join("\n")
                    );
                }
            }
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn stop(mut self) -> ExitStatus {
        self.terminate().expect("server was running")
    }

    /// Stops the server (SIGTERM) and starts it again on the same registry
    /// (folder, environment, data dir, database and storage); it listens on
    /// a new port.
    pub fn restart(mut self) -> Self {
        self.terminate();
        let env: Vec<(&str, String)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        Self::spawn(&self.cwd, self.registry_args.clone(), &env)
    }

    /// Log lines printed so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.try_iter().collect()
    }

    fn terminate(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        for _ in 0..100 {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        child.wait().ok()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// The options among `args` that say which registry it is.
fn registry_args(args: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if matches!(
            a.as_str(),
            "--data-dir" | "--database" | "--storage" | "--config"
        ) && let Some(v) = it.next()
        {
            out.push(a.clone());
            out.push(v.clone());
        }
    }
    out
}

/// A new, empty database on the PostgreSQL server at `base`.
fn fresh_postgres_database(base: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "t{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    );
    let out = Command::new("psql")
        .args([
            base,
            "-v",
            "ON_ERROR_STOP=1",
            "-qc",
            &format!("CREATE DATABASE {name}"),
        ])
        .output()
        .expect("psql (run scripts/setup)");
    assert!(out.status.success(), "CREATE DATABASE {name}: {out:?}");
    let base = base.trim_end_matches('/');
    let server = base.rsplit_once('/').map_or(base, |(s, _)| s);
    format!("{server}/{name}")
}

/// The value of `key=value` in a log line.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(&format!("{key}="))? + key.len() + 1;
    line[start..].split_whitespace().next()
}
