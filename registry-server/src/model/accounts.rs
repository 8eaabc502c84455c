//! Entities (users and teams) and user accounts.

use sqlx::{AnyPool, FromRow};

use crate::db::now_ms;
use crate::error::{Error, Result};
use crate::model::{conflict_if_taken, flag};

#[derive(Debug, Clone, FromRow)]
pub struct Entity {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub description: String,
    pub default_private: i64,
    pub created_at: i64,
}

#[derive(Debug, Clone, FromRow)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub is_admin: i64,
    pub active: i64,
    pub created_at: i64,
}

impl User {
    pub fn is_admin(&self) -> bool {
        self.is_admin != 0
    }
}

const USER_COLUMNS: &str = "e.id, e.name, u.email, u.is_admin, u.active, e.created_at";

/// Entity names follow the library client's rule, so anything created here
/// can be pushed to by every client.
pub fn validate_name(kind: &str, name: &str) -> Result<()> {
    if sreg_api::reference::is_valid_name(name) {
        Ok(())
    } else {
        Err(Error::BadRequest(format!(
            "{kind} name {name:?} is not valid: use lower-case letters and digits, separated by single '.', '_' or '-'"
        )))
    }
}

pub async fn create_user(db: &AnyPool, name: &str, email: &str, is_admin: bool) -> Result<User> {
    validate_name("user", name)?;
    let mut tx = db.begin().await?;
    let id = insert_entity(&mut tx, name, "user").await?;
    sqlx::query("INSERT INTO users (entity_id, email, is_admin) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(email)
        .bind(flag(is_admin))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    user_by_id(db, id).await
}

/// Users and teams share one namespace: the entities.
async fn insert_entity(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    name: &str,
    kind: &str,
) -> Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO entities (name, kind, created_at) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(name)
    .bind(kind)
    .bind(now_ms())
    .fetch_one(&mut **tx)
    .await
    .map_err(|e| conflict_if_taken(e, || format!("the name {name:?} is already taken")))
}

pub async fn user_by_id(db: &AnyPool, id: i64) -> Result<User> {
    sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS} FROM entities e JOIN users u ON u.entity_id = e.id WHERE e.id = $1"
    ))
    .bind(id)
    .fetch_optional(db)
    .await?
    .ok_or_else(|| Error::not_found(format!("user {id}")))
}

pub async fn user_by_name(db: &AnyPool, name: &str) -> Result<Option<User>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS} FROM entities e JOIN users u ON u.entity_id = e.id WHERE e.name = $1"
    ))
    .bind(name)
    .fetch_optional(db)
    .await?)
}

pub async fn entity_by_name(db: &AnyPool, name: &str) -> Result<Option<Entity>> {
    Ok(sqlx::query_as("SELECT * FROM entities WHERE name = $1")
        .bind(name)
        .fetch_optional(db)
        .await?)
}

pub async fn entity_by_id(db: &AnyPool, id: i64) -> Result<Entity> {
    sqlx::query_as("SELECT * FROM entities WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await?
        .ok_or_else(|| Error::not_found(format!("entity {id}")))
}

/// A team, owned by `owner`.
pub async fn create_team(db: &AnyPool, name: &str, owner: i64) -> Result<Entity> {
    validate_name("team", name)?;
    let mut tx = db.begin().await?;
    let id = insert_entity(&mut tx, name, "team").await?;
    sqlx::query("INSERT INTO team_members (team_id, user_id, role) VALUES ($1, $2, 'owner')")
        .bind(id)
        .bind(owner)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    entity_by_id(db, id).await
}

pub async fn add_team_member(db: &AnyPool, team: i64, user: i64, role: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO team_members (team_id, user_id, role) VALUES ($1, $2, $3)
         ON CONFLICT (team_id, user_id) DO UPDATE SET role = excluded.role",
    )
    .bind(team)
    .bind(user)
    .bind(role)
    .execute(db)
    .await?;
    Ok(())
}
