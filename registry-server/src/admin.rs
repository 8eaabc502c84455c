//! `sreg-server admin ...`: accounts and tokens from the command line.

use anyhow::{Context, Result, bail};
use sqlx::AnyPool;

use crate::cli::{AdminCommand, TeamCommand, TokenCommand, UserCommand};
use crate::db::now_ms;
use crate::model::{accounts, tokens};
use crate::sealing::Keys;

/// `keys` seal new tokens (see `model::tokens`).
pub async fn run(db: &AnyPool, keys: &Keys, command: &AdminCommand) -> Result<()> {
    match command {
        AdminCommand::User(UserCommand::Add { name, admin, email }) => {
            let user = accounts::create_user(db, name, email.as_deref().unwrap_or(""), *admin)
                .await
                .with_context(|| format!("cannot create user {name:?}"))?;
            eprintln!(
                "created {} {}",
                if user.is_admin() { "admin" } else { "user" },
                user.name
            );
        }
        AdminCommand::User(UserCommand::Passwd { name, .. }) => {
            let user = find_user(db, name).await?;
            let password = read_password_line()?;
            crate::pages::password::set(db, user.id, &password)
                .await
                .with_context(|| format!("cannot set the password of {name:?}"))?;
            eprintln!("password of {} set; their web sessions ended", user.name);
        }
        AdminCommand::Token(TokenCommand::Create {
            user,
            expires_in,
            name,
        }) => {
            let user = find_user(db, user).await?;
            let expires_at = match expires_in {
                Some(d) => {
                    let d = humantime::parse_duration(d).with_context(|| {
                        format!("--expires-in {d:?} is not a duration such as 30d, 12h or 90min")
                    })?;
                    Some(now_ms() + i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2))
                }
                None => None,
            };
            let label = name.as_deref().unwrap_or("cli");
            let (token, _) = tokens::create(db, keys, user.id, label, expires_at).await?;
            // The token alone on stdout, so that scripts can capture it.
            println!("{token}");
        }
        AdminCommand::Token(TokenCommand::List { user }) => {
            let user = find_user(db, user).await?;
            println!(
                "{:>6}  {:<20} {:<14} {:<10} CREATED",
                "ID", "NAME", "PREFIX", "STATE"
            );
            for t in tokens::list(db, user.id).await? {
                let now = now_ms();
                let state = if t.revoked_at.is_some() {
                    "revoked"
                } else if t.expires_at.is_some_and(|e| e <= now) {
                    "expired"
                } else {
                    "active"
                };
                println!(
                    "{:>6}  {:<20} {:<14} {:<10} {}",
                    t.id,
                    t.name,
                    format!("{}…", t.prefix),
                    state,
                    when(t.created_at)
                );
            }
        }
        AdminCommand::Token(TokenCommand::Revoke { user, id }) => {
            let user = find_user(db, user).await?;
            tokens::revoke(db, user.id, *id).await?;
            eprintln!("revoked token {id} of {}", user.name);
        }
        AdminCommand::Team(TeamCommand::Add { name, owner }) => {
            let owner = find_user(db, owner).await?;
            accounts::create_team(db, name, owner.id)
                .await
                .with_context(|| format!("cannot create team {name:?}"))?;
            eprintln!("created team {name} owned by {}", owner.name);
        }
        AdminCommand::Team(TeamCommand::Member { team, user, owner }) => {
            let Some(entity) = accounts::entity_by_name(db, team).await? else {
                bail!("no team named {team:?}");
            };
            if entity.kind != "team" {
                bail!("{team:?} is a user, not a team");
            }
            let user = find_user(db, user).await?;
            let role = if *owner { "owner" } else { "member" };
            accounts::add_team_member(db, entity.id, user.id, role).await?;
            eprintln!("{} is now {role} of {team}", user.name);
        }
        AdminCommand::Build(command) => crate::admin_builds::run(db, command).await?,
    }
    Ok(())
}

async fn find_user(db: &AnyPool, name: &str) -> Result<accounts::User> {
    accounts::user_by_name(db, name).await?.with_context(|| {
        format!("no user named {name:?}: create it with `sreg-server admin user add {name}`")
    })
}

/// One line of stdin without its line ending (a password may contain
/// spaces, so nothing else is trimmed).
fn read_password_line() -> Result<String> {
    use std::io::{BufRead, IsTerminal};
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!("password (shown as typed; pipe it in to avoid that):");
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from stdin")?;
    let password = line.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        bail!(
            "no password on stdin: pipe it in, e.g. `printf '%s\\n' \"$PW\" | sreg-server admin user passwd NAME`"
        );
    }
    Ok(password)
}

fn when(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}
