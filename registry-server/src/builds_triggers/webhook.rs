//! Webhook requests of GitHub, GitLab and Gitea/Forgejo, read without any
//! database: which event, the delivery id, the signature check over the
//! exact bytes received, and the push payload.

use axum::http::HeaderMap;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sreg_api::builds::ForgeKind;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// What a delivery is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Ping,
    Push,
    /// Anything else (tag pushes, issues, ...), named as the forge sent it.
    Other(String),
}

/// The parts of a push event the registry uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    /// `refs/heads/BRANCH` or `refs/tags/TAG`.
    pub git_ref: String,
    /// The old head; `None` for a new branch (all zeros).
    pub before: Option<String>,
    /// The pushed commit; `None` when the branch was deleted.
    pub after: Option<String>,
    /// Every URL the payload gives for the repository (clone, web, ssh).
    pub repository_urls: Vec<String>,
}

impl Push {
    /// The branch pushed to, or `None` for a tag or another kind of ref.
    pub fn branch(&self) -> Option<&str> {
        self.git_ref.strip_prefix("refs/heads/")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PayloadError {
    #[error("the body is not JSON: {0}")]
    Json(String),
    #[error("the form body has no `payload` field")]
    NoFormPayload,
    #[error("the push payload has no `{0}`")]
    Missing(&'static str),
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The event a delivery names in its headers.
pub fn event(forge: ForgeKind, headers: &HeaderMap) -> Option<Event> {
    let name = match forge {
        ForgeKind::Github => header(headers, "x-github-event")?,
        ForgeKind::Gitea => header(headers, "x-gitea-event")
            .or_else(|| header(headers, "x-forgejo-event"))
            .or_else(|| header(headers, "x-github-event"))?,
        ForgeKind::Gitlab => header(headers, "x-gitlab-event")?,
    };
    Some(match (forge, name) {
        (ForgeKind::Gitlab, "Push Hook") => Event::Push,
        (ForgeKind::Github | ForgeKind::Gitea, "push") => Event::Push,
        (ForgeKind::Github | ForgeKind::Gitea, "ping") => Event::Ping,
        (_, other) => Event::Other(other.to_owned()),
    })
}

/// The delivery's idempotency key: the forge sends the same one again on a
/// redelivery. Without one, a hash of the body stands in (a redelivery
/// sends the same bytes).
pub fn delivery_id(forge: ForgeKind, headers: &HeaderMap, body: &[u8]) -> String {
    let sent = match forge {
        ForgeKind::Github => header(headers, "x-github-delivery"),
        ForgeKind::Gitea => header(headers, "x-gitea-delivery")
            .or_else(|| header(headers, "x-forgejo-delivery"))
            .or_else(|| header(headers, "x-github-delivery")),
        // Idempotency-Key is GitLab's retry-stable key; older GitLab sends
        // only the event UUID.
        ForgeKind::Gitlab => {
            header(headers, "idempotency-key").or_else(|| header(headers, "x-gitlab-event-uuid"))
        }
    };
    match sent {
        // Bounded, so that a hostile header cannot bloat the table.
        Some(id) => id.chars().take(200).collect(),
        None => format!("body-sha256:{}", hex::encode(Sha256::digest(body))),
    }
}

/// Whether the delivery carries a signature (or token) at all.
pub fn has_signature(forge: ForgeKind, headers: &HeaderMap) -> bool {
    match forge {
        ForgeKind::Github => header(headers, "x-hub-signature-256").is_some(),
        ForgeKind::Gitea => {
            header(headers, "x-gitea-signature").is_some()
                || header(headers, "x-forgejo-signature").is_some()
                || header(headers, "x-hub-signature-256").is_some()
        }
        ForgeKind::Gitlab => header(headers, "x-gitlab-token").is_some(),
    }
}

/// Checks the delivery's signature against one project's secret, in
/// constant time: GitHub's `X-Hub-Signature-256: sha256=HEX`, Gitea's
/// `X-Gitea-Signature: HEX` (both HMAC-SHA256 of the raw body), GitLab's
/// `X-Gitlab-Token` (the secret itself).
pub fn verify(forge: ForgeKind, headers: &HeaderMap, body: &[u8], secret: &[u8]) -> bool {
    match forge {
        ForgeKind::Github => header(headers, "x-hub-signature-256")
            .and_then(|s| s.strip_prefix("sha256="))
            .is_some_and(|hex_sig| verify_hmac_hex(secret, body, hex_sig)),
        ForgeKind::Gitea => {
            let sig = header(headers, "x-gitea-signature")
                .or_else(|| header(headers, "x-forgejo-signature"))
                .or_else(|| {
                    header(headers, "x-hub-signature-256").and_then(|s| s.strip_prefix("sha256="))
                });
            sig.is_some_and(|hex_sig| verify_hmac_hex(secret, body, hex_sig))
        }
        ForgeKind::Gitlab => {
            header(headers, "x-gitlab-token").is_some_and(|token| token_matches(token, secret))
        }
    }
}

/// HMAC-SHA256 of `body` under `secret`, compared with `hex_sig` by
/// hmac's constant-time `verify_slice`.
pub fn verify_hmac_hex(secret: &[u8], body: &[u8], hex_sig: &str) -> bool {
    let Ok(sig) = hex::decode(hex_sig.trim()) else {
        return false;
    };
    let Ok(mut mac) = <HmacSha256 as KeyInit>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// The hex HMAC-SHA256 a forge would send (tests and benchmarks sign with it).
pub fn sign_hex(secret: &[u8], body: &[u8]) -> String {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// A plain token against the secret: digests are compared, in constant
/// time, so that neither the content nor the length leaks.
fn token_matches(token: &str, secret: &[u8]) -> bool {
    let a = Sha256::digest(token.as_bytes());
    let b = Sha256::digest(secret);
    bool::from(a.ct_eq(&b))
}

/// The JSON of a delivery: the body itself, or GitHub's form encoding
/// (`payload=<url-encoded JSON>`).
pub fn payload_json(headers: &HeaderMap, body: &[u8]) -> Result<Value, PayloadError> {
    let is_form = header(headers, "content-type")
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if is_form {
        let payload = url::form_urlencoded::parse(body)
            .find(|(k, _)| k == "payload")
            .map(|(_, v)| v.into_owned())
            .ok_or(PayloadError::NoFormPayload)?;
        serde_json::from_str(&payload).map_err(|e| PayloadError::Json(e.to_string()))
    } else {
        serde_json::from_slice(body).map_err(|e| PayloadError::Json(e.to_string()))
    }
}

fn is_zero(sha: &str) -> bool {
    !sha.is_empty() && sha.bytes().all(|b| b == b'0')
}

fn commit(value: Option<&Value>) -> Option<String> {
    value
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty() && !is_zero(s))
        .map(str::to_owned)
}

fn urls(object: Option<&Value>, keys: &[&str]) -> Vec<String> {
    keys.iter()
        .filter_map(|k| object?.get(*k)?.as_str())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The repository URLs a payload names (push and ping alike).
pub fn repository_urls(forge: ForgeKind, json: &Value) -> Vec<String> {
    let mut out = match forge {
        ForgeKind::Github | ForgeKind::Gitea => urls(
            json.get("repository"),
            &["clone_url", "html_url", "ssh_url", "git_url", "url"],
        ),
        ForgeKind::Gitlab => {
            let mut u = urls(
                json.get("project"),
                &["git_http_url", "git_ssh_url", "web_url", "http_url", "url"],
            );
            u.extend(urls(
                json.get("repository"),
                &["git_http_url", "git_ssh_url", "homepage", "url"],
            ));
            u
        }
    };
    out.dedup();
    out
}

/// Reads a push event's payload.
pub fn parse_push(forge: ForgeKind, json: &Value) -> Result<Push, PayloadError> {
    let git_ref = json
        .get("ref")
        .and_then(Value::as_str)
        .ok_or(PayloadError::Missing("ref"))?
        .to_owned();
    let after = match forge {
        // GitLab's checkout_sha is null on a delete, like `after` all zeros.
        ForgeKind::Gitlab => commit(json.get("checkout_sha")).or_else(|| commit(json.get("after"))),
        _ => commit(json.get("after")),
    };
    let deleted = json.get("deleted").and_then(Value::as_bool) == Some(true);
    Ok(Push {
        git_ref,
        before: commit(json.get("before")),
        after: if deleted { None } else { after },
        repository_urls: repository_urls(forge, json),
    })
}

/// A repository URL reduced to what identifies the repository, so that the
/// clone, web and ssh URLs a forge sends match the one a project was given:
/// host (lower case, with a non-default port) and path, without scheme,
/// credentials, `.git` or trailing `/`; scp-like `git@host:owner/repo`
/// reads as `host/owner/repo`.
pub fn repository_key(url: &str) -> Option<String> {
    let url = url.trim();
    let (host, path) = if let Ok(u) = url::Url::parse(url)
        && u.has_host()
    {
        let host = u.host_str()?.to_ascii_lowercase();
        let host = match u.port() {
            Some(p) if !matches!((u.scheme(), p), ("https", 443) | ("http", 80) | ("ssh", 22)) => {
                format!("{host}:{p}")
            }
            _ => host,
        };
        (host, u.path().to_owned())
    } else if let Ok(u) = url::Url::parse(url)
        && u.scheme() == "file"
    {
        (String::new(), u.path().to_owned())
    } else {
        // scp-like syntax: [user@]host:path
        let (left, path) = url.split_once(':')?;
        let host = left.rsplit('@').next()?.to_ascii_lowercase();
        if host.is_empty() || host.contains('/') {
            return None;
        }
        (host, format!("/{}", path.trim_start_matches('/')))
    };
    let path = path.trim_end_matches('/');
    let path = path
        .strip_suffix(".git")
        .unwrap_or(path)
        .trim_end_matches('/');
    if path.is_empty() {
        return None;
    }
    Some(format!("{host}{}", path.to_ascii_lowercase()))
}

/// Whether a project's repository is one of the URLs of a payload.
pub fn repository_matches(project_repository: &str, payload_urls: &[String]) -> bool {
    let Some(want) = repository_key(project_repository) else {
        return false;
    };
    payload_urls
        .iter()
        .any(|u| repository_key(u).as_deref() == Some(want.as_str()))
}

/// The repository's name (the last path segment, without `.git`, case
/// kept): the container name of recipes at the top of the tree.
pub fn repository_name(url: &str) -> Option<String> {
    let trimmed = url.trim().trim_end_matches('/');
    let trimmed = trimmed.strip_suffix(".git").unwrap_or(trimmed);
    trimmed
        .rsplit(['/', ':'])
        .next()
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn github_documented_test_vector() {
        let secret = b"It's a Secret to Everybody";
        let body = b"Hello, World!";
        let expected = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(sign_hex(secret, body), expected);
        let h = headers(&[("x-hub-signature-256", &format!("sha256={expected}"))]);
        assert!(verify(ForgeKind::Github, &h, body, secret));
        assert!(!verify(ForgeKind::Github, &h, b"Hello, World?", secret));
        assert!(!verify(ForgeKind::Github, &h, body, b"another secret"));
        // The prefix is required, and a bare or truncated digest fails.
        let bare = headers(&[("x-hub-signature-256", expected)]);
        assert!(!verify(ForgeKind::Github, &bare, body, secret));
        let short = headers(&[(
            "x-hub-signature-256",
            &format!("sha256={}", &expected[..62]),
        )]);
        assert!(!verify(ForgeKind::Github, &short, body, secret));
        assert!(!verify(ForgeKind::Github, &HeaderMap::new(), body, secret));
        assert!(!has_signature(ForgeKind::Github, &HeaderMap::new()));
    }

    #[test]
    fn gitea_signature_is_hex_without_prefix() {
        let secret = b"s3cret";
        let body = br#"{"ref":"refs/heads/main"}"#;
        let sig = sign_hex(secret, body);
        assert!(verify(
            ForgeKind::Gitea,
            &headers(&[("x-gitea-signature", &sig)]),
            body,
            secret
        ));
        assert!(!verify(
            ForgeKind::Gitea,
            &headers(&[("x-gitea-signature", &format!("sha256={sig}"))]),
            body,
            secret
        ));
        // Forgejo's own header and the GitHub-compatible one Gitea also sends.
        assert!(verify(
            ForgeKind::Gitea,
            &headers(&[("x-hub-signature-256", &format!("sha256={sig}"))]),
            body,
            secret
        ));
        assert!(!verify(
            ForgeKind::Gitea,
            &headers(&[("x-gitea-signature", "zz")]),
            body,
            secret
        ));
    }

    #[test]
    fn gitlab_token_is_compared_whole() {
        let h = headers(&[("x-gitlab-token", "tok-123")]);
        assert!(verify(ForgeKind::Gitlab, &h, b"{}", b"tok-123"));
        assert!(!verify(ForgeKind::Gitlab, &h, b"{}", b"tok-1234"));
        assert!(!verify(ForgeKind::Gitlab, &h, b"{}", b"tok-12"));
        assert!(!verify(ForgeKind::Gitlab, &HeaderMap::new(), b"{}", b""));
    }

    #[test]
    fn events_and_delivery_ids() {
        let gh = headers(&[("x-github-event", "push"), ("x-github-delivery", "abc-1")]);
        assert_eq!(event(ForgeKind::Github, &gh), Some(Event::Push));
        assert_eq!(delivery_id(ForgeKind::Github, &gh, b"x"), "abc-1");
        let ping = headers(&[("x-github-event", "ping")]);
        assert_eq!(event(ForgeKind::Github, &ping), Some(Event::Ping));
        let gl = headers(&[
            ("x-gitlab-event", "Tag Push Hook"),
            ("x-gitlab-event-uuid", "u-1"),
        ]);
        assert_eq!(
            event(ForgeKind::Gitlab, &gl),
            Some(Event::Other("Tag Push Hook".into()))
        );
        assert_eq!(delivery_id(ForgeKind::Gitlab, &gl, b"x"), "u-1");
        let gl2 = headers(&[("x-gitlab-event-uuid", "u-1"), ("idempotency-key", "k-9")]);
        assert_eq!(delivery_id(ForgeKind::Gitlab, &gl2, b"x"), "k-9");
        let gt = headers(&[("x-gitea-event", "push"), ("x-gitea-delivery", "d-7")]);
        assert_eq!(event(ForgeKind::Gitea, &gt), Some(Event::Push));
        assert_eq!(delivery_id(ForgeKind::Gitea, &gt, b"x"), "d-7");
        assert_eq!(event(ForgeKind::Github, &HeaderMap::new()), None);
        // Without an id, the same body gives the same key.
        let none = HeaderMap::new();
        assert_eq!(
            delivery_id(ForgeKind::Github, &none, b"body"),
            delivery_id(ForgeKind::Github, &none, b"body")
        );
        assert_ne!(
            delivery_id(ForgeKind::Github, &none, b"body"),
            delivery_id(ForgeKind::Github, &none, b"other")
        );
    }

    #[test]
    fn github_push_payload_json_and_form() {
        let json = serde_json::json!({
            "ref": "refs/heads/main",
            "before": "0000000000000000000000000000000000000000",
            "after": "1111111111111111111111111111111111111111",
            "deleted": false,
            "repository": {
                "clone_url": "https://github.com/o/r.git",
                "html_url": "https://github.com/o/r",
                "ssh_url": "git@github.com:o/r.git"
            }
        });
        let push = parse_push(ForgeKind::Github, &json).unwrap();
        assert_eq!(push.branch(), Some("main"));
        assert_eq!(push.before, None, "all zeros: a new branch");
        assert_eq!(
            push.after.as_deref(),
            Some("1111111111111111111111111111111111111111")
        );
        assert_eq!(push.repository_urls.len(), 3);

        let text = json.to_string();
        let form: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", &text)
            .finish();
        let h = headers(&[("content-type", "application/x-www-form-urlencoded")]);
        assert_eq!(payload_json(&h, form.as_bytes()).unwrap(), json);
        assert_eq!(
            payload_json(&h, b"other=1"),
            Err(PayloadError::NoFormPayload)
        );
        let hj = headers(&[("content-type", "application/json")]);
        assert_eq!(payload_json(&hj, text.as_bytes()).unwrap(), json);
        assert!(matches!(
            payload_json(&hj, b"{nope"),
            Err(PayloadError::Json(_))
        ));
    }

    #[test]
    fn deletes_and_tags_are_recognisable() {
        let del = serde_json::json!({
            "ref": "refs/heads/main",
            "before": "1111111111111111111111111111111111111111",
            "after": "0000000000000000000000000000000000000000",
            "deleted": true,
            "repository": {"clone_url": "https://github.com/o/r.git"}
        });
        assert_eq!(parse_push(ForgeKind::Github, &del).unwrap().after, None);
        let tag = serde_json::json!({"ref": "refs/tags/v1", "after": "22"});
        assert_eq!(parse_push(ForgeKind::Gitea, &tag).unwrap().branch(), None);
        assert_eq!(
            parse_push(ForgeKind::Github, &serde_json::json!({})),
            Err(PayloadError::Missing("ref"))
        );
    }

    #[test]
    fn gitlab_push_payload() {
        let json = serde_json::json!({
            "object_kind": "push",
            "ref": "refs/heads/dev",
            "before": "1111111111111111111111111111111111111111",
            "after": "2222222222222222222222222222222222222222",
            "checkout_sha": "2222222222222222222222222222222222222222",
            "project": {
                "git_http_url": "https://gitlab.example.org/grp/sub/r.git",
                "git_ssh_url": "git@gitlab.example.org:grp/sub/r.git",
                "web_url": "https://gitlab.example.org/grp/sub/r"
            }
        });
        let push = parse_push(ForgeKind::Gitlab, &json).unwrap();
        assert_eq!(push.branch(), Some("dev"));
        assert_eq!(
            push.before.as_deref(),
            Some("1111111111111111111111111111111111111111")
        );
        assert!(repository_matches(
            "https://gitlab.example.org/grp/sub/r",
            &push.repository_urls
        ));
        let mut deleted = json.clone();
        deleted["checkout_sha"] = Value::Null;
        deleted["after"] = "0000000000000000000000000000000000000000".into();
        assert_eq!(parse_push(ForgeKind::Gitlab, &deleted).unwrap().after, None);
    }

    #[test]
    fn repository_urls_match_across_forms() {
        let urls = vec![
            "https://github.com/Owner/Repo.git".to_owned(),
            "git@github.com:Owner/Repo.git".to_owned(),
        ];
        for project in [
            "https://github.com/owner/repo",
            "https://github.com/owner/repo.git/",
            "https://user:token@github.com/owner/repo.git",
            "ssh://git@github.com/owner/repo.git",
            "git@github.com:owner/repo",
            "https://GitHub.com:443/owner/repo",
        ] {
            assert!(repository_matches(project, &urls), "{project}");
        }
        for project in [
            "https://github.com/owner/repo2",
            "https://github.com/other/repo",
            "https://gitlab.com/owner/repo",
            "https://github.com:8443/owner/repo",
            "",
        ] {
            assert!(!repository_matches(project, &urls), "{project}");
        }
        assert!(repository_matches(
            "git://127.0.0.1:9418/recipes.git",
            &["git://127.0.0.1:9418/recipes".to_owned()]
        ));
        assert!(!repository_matches(
            "git://127.0.0.1:9418/recipes.git",
            &["git://127.0.0.1:9419/recipes".to_owned()]
        ));
        assert_eq!(
            repository_name("https://github.com/o/My-Recipes.git").as_deref(),
            Some("My-Recipes")
        );
        assert_eq!(repository_name("git@host:o/r.git").as_deref(), Some("r"));
    }
}
