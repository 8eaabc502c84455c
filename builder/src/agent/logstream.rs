//! Sends a job's log to the registry as it grows: the build log file, then
//! whatever the agent adds. Each chunk says where it starts
//! (`X-Sreg-Log-Offset`), so a chunk resent after an error is stored once.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::Duration;

use sreg_api::client::Client;
use tokio_util::sync::CancellationToken;

use super::retry;

const CHUNK: usize = 512 << 10;
const EVERY: Duration = Duration::from_secs(1);

pub struct LogSender {
    pub client: Client,
    pub job: i64,
    pub lease_id: String,
    /// The registry's log size acknowledged so far.
    pub offset: u64,
    /// Cancelled when the lease is lost: sending is pointless then.
    pub lost: CancellationToken,
    /// The last call failed for good (a lost lease): stop sending.
    pub broken: bool,
}

impl LogSender {
    /// Sends `bytes` after what was acknowledged, retrying until the
    /// registry takes them or the lease is lost.
    pub async fn send(&mut self, bytes: &[u8]) -> bool {
        for piece in bytes.chunks(CHUNK) {
            if self.broken {
                return false;
            }
            let offset = self.offset;
            let r = retry::call("sending the log", None, &self.lost, || {
                self.client
                    .agent_log(self.job, &self.lease_id, offset, piece.to_vec())
            })
            .await;
            match r {
                Ok(_) => self.offset = offset + piece.len() as u64,
                Err(e) => {
                    if !self.lost.is_cancelled() {
                        eprintln!("sreg agent: job {}: log not stored: {e}", self.job);
                    }
                    self.broken = true;
                    return false;
                }
            }
        }
        true
    }
}

/// Follows `path` (which may not exist yet) until `done` is cancelled, then
/// sends the rest; returns the sender for the agent's own last lines.
pub async fn follow(mut sender: LogSender, path: PathBuf, done: CancellationToken) -> LogSender {
    let mut pos: u64 = 0;
    loop {
        let finished = done.is_cancelled();
        loop {
            let chunk = read_from(&path, pos);
            if chunk.is_empty() || !sender.send(&chunk).await {
                break;
            }
            pos += chunk.len() as u64;
        }
        if finished || sender.broken {
            return sender;
        }
        tokio::select! {
            () = tokio::time::sleep(EVERY) => {}
            () = done.cancelled() => {}
        }
    }
}

/// Up to [`CHUNK`] bytes of the file from `pos` (none if it is missing).
fn read_from(path: &std::path::Path, pos: u64) -> Vec<u8> {
    let Ok(mut file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let mut buf = Vec::new();
    if file.seek(SeekFrom::Start(pos)).is_ok() {
        let _ = file.take(CHUNK as u64).read_to_end(&mut buf);
    }
    buf
}
