//! The database: SQLite (embedded default) or PostgreSQL, each with its own
//! set of migrations, applied on start. Queries go through sqlx's `Any`
//! driver and are written once, in the SQL both understand (`$1`
//! placeholders, `RETURNING`, `ON CONFLICT`, BIGINT/TEXT columns only).

use std::str::FromStr;

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::{ConnectOptions, Connection};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone)]
pub struct Database {
    pub pool: AnyPool,
    pub backend: Backend,
}

impl Database {
    /// Connects without touching the schema.
    pub async fn connect(url: &str) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if url.starts_with("sqlite:") {
            prepare_sqlite(url).await?;
            (Backend::Sqlite, url.to_string())
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            (Backend::Postgres, url.to_string())
        } else {
            return Err(DbError::Scheme(redact(url)));
        };
        let mut options = AnyPoolOptions::new();
        if backend == Backend::Sqlite {
            // One writer at a time anyway; a few readers beside it.
            options = options.max_connections(8);
        }
        let pool = options.connect(&url).await.map_err(DbError::Connect)?;
        Ok(Self { pool, backend })
    }

    /// Applies the migrations of this backend that are not applied yet.
    pub async fn migrate(&self) -> Result<(), DbError> {
        match self.backend {
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite").run(&self.pool).await?,
            Backend::Postgres => {
                sqlx::migrate!("migrations/postgres")
                    .run(&self.pool)
                    .await?
            }
        }
        Ok(())
    }

    /// A cheap round trip, for health checks.
    pub async fn ping(&self) -> Result<(), DbError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub fn backend(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Creates the SQLite file if needed and puts it in WAL mode (a property of
/// the file), so that readers go on while an upload commits.
async fn prepare_sqlite(url: &str) -> Result<(), DbError> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(DbError::Connect)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal);
    let conn = options.connect().await.map_err(DbError::Connect)?;
    conn.close().await.map_err(DbError::Connect)?;
    Ok(())
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

/// Now, in Unix milliseconds: the unit of every time column.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
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
    async fn sqlite_is_created_in_wal_mode_and_migrated_twice_without_harm() {
        let tmp = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/t.db", tmp.path().display());
        let db = Database::connect(&url).await.unwrap();
        db.migrate().await.unwrap();
        db.migrate().await.unwrap();
        db.ping().await.unwrap();
        assert!(tmp.path().join("t.db").is_file());
        let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        let (fk,): (i64,) = sqlx::query_as("PRAGMA foreign_keys")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(fk, 1, "foreign keys are enforced");
    }

    #[tokio::test]
    async fn unknown_scheme_is_refused() {
        let err = Database::connect("mysql://u:pw@h/db").await.unwrap_err();
        assert!(err.to_string().contains("u:***@h"), "{err}");
    }
}
