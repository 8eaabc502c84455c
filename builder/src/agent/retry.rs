//! Registry calls that outlast network errors and registry restarts.

use std::future::Future;
use std::time::Duration;

use sreg_api::client::ClientError;
use tokio_util::sync::CancellationToken;

/// Longest wait for one call: a registry that hangs counts as down.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Whether an error may go away by itself: no answer, a timeout, a 5xx or
/// a 429. Other answers (401, 404, 409...) are final.
pub fn is_transient(e: &ClientError) -> bool {
    match e.status() {
        Some(s) => s >= 500 || s == 429 || s == 408,
        None => matches!(e, ClientError::Http { .. } | ClientError::Decode(_)),
    }
}

/// Why [`call`] gave up.
#[derive(Debug)]
pub enum GaveUp {
    /// A final answer from the registry.
    Refused(ClientError),
    /// `until` passed (or `stop` was cancelled) while the registry was unreachable.
    Unreachable(String),
}

impl std::fmt::Display for GaveUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GaveUp::Refused(e) => write!(f, "{e}"),
            GaveUp::Unreachable(e) => write!(f, "the registry is unreachable: {e}"),
        }
    }
}

impl GaveUp {
    pub fn status(&self) -> Option<u16> {
        match self {
            GaveUp::Refused(e) => e.status(),
            GaveUp::Unreachable(_) => None,
        }
    }
}

/// Calls `f` until it succeeds or fails for good, with exponential
/// backoff; stops retrying at `until` or when `stop` is cancelled.
pub async fn call<T, F, Fut>(
    what: &str,
    until: Option<tokio::time::Instant>,
    stop: &CancellationToken,
    mut f: F,
) -> Result<T, GaveUp>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ClientError>>,
{
    let mut backoff = FIRST_BACKOFF;
    let mut complained = false;
    loop {
        let error = match tokio::time::timeout(CALL_TIMEOUT, f()).await {
            Ok(Ok(v)) => {
                if complained {
                    eprintln!("sreg agent: {what}: the registry answers again");
                }
                return Ok(v);
            }
            Ok(Err(e)) if !is_transient(&e) => return Err(GaveUp::Refused(e)),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer in {}s", CALL_TIMEOUT.as_secs()),
        };
        if !complained {
            eprintln!("sreg agent: {what}: {error}; retrying");
            complained = true;
        }
        let mut wake = tokio::time::Instant::now() + backoff;
        if let Some(u) = until {
            if tokio::time::Instant::now() >= u {
                return Err(GaveUp::Unreachable(error));
            }
            wake = wake.min(u);
        }
        tokio::select! {
            () = tokio::time::sleep_until(wake) => {}
            () = stop.cancelled() => return Err(GaveUp::Unreachable(error)),
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
