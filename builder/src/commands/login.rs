//! `sreg login URL [--token T]`.
//!
//! The token comes from `--token`, else `SREG_TOKEN`, else a prompt without
//! echo on a terminal, else the first line of stdin. It is checked with
//! `GET /api/v1/me` before anything is saved. In CI (`CI` set) or with
//! `SREG_TOKEN`, nothing is written: CI steps use `SREG_REGISTRY` and
//! `SREG_TOKEN` directly.

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, Result, bail};
use sreg_api::client::Client;

use crate::cli::LoginArgs;
use crate::registry::{self, ConfigFile, ENV_REGISTRY, ENV_TOKEN};

pub fn run(args: &LoginArgs) -> Result<()> {
    let url = args.url.trim().trim_end_matches('/').to_string();
    let env_token = std::env::var(ENV_TOKEN)
        .ok()
        .filter(|t| !t.trim().is_empty());
    let (token, from_env) = match (&args.token, env_token) {
        (Some(t), _) => (t.trim().to_string(), false),
        (None, Some(t)) => (t.trim().to_string(), true),
        (None, None) => (read_token(&url)?, false),
    };
    if token.is_empty() {
        bail!("no token given: pass --token, set {ENV_TOKEN}, or type it at the prompt");
    }
    let client = Client::new(&url, Some(token.clone())).with_context(|| {
        format!("{url:?} is not a registry URL such as https://sreg.example.org")
    })?;
    let me = registry::block_on(client.me())?.map_err(|e| match e.status() {
        Some(401) => anyhow::anyhow!(
            "the registry at {url} refused this token ({e}): check it, or ask for a new one"
        ),
        Some(404) => {
            anyhow::anyhow!("{url} answered 404 for /api/v1/me: is it an sreg registry? ({e})")
        }
        _ => anyhow::anyhow!(e),
    })?;
    if from_env || registry::in_ci() {
        println!(
            "Logged in to {url} as {}. Nothing was saved: in CI, set {ENV_REGISTRY} and {ENV_TOKEN} for each step.",
            me.user.name
        );
        return Ok(());
    }
    let path = registry::write_config(&ConfigFile {
        registry: Some(url.clone()),
        token: Some(token),
    })?;
    println!(
        "Logged in to {url} as {}; the token is saved in {} (readable by you only).",
        me.user.name,
        path.display()
    );
    Ok(())
}

fn read_token(url: &str) -> Result<String> {
    if std::io::stdin().is_terminal() {
        return rpassword::prompt_password(format!("Token for {url}: "))
            .context("cannot read the token from the terminal");
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the token from stdin")?;
    Ok(line.trim().to_string())
}
