//! The build container's output, copied into the build log line by line
//! as it comes.

use anyhow::{Context, Result};
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptions;
use futures_util::StreamExt;

use crate::build::log::BuildLog;

/// Follows the container's stdout and stderr until it stops. The engine
/// keeps what came before the call, so this may start after the container.
pub fn follow(
    docker: Docker,
    container: String,
    log: BuildLog,
) -> tokio::task::JoinHandle<Result<()>> {
    tokio::spawn(async move {
        let options = LogsOptions {
            follow: true,
            stdout: true,
            stderr: true,
            ..Default::default()
        };
        let mut stream = docker.logs(&container, Some(options));
        let mut out = Lines::default();
        let mut err = Lines::default();
        while let Some(chunk) = stream.next().await {
            match chunk.context("lost the build container's output")? {
                LogOutput::StdErr { message } => err.push(&message, &log),
                LogOutput::StdOut { message } | LogOutput::Console { message } => {
                    out.push(&message, &log)
                }
                LogOutput::StdIn { .. } => {}
            }
        }
        out.finish(&log);
        err.finish(&log);
        Ok(())
    })
}

/// Cuts a stream of chunks into whole lines. The engine's frames follow the
/// writer's `write` calls, which need not end at a newline.
#[derive(Default)]
struct Lines {
    pending: Vec<u8>,
}

impl Lines {
    fn push(&mut self, chunk: &[u8], log: &BuildLog) {
        self.pending.extend_from_slice(chunk);
        if let Some(end) = self.pending.iter().rposition(|&b| b == b'\n') {
            log.bytes(&self.pending[..=end]);
            self.pending.drain(..=end);
        }
    }

    fn finish(&mut self, log: &BuildLog) {
        if !self.pending.is_empty() {
            self.pending.push(b'\n');
            log.bytes(&self.pending);
            self.pending.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_become_whole_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = BuildLog::create(&dir.path().join("b.log"), false).unwrap();
        let mut lines = Lines::default();
        lines.push(b"one\ntw", &log);
        assert_eq!(std::fs::read_to_string(log.path()).unwrap(), "one\n");
        lines.push(b"o\nthr", &log);
        lines.push(b"ee", &log);
        lines.finish(&log);
        assert_eq!(
            std::fs::read_to_string(log.path()).unwrap(),
            "one\ntwo\nthree\n"
        );
    }
}
