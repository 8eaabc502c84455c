//! The build log: every line a backend or its child processes print goes to
//! the log file, and to stderr unless `--quiet`.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

/// A shared handle on the log file.
#[derive(Clone)]
pub struct BuildLog {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    file: Mutex<File>,
    echo: bool,
}

impl BuildLog {
    /// Creates (or truncates) the log file.
    pub fn create(path: &Path, echo: bool) -> Result<BuildLog> {
        let file = File::create(path)
            .with_context(|| format!("cannot create the build log {}", path.display()))?;
        Ok(BuildLog {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                file: Mutex::new(file),
                echo,
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Appends one line (a newline is added).
    pub fn line(&self, line: impl AsRef<str>) {
        self.bytes(format!("{}\n", line.as_ref()).as_bytes());
    }

    /// Appends raw output. A log that cannot be written must not fail the
    /// build: the error shows on stderr once per write.
    pub fn bytes(&self, data: &[u8]) {
        let mut file = self.inner.file.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = file.write_all(data) {
            eprintln!("sreg: cannot write the build log: {e}");
        }
        drop(file);
        if self.inner.echo {
            let _ = std::io::stderr().write_all(data);
        }
    }

    /// The last `n` lines of the log, for error messages.
    pub fn tail(&self, n: usize) -> String {
        tail_of_file(&self.inner.path, n).unwrap_or_default()
    }

    /// Runs `cmd` with stdin closed and its stdout and stderr into the log,
    /// line by line. When `cancel` fires, the child and everything it
    /// started are stopped (see [`stop_group`]), and then this returns an
    /// error.
    pub async fn run(&self, mut cmd: Command, cancel: &CancellationToken) -> Result<ExitStatus> {
        let shown = format!("{:?}", cmd.as_std());
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so a cancel reaches its children too.
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {shown}"))?;
        let out = child.stdout.take().map(|s| self.pump(s));
        let err = child.stderr.take().map(|s| self.pump(s));
        let status = tokio::select! {
            status = child.wait() => status.with_context(|| format!("cannot wait for {shown}"))?,
            () = cancel.cancelled() => {
                stop_group(&mut child).await;
                bail!("cancelled");
            }
        };
        for task in [out, err].into_iter().flatten() {
            let _ = task.await;
        }
        Ok(status)
    }

    /// Copies a child's stream into the log, line by line.
    fn pump<R: AsyncRead + Unpin + Send + 'static>(
        &self,
        stream: R,
    ) -> tokio::task::JoinHandle<()> {
        let log = self.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stream);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if !line.ends_with(b"\n") {
                            line.push(b'\n');
                        }
                        log.bytes(&line);
                    }
                }
            }
        })
    }
}

/// How long a cancelled child's process group has to exit after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Stops a child that leads its own process group, with all its
/// descendants (Apptainer forks a starter and mksquashfs; a shell its
/// commands): SIGTERM first so they can clean up, SIGKILL to whatever is
/// left after [`STOP_GRACE`].
async fn stop_group(child: &mut Child) {
    let Some(pgid) = child.id().and_then(|p| i32::try_from(p).ok()) else {
        return; // already reaped
    };
    let pgid = Pid::from_raw(pgid);
    let _ = killpg(pgid, Signal::SIGTERM);
    let deadline = tokio::time::Instant::now() + STOP_GRACE;
    let _ = tokio::time::timeout_at(deadline, child.wait()).await;
    // The group outlives its leader while a descendant is alive.
    while killpg(pgid, None).is_ok() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = killpg(pgid, Signal::SIGKILL);
    let _ = child.wait().await;
}

/// The last `n` lines of a file (reads at most its last 64 KiB).
pub fn tail_of_file(path: &Path, n: usize) -> std::io::Result<String> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let start = len.saturating_sub(64 * 1024);
    file.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::new();
    file.read_to_end(&mut buf)?;
    Ok(last_lines(&String::from_utf8_lossy(&buf), n))
}

/// The last `n` lines of a text.
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_lines_of_a_text() {
        assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(last_lines("a", 5), "a");
        assert_eq!(last_lines("", 5), "");
    }

    #[tokio::test]
    async fn child_output_lands_in_the_log_and_tail_shows_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let log = BuildLog::create(&dir.path().join("b.log"), false).unwrap();
        log.line("starting");
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "for i in 1 2 3 4 5; do echo out$i; done; echo err >&2; exit 3",
        ]);
        let status = log.run(cmd, &CancellationToken::new()).await.unwrap();
        assert_eq!(status.code(), Some(3));
        let text = std::fs::read_to_string(log.path()).unwrap();
        assert!(text.starts_with("starting\nout1\n"), "{text}");
        assert!(text.contains("err\n"));
        assert_eq!(log.tail(1).lines().count(), 1);
        assert!(log.tail(100).contains("out5"));
    }

    #[tokio::test]
    async fn cancel_kills_the_child() {
        let dir = tempfile::tempdir().unwrap();
        let log = BuildLog::create(&dir.path().join("b.log"), false).unwrap();
        let cancel = CancellationToken::new();
        let c = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            c.cancel();
        });
        let started = std::time::Instant::now();
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        assert!(log.run(cmd, &cancel).await.is_err());
        assert!(started.elapsed().as_secs() < 10);
    }

    #[tokio::test]
    async fn cancel_stops_the_childs_children_too() {
        let dir = tempfile::tempdir().unwrap();
        let log = BuildLog::create(&dir.path().join("b.log"), false).unwrap();
        let pid_file = dir.path().join("grandchild.pid");
        let cancel = CancellationToken::new();
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("sleep 60 & echo $! > {}; wait", pid_file.display()));
        let c = cancel.clone();
        let watched = pid_file.clone();
        tokio::spawn(async move {
            while !watched.exists() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            c.cancel();
        });
        assert!(log.run(cmd, &cancel).await.is_err());
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // Reaped by init once killed; give it a moment.
        let gone = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            !Path::new(&format!("/proc/{pid}")).exists()
        });
        assert!(gone, "the background sleep {pid} outlived the cancel");
    }
}
