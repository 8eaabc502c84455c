//! Who may do what. One place for the rules, so that every protocol and
//! page hides and refuses the same things:
//!
//! - admins may do everything;
//! - a user may push to collections of their own entity, of teams they
//!   belong to, and of collections where they are an owner;
//! - contributors may see and pull a private collection;
//! - everyone (anonymous too) may see and pull a public collection;
//! - a private collection is invisible to everyone else: protocols answer
//!   404, exactly as for a collection that does not exist.

use sqlx::AnyPool;

use crate::error::Result;
use crate::model::accounts::User;
use crate::model::catalog::Collection;

/// The caller of a request: a user, or nobody.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub user: Option<User>,
}

impl Caller {
    pub fn anonymous() -> Self {
        Self::default()
    }

    pub fn user(user: User) -> Self {
        Self { user: Some(user) }
    }

    pub fn id(&self) -> Option<i64> {
        self.user.as_ref().map(|u| u.id)
    }

    pub fn is_admin(&self) -> bool {
        self.user.as_ref().is_some_and(User::is_admin)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    None,
    Read,
    Write,
}

/// The caller's access to a collection.
pub async fn collection_access(db: &AnyPool, caller: &Caller, c: &Collection) -> Result<Access> {
    let public = if c.private == 0 {
        Access::Read
    } else {
        Access::None
    };
    let Some(user) = &caller.user else {
        return Ok(public);
    };
    if user.is_admin() || c.entity_id == user.id {
        return Ok(Access::Write);
    }
    let member: Option<String> = sqlx::query_scalar(
        "SELECT role FROM collection_members WHERE collection_id = $1 AND user_id = $2",
    )
    .bind(c.id)
    .bind(user.id)
    .fetch_optional(db)
    .await?;
    match member.as_deref() {
        Some("owner") => return Ok(Access::Write),
        Some(_) => return Ok(Access::Read.max(public)),
        None => {}
    }
    if entity_access(db, caller, c.entity_id).await? == Access::Write {
        return Ok(Access::Write);
    }
    Ok(public)
}

/// The caller's access to an entity's namespace: write for the user
/// themself, members of a team, and admins.
pub async fn entity_access(db: &AnyPool, caller: &Caller, entity_id: i64) -> Result<Access> {
    let Some(user) = &caller.user else {
        return Ok(Access::None);
    };
    if user.is_admin() || user.id == entity_id {
        return Ok(Access::Write);
    }
    let in_team: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM team_members WHERE team_id = $1 AND user_id = $2")
            .bind(entity_id)
            .bind(user.id)
            .fetch_optional(db)
            .await?;
    Ok(if in_team.is_some() {
        Access::Write
    } else {
        Access::None
    })
}
