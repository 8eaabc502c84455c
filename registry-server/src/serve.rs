//! Start-up: open the database and storage, then serve HTTP until a signal.

use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::net::TcpListener;

use crate::config::Config;
use crate::db::{Database, redact};
use crate::http;
use crate::sealing::Keys;
use crate::storage::Storage;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: Database,
    pub storage: Storage,
    /// Subkeys of the server's secret key: sealed tokens, download links.
    pub keys: Arc<Keys>,
    /// Every change of a build job's state, for whoever reports them
    /// (commit statuses); sending with nobody listening is fine.
    pub build_events: tokio::sync::broadcast::Sender<sreg_api::builds::BuildJob>,
}

impl AppState {
    /// Opens and migrates the database, opens the storage, and loads the
    /// secret key (creating it on first start).
    pub async fn open(config: Config) -> Result<Self> {
        let keys = Keys::load_or_create(&config.secret_key_file)?;
        let db = open_database(&config).await?;
        let storage = Storage::open(&config.storage_url)
            .with_context(|| format!("opening storage {}", config.storage_url))?;
        storage
            .ping()
            .await
            .with_context(|| format!("reaching storage {}", config.storage_url))?;
        Ok(Self {
            config: Arc::new(config),
            db,
            storage,
            keys: Arc::new(keys),
            build_events: tokio::sync::broadcast::channel(1024).0,
        })
    }
}

async fn open_database(config: &Config) -> Result<Database> {
    let shown = redact(&config.database_url);
    let db = Database::connect(&config.database_url)
        .await
        .with_context(|| format!("connecting to {shown}"))?;
    db.migrate()
        .await
        .with_context(|| format!("migrating {shown}"))?;
    Ok(db)
}

/// `sreg-server migrate`.
pub async fn migrate_only(config: &Config) -> Result<()> {
    let db = open_database(config).await?;
    tracing::info!(backend = db.backend(), "database schema is up to date");
    Ok(())
}

/// `sreg-server serve`.
pub async fn run(config: Config) -> Result<()> {
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    serve_on(listener, config, shutdown_signal()).await
}

/// Serves on an already bound listener until `shutdown` completes; tests use
/// it with port 0.
pub async fn serve_on(
    listener: TcpListener,
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let mut config = config;
    // Links handed to clients must name the port actually bound: with
    // `--listen HOST:0` the default public URL would say port 0.
    let bound = listener.local_addr()?;
    if config.public_url.port() == Some(0) {
        let _ = config.public_url.set_port(Some(bound.port()));
    }
    let state = AppState::open(config).await?;
    tracing::info!(
        listen = %listener.local_addr()?,
        public_url = %state.config.public_url,
        database = state.db.backend(),
        data_dir = %state.config.data_dir.display(),
        "sreg-server ready"
    );
    // Expired build leases are taken back while the server runs.
    tokio::spawn(crate::model::builds::reaper::run(state.clone()));
    // Webhook scans, polling and commit statuses.
    crate::builds_triggers::start(&state);
    // Paths are normalised before routing (old library clients send `//`).
    // Web pages beside the protocols (their paths do not overlap).
    let routes = http::router(state.clone()).merge(crate::pages::router(state));
    let app = tower::ServiceBuilder::new()
        .map_request(http::library::normalize_path)
        .service(routes);
    // Client addresses reach handlers (sign-in rate limits).
    axum::serve(
        listener,
        axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<
            std::net::SocketAddr,
        >(app),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .context("HTTP server failed")
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = terminate => {} }
    tracing::info!("shutting down");
}
