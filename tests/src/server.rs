//! A real `sreg-server serve` process.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};

use std::sync::mpsc;
use std::time::Duration;

use crate::bin;

/// A `sreg-server serve` process, stopped (SIGTERM) on drop.
pub struct Server {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    log: mpsc::Receiver<String>,
}

impl Server {
    /// Starts `sreg-server serve --listen 127.0.0.1:0 ARGS...` in `cwd` and
    /// waits until it says it is ready.
    pub fn start(cwd: &Path, args: &[&str]) -> Self {
        Self::start_with_env(cwd, args, &[])
    }

    /// As [`Server::start`], with extra environment variables.
    pub fn start_with_env(cwd: &Path, args: &[&str], env: &[(&str, String)]) -> Self {
        let mut child = Command::new(bin("sreg-server"))
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
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

/// The value of `key=value` in a log line.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(&format!("{key}="))? + key.len() + 1;
    line[start..].split_whitespace().next()
}
