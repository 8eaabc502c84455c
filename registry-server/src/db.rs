//! The database: SQLite (embedded default) or PostgreSQL, each with its own
//! set of migrations, applied on start.

use std::str::FromStr;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://...")]
    Scheme(String),
    #[error("cannot open database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Query(#[from] sqlx::Error),
}

#[derive(Debug, Clone)]
pub enum Database {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Database {
    /// Connects without touching the schema.
    pub async fn connect(url: &str) -> Result<Self, DbError> {
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(DbError::Connect)?
                .create_if_missing(true)
                // WAL lets readers go on while an upload commits.
                .journal_mode(SqliteJournalMode::Wal)
                .foreign_keys(true);
            let pool = SqlitePoolOptions::new()
                .connect_with(options)
                .await
                .map_err(DbError::Connect)?;
            Ok(Self::Sqlite(pool))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let pool = PgPoolOptions::new()
                .connect(url)
                .await
                .map_err(DbError::Connect)?;
            Ok(Self::Postgres(pool))
        } else {
            Err(DbError::Scheme(redact(url)))
        }
    }

    /// Applies the migrations of this backend that are not applied yet.
    pub async fn migrate(&self) -> Result<(), DbError> {
        match self {
            Self::Sqlite(pool) => sqlx::migrate!("migrations/sqlite").run(pool).await?,
            Self::Postgres(pool) => sqlx::migrate!("migrations/postgres").run(pool).await?,
        }
        Ok(())
    }

    /// A cheap round trip, for health checks.
    pub async fn ping(&self) -> Result<(), DbError> {
        match self {
            Self::Sqlite(pool) => {
                sqlx::query("SELECT 1").execute(pool).await?;
            }
            Self::Postgres(pool) => {
                sqlx::query("SELECT 1").execute(pool).await?;
            }
        }
        Ok(())
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }
}

/// The URL without its password, for errors and logs.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.into()
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_passwords_only() {
        assert_eq!(
            redact("postgres://sreg:s3cret@db:5432/sreg"),
            "postgres://sreg:***@db:5432/sreg"
        );
        assert_eq!(redact("sqlite:///x/sreg.db"), "sqlite:///x/sreg.db");
    }

    #[tokio::test]
    async fn sqlite_is_created_and_migrated_twice_without_harm() {
        let tmp = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/t.db", tmp.path().display());
        let db = Database::connect(&url).await.unwrap();
        db.migrate().await.unwrap();
        db.migrate().await.unwrap();
        db.ping().await.unwrap();
        assert!(tmp.path().join("t.db").is_file());
    }

    #[tokio::test]
    async fn unknown_scheme_is_refused() {
        let err = Database::connect("mysql://u:pw@h/db").await.unwrap_err();
        assert!(err.to_string().contains("u:***@h"), "{err}");
    }
}
