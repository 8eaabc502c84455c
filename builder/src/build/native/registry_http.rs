//! HTTP for the `library` and `shub` sources: JSON look-ups and image
//! downloads streamed to disk with their sha256 checked on the way, with
//! errors that say what the registry answered.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use futures_util::StreamExt;
use reqwest::{Client, RequestBuilder, Response, StatusCode};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::oci::image::human_bytes;
use crate::build::job::Job;

/// A client for one registry: its base URL, and a token when it is the
/// registry sreg is logged in to.
pub struct RegistryHttp {
    client: Client,
    /// Without a trailing `/`.
    pub base: String,
    token: Option<String>,
    /// What to tell a user refused for want of a token.
    login_hint: String,
}

impl RegistryHttp {
    pub fn new(base: &str, token: Option<String>, login_hint: String) -> Result<RegistryHttp> {
        let client = Client::builder()
            .user_agent(concat!("sreg/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(30))
            .build()
            .context("cannot start an HTTP client")?;
        Ok(RegistryHttp {
            client,
            base: base.trim_end_matches('/').to_string(),
            token,
            login_hint,
        })
    }

    /// `base` + `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn get(&self, url: &str) -> RequestBuilder {
        let request = self.client.get(url);
        match &self.token {
            // reqwest drops it on a redirect to another host (presigned S3).
            Some(t) => request.bearer_auth(t),
            None => request,
        }
    }

    /// GETs `url` and reads JSON; a non-2xx answer becomes an error naming
    /// `what` and what the registry said.
    pub async fn json(&self, job: &Job<'_>, url: &str, what: &str) -> Result<serde_json::Value> {
        let response = self.send(job, url, what).await?;
        let body = response
            .bytes()
            .await
            .with_context(|| format!("cannot read the answer for {what} from {url}"))?;
        serde_json::from_slice(&body).map_err(|_| {
            anyhow!(
                "{url} did not answer JSON for {what}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            )
        })
    }

    async fn send(&self, job: &Job<'_>, url: &str, what: &str) -> Result<Response> {
        let response = tokio::select! {
            r = self.get(url).send() => r.map_err(|e| anyhow!("cannot reach {url}: {}", chain(&e)))?,
            () = job.cancel.cancelled() => bail!("cancelled"),
        };
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.text().await.unwrap_or_default();
        let said = error_message(&body);
        Err(match status {
            StatusCode::NOT_FOUND if self.token.is_none() => anyhow!(
                "{what} was not found ({url}: {said}); if it is private: {}",
                self.login_hint
            ),
            StatusCode::NOT_FOUND => anyhow!("{what} was not found ({url}: {said})"),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => anyhow!(
                "{url} refused access to {what} ({status}: {said}): {}",
                self.login_hint
            ),
            _ => anyhow!("{url} answered {status} for {what}: {said}"),
        })
    }

    /// Downloads `url` (redirects followed) to `dest`, hashing on the way;
    /// returns the sha256 (hex) and size.
    pub async fn download(
        &self,
        job: &Job<'_>,
        url: &str,
        what: &str,
        dest: &Path,
    ) -> Result<(String, u64)> {
        let started = Instant::now();
        let response = self.send(job, url, what).await?;
        let result = save(job, response, dest).await;
        let (hash, size) = match result {
            Ok(v) => v,
            Err(e) => {
                let _ = tokio::fs::remove_file(dest).await;
                return Err(e.context(format!("cannot download {what} from {url}")));
            }
        };
        let secs = started.elapsed().as_secs_f64();
        job.log.line(format!(
            "downloaded {what}: {} in {secs:.1} s ({}/s), sha256 {hash}",
            human_bytes(size),
            human_bytes((size as f64 / secs.max(0.001)) as u64)
        ));
        Ok((hash, size))
    }
}

async fn save(job: &Job<'_>, response: Response, dest: &Path) -> Result<(String, u64)> {
    let file = tokio::fs::File::create(dest)
        .await
        .with_context(|| format!("cannot create {}", dest.display()))?;
    let mut out = tokio::io::BufWriter::with_capacity(1 << 20, file);
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut stream = response.bytes_stream();
    loop {
        let chunk = tokio::select! {
            c = stream.next() => c,
            () = job.cancel.cancelled() => bail!("cancelled"),
        };
        let Some(chunk) = chunk else { break };
        let chunk = chunk.map_err(|e| anyhow!("the download broke off: {}", chain(&e)))?;
        hasher.update(&chunk);
        size += chunk.len() as u64;
        out.write_all(&chunk)
            .await
            .with_context(|| format!("cannot write {}", dest.display()))?;
    }
    out.flush()
        .await
        .with_context(|| format!("cannot write {}", dest.display()))?;
    Ok((hex::encode(hasher.finalize()), size))
}

/// The message of a library (`{"error":{"message"}}`), shub
/// (`{"detail"}`) or distribution (`{"errors":[{"message"}]}`) error body,
/// or the start of the body.
fn error_message(body: &str) -> String {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(body) {
        let found = v
            .pointer("/error/message")
            .or_else(|| v.get("detail"))
            .or_else(|| v.pointer("/errors/0/message"))
            .or_else(|| v.get("message"))
            .and_then(|m| m.as_str());
        if let Some(m) = found {
            return m.to_string();
        }
    }
    let trimmed = body.trim();
    if trimmed.is_empty() {
        "no details".to_string()
    } else {
        trimmed.chars().take(300).collect()
    }
}

/// An error with its causes (reqwest keeps the useful part there).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Checks a sha256 (hex) against a registry's `sha256.<hex>` or
/// `sha256:<hex>`.
pub fn check_hash(actual_hex: &str, expected: &str, what: &str) -> Result<()> {
    let Some(want) = expected
        .strip_prefix("sha256.")
        .or_else(|| expected.strip_prefix("sha256:"))
    else {
        bail!("the registry gives {what} the hash `{expected}`, which is not a sha256");
    };
    if !want.eq_ignore_ascii_case(actual_hex) {
        bail!(
            "{what} does not match its hash: the registry says sha256 {want}, the download is {actual_hex}"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_of_each_protocol_are_read() {
        assert_eq!(
            error_message(r#"{"error":{"code":404,"message":"no such image"}}"#),
            "no such image"
        );
        assert_eq!(error_message(r#"{"detail":"private"}"#), "private");
        assert_eq!(
            error_message(r#"{"errors":[{"code":"DENIED","message":"denied"}]}"#),
            "denied"
        );
        assert_eq!(error_message(""), "no details");
        assert_eq!(error_message("<html>x</html>"), "<html>x</html>");
    }

    #[test]
    fn hashes_are_compared_in_either_spelling() {
        let hex = "ab".repeat(32);
        check_hash(&hex, &format!("sha256.{hex}"), "x").unwrap();
        check_hash(&hex, &format!("sha256:{}", hex.to_uppercase()), "x").unwrap();
        let err = check_hash(&hex, &format!("sha256.{}", "cd".repeat(32)), "x").unwrap_err();
        assert!(err.to_string().contains("does not match"));
        assert!(check_hash(&hex, "md5.abc", "x").is_err());
    }
}
