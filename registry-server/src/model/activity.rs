//! What users do with images: pulls (recorded and counted per image,
//! container and collection) and stars.

use sqlx::AnyPool;

use crate::db::now_ms;
use crate::error::Result;

/// Which protocol a pull came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    Library,
    Shub,
    Oras,
    Sreg,
    Web,
}

impl Client {
    pub fn as_str(self) -> &'static str {
        match self {
            Client::Library => "library",
            Client::Shub => "shub",
            Client::Oras => "oras",
            Client::Sreg => "sreg",
            Client::Web => "web",
        }
    }
}

/// Records one pull and bumps the three counters, in one transaction.
pub async fn record_pull(
    db: &AnyPool,
    image_id: i64,
    user_id: Option<i64>,
    client: Client,
) -> Result<()> {
    let mut tx = db.begin().await?;
    sqlx::query("INSERT INTO pulls (image_id, user_id, client, at) VALUES ($1, $2, $3, $4)")
        .bind(image_id)
        .bind(user_id)
        .bind(client.as_str())
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE images SET downloads = downloads + 1 WHERE id = $1")
        .bind(image_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE containers SET downloads = downloads + 1
         WHERE id = (SELECT container_id FROM images WHERE id = $1)",
    )
    .bind(image_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE collections SET downloads = downloads + 1
         WHERE id = (SELECT k.collection_id FROM images i JOIN containers k ON k.id = i.container_id WHERE i.id = $1)",
    )
    .bind(image_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn star(db: &AnyPool, user_id: i64, container_id: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO stars (user_id, container_id, created_at) VALUES ($1, $2, $3)
         ON CONFLICT (user_id, container_id) DO NOTHING",
    )
    .bind(user_id)
    .bind(container_id)
    .bind(now_ms())
    .execute(db)
    .await?;
    Ok(())
}

pub async fn unstar(db: &AnyPool, user_id: i64, container_id: i64) -> Result<()> {
    sqlx::query("DELETE FROM stars WHERE user_id = $1 AND container_id = $2")
        .bind(user_id)
        .bind(container_id)
        .execute(db)
        .await?;
    Ok(())
}

pub async fn star_count(db: &AnyPool, container_id: i64) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM stars WHERE container_id = $1")
            .bind(container_id)
            .fetch_one(db)
            .await?,
    )
}
