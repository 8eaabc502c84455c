//! Build metadata for `sreg push`: what the CI service says about the run,
//! overridden by `--meta key=value`.
//!
//! Read from the environment:
//!
//! | service | detected by | repository | branch | commit | link |
//! |---|---|---|---|---|---|
//! | GitHub Actions | `GITHUB_ACTIONS=true` | `GITHUB_SERVER_URL`/`GITHUB_REPOSITORY` | `GITHUB_HEAD_REF`, else `GITHUB_REF_NAME` | `GITHUB_SHA` | `.../actions/runs/GITHUB_RUN_ID` |
//! | GitLab CI | `GITLAB_CI` | `CI_PROJECT_URL` | `CI_COMMIT_REF_NAME` | `CI_COMMIT_SHA` | `CI_JOB_URL` |
//! | CircleCI | `CIRCLECI` | `CIRCLE_REPOSITORY_URL` | `CIRCLE_BRANCH` | `CIRCLE_SHA1` | `CIRCLE_BUILD_URL` |
//! | Travis CI | `TRAVIS` | `https://github.com/TRAVIS_REPO_SLUG` | `TRAVIS_PULL_REQUEST_BRANCH`, else `TRAVIS_BRANCH` | `TRAVIS_COMMIT` | `TRAVIS_JOB_WEB_URL` |
//! | Jenkins | `JENKINS_URL` | `GIT_URL` | `GIT_BRANCH` (without `origin/`) | `GIT_COMMIT` | `BUILD_URL` |
//! | anything else | `GIT_URL`, `GIT_BRANCH`, `GIT_COMMIT` when set | | | | |
//!
//! The builder host is `--meta builder_host=`, else `HOSTNAME`, else the
//! kernel's host name.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use sreg_api::v1::BuildMetadata;

/// Metadata from a CI environment (`get` reads a variable).
pub fn from_env(get: &dyn Fn(&str) -> Option<String>) -> BuildMetadata {
    let v = |name: &str| get(name).filter(|s| !s.trim().is_empty());
    let mut m = BuildMetadata::default();
    if v("GITHUB_ACTIONS").as_deref() == Some("true") {
        let server = v("GITHUB_SERVER_URL").unwrap_or_else(|| "https://github.com".into());
        if let Some(repo) = v("GITHUB_REPOSITORY") {
            m.repository = Some(format!("{server}/{repo}"));
            m.ci_url = v("GITHUB_RUN_ID").map(|id| format!("{server}/{repo}/actions/runs/{id}"));
        }
        m.branch = v("GITHUB_HEAD_REF").or_else(|| v("GITHUB_REF_NAME"));
        m.commit = v("GITHUB_SHA");
        m.ci_provider = Some("github".into());
    } else if v("GITLAB_CI").is_some() {
        m.repository = v("CI_PROJECT_URL");
        m.branch = v("CI_COMMIT_REF_NAME").or_else(|| v("CI_COMMIT_BRANCH"));
        m.commit = v("CI_COMMIT_SHA");
        m.ci_url = v("CI_JOB_URL").or_else(|| v("CI_PIPELINE_URL"));
        m.ci_provider = Some("gitlab".into());
    } else if v("CIRCLECI").is_some() {
        m.repository = v("CIRCLE_REPOSITORY_URL");
        m.branch = v("CIRCLE_BRANCH");
        m.commit = v("CIRCLE_SHA1");
        m.ci_url = v("CIRCLE_BUILD_URL");
        m.ci_provider = Some("circleci".into());
    } else if v("TRAVIS").is_some() {
        m.repository = v("TRAVIS_REPO_SLUG").map(|s| format!("https://github.com/{s}"));
        m.branch = v("TRAVIS_PULL_REQUEST_BRANCH").or_else(|| v("TRAVIS_BRANCH"));
        m.commit = v("TRAVIS_COMMIT");
        m.ci_url = v("TRAVIS_JOB_WEB_URL").or_else(|| v("TRAVIS_BUILD_WEB_URL"));
        m.ci_provider = Some("travis".into());
    } else {
        if v("JENKINS_URL").is_some() {
            m.ci_url = v("BUILD_URL");
            m.ci_provider = Some("jenkins".into());
        }
        m.repository = v("GIT_URL");
        m.branch = v("GIT_BRANCH").map(|b| b.strip_prefix("origin/").unwrap_or(&b).to_string());
        m.commit = v("GIT_COMMIT");
    }
    m.builder_host = v("HOSTNAME").or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    });
    m
}

/// Applies `--meta key=value` pairs on top of `m`.
pub fn apply(m: &mut BuildMetadata, pairs: &[String]) -> Result<()> {
    let mut extra = BTreeMap::new();
    for pair in pairs {
        let Some((key, value)) = pair.split_once('=') else {
            bail!("--meta {pair:?} is not KEY=VALUE");
        };
        let (key, value) = (key.trim(), value.to_string());
        let set = Some(value.clone());
        match key {
            "recipe_path" => m.recipe_path = set,
            "repository" => m.repository = set,
            "branch" => m.branch = set,
            "commit" => m.commit = set,
            "builder_host" => m.builder_host = set,
            "backend" => m.backend = set,
            "backend_version" => m.backend_version = set,
            "started_at" => m.started_at = Some(time(key, &value)?),
            "finished_at" => m.finished_at = Some(time(key, &value)?),
            "duration_seconds" | "duration" => {
                m.duration_seconds = Some(
                    value
                        .trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|d| d.is_finite() && *d >= 0.0)
                        .or_else(|| {
                            humantime::parse_duration(value.trim())
                                .ok()
                                .map(|d| d.as_secs_f64())
                        })
                        .with_context(|| {
                            format!(
                                "--meta {key}={value:?}: give seconds, or a duration such as 4m30s"
                            )
                        })?,
                )
            }
            "ci_provider" => m.ci_provider = set,
            "ci_url" => m.ci_url = set,
            "" => bail!("--meta {pair:?} has an empty key"),
            other => {
                extra.insert(other.to_string(), value);
            }
        }
    }
    m.extra.extend(extra);
    Ok(())
}

/// A time as RFC 3339 UTC: from RFC 3339 (`...Z`, or without a zone, taken
/// as UTC) or Unix seconds.
fn time(key: &str, value: &str) -> Result<String> {
    let v = value.trim();
    let t = if let Ok(secs) = v.parse::<u64>() {
        UNIX_EPOCH + Duration::from_secs(secs)
    } else {
        humantime::parse_rfc3339_weak(v).with_context(|| {
            format!(
                "--meta {key}={value:?}: give an RFC 3339 UTC time (2026-01-31T12:00:00Z) or Unix seconds"
            )
        })?
    };
    Ok(humantime::format_rfc3339_seconds(t).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn github_actions() {
        let m = from_env(&env(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_SERVER_URL", "https://github.com"),
            ("GITHUB_REPOSITORY", "lab/recipes"),
            ("GITHUB_REF_NAME", "main"),
            ("GITHUB_SHA", "abc123"),
            ("GITHUB_RUN_ID", "42"),
            ("HOSTNAME", "runner-1"),
        ]));
        assert_eq!(
            m.repository.as_deref(),
            Some("https://github.com/lab/recipes")
        );
        assert_eq!(m.branch.as_deref(), Some("main"));
        assert_eq!(m.commit.as_deref(), Some("abc123"));
        assert_eq!(
            m.ci_url.as_deref(),
            Some("https://github.com/lab/recipes/actions/runs/42")
        );
        assert_eq!(m.ci_provider.as_deref(), Some("github"));
        assert_eq!(m.builder_host.as_deref(), Some("runner-1"));
    }

    #[test]
    fn gitlab_circle_travis_jenkins() {
        let g = from_env(&env(&[
            ("GITLAB_CI", "true"),
            ("CI_PROJECT_URL", "https://gitlab.example.org/lab/r"),
            ("CI_COMMIT_REF_NAME", "dev"),
            ("CI_COMMIT_SHA", "f00"),
            ("CI_JOB_URL", "https://gitlab.example.org/lab/r/-/jobs/7"),
        ]));
        assert_eq!(
            (
                g.repository.as_deref(),
                g.branch.as_deref(),
                g.commit.as_deref()
            ),
            (
                Some("https://gitlab.example.org/lab/r"),
                Some("dev"),
                Some("f00")
            )
        );
        assert_eq!(g.ci_provider.as_deref(), Some("gitlab"));
        let c = from_env(&env(&[
            ("CIRCLECI", "true"),
            ("CIRCLE_REPOSITORY_URL", "git@github.com:lab/r.git"),
            ("CIRCLE_BRANCH", "b"),
            ("CIRCLE_SHA1", "c1"),
        ]));
        assert_eq!(
            (c.branch.as_deref(), c.commit.as_deref()),
            (Some("b"), Some("c1"))
        );
        let t = from_env(&env(&[
            ("TRAVIS", "true"),
            ("TRAVIS_REPO_SLUG", "lab/r"),
            ("TRAVIS_BRANCH", "main"),
            ("TRAVIS_PULL_REQUEST_BRANCH", "feature"),
            ("TRAVIS_COMMIT", "t1"),
        ]));
        assert_eq!(t.repository.as_deref(), Some("https://github.com/lab/r"));
        assert_eq!(t.branch.as_deref(), Some("feature"));
        let j = from_env(&env(&[
            ("JENKINS_URL", "https://ci.example.org/"),
            ("BUILD_URL", "https://ci.example.org/job/x/3/"),
            ("GIT_URL", "https://git.example.org/r.git"),
            ("GIT_BRANCH", "origin/main"),
            ("GIT_COMMIT", "j1"),
        ]));
        assert_eq!(j.branch.as_deref(), Some("main"));
        assert_eq!(j.ci_provider.as_deref(), Some("jenkins"));
        assert_eq!(j.ci_url.as_deref(), Some("https://ci.example.org/job/x/3/"));
    }

    #[test]
    fn meta_overrides_and_extra() {
        let mut m = from_env(&env(&[("GIT_COMMIT", "old")]));
        apply(
            &mut m,
            &[
                "commit=new".into(),
                "backend=apptainer".into(),
                "started_at=1700000000".into(),
                "finished_at=2023-11-14T22:15:20Z".into(),
                "duration=2m".into(),
                "ticket=LAB-1".into(),
            ],
        )
        .unwrap();
        assert_eq!(m.commit.as_deref(), Some("new"));
        assert_eq!(m.started_at.as_deref(), Some("2023-11-14T22:13:20Z"));
        assert_eq!(m.finished_at.as_deref(), Some("2023-11-14T22:15:20Z"));
        assert_eq!(m.duration_seconds, Some(120.0));
        assert_eq!(m.extra.get("ticket").map(String::as_str), Some("LAB-1"));
        assert!(apply(&mut m, &["nokey".into()]).is_err());
        assert!(apply(&mut m, &["started_at=tomorrow".into()]).is_err());
    }
}
