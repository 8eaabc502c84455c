//! Settings: built-in defaults, overridden by the TOML file, overridden by
//! flags and their `SREG_*` environment twins.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use url::Url;

use crate::cli::{CommonArgs, ServeArgs};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8700";
pub const DEFAULT_DATA_DIR: &str = "./sreg-data";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("listen address {value:?} is not of the form HOST:PORT ({source})")]
    Listen {
        value: String,
        source: std::net::AddrParseError,
    },
    #[error("public URL {value:?} is not an http(s) URL")]
    PublicUrl { value: String },
    #[error("{name}={value:?} is not a number")]
    Setting { name: String, value: String },
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The TOML file. Unknown keys are refused so that a typo does not silently
/// leave a setting at its default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database: Option<String>,
    pub storage: Option<String>,
    pub public_url: Option<String>,
    pub secret_key_file: Option<PathBuf>,
    /// Where the `sreg` clients that the registry serves live.
    pub downloads_dir: Option<PathBuf>,
    #[serde(default)]
    pub registry: RegistrySettings,
    #[serde(default)]
    pub builds: BuildSettings,
}

/// The `[builds]` table: the build queue's timing. Each key also has an
/// environment twin (`SREG_BUILD_LEASE_SECONDS`, `SREG_BUILD_HEARTBEAT_SECONDS`,
/// `SREG_BUILD_MAX_ATTEMPTS`, `SREG_BUILD_REAPER_INTERVAL_SECONDS`) that wins.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BuildSettings {
    /// A lease ends this long after the agent's last heartbeat.
    pub lease_seconds: u64,
    /// How often agents are told to send heartbeats.
    pub heartbeat_seconds: u64,
    /// Leases a job gets before it fails for good (an expired lease counts).
    pub max_attempts: u32,
    /// How often expired leases are looked for.
    pub reaper_interval_seconds: u64,
}

impl Default for BuildSettings {
    fn default() -> Self {
        Self {
            lease_seconds: 300,
            heartbeat_seconds: 30,
            max_attempts: 3,
            reaper_interval_seconds: 10,
        }
    }
}

impl BuildSettings {
    /// Applies the `SREG_BUILD_*` environment variables.
    fn with_env(mut self) -> Result<Self, ConfigError> {
        fn var<T: std::str::FromStr>(name: &str, slot: &mut T) -> Result<(), ConfigError> {
            if let Ok(v) = std::env::var(name) {
                *slot = v.trim().parse().map_err(|_| ConfigError::Setting {
                    name: name.into(),
                    value: v.clone(),
                })?;
            }
            Ok(())
        }
        var("SREG_BUILD_LEASE_SECONDS", &mut self.lease_seconds)?;
        var("SREG_BUILD_HEARTBEAT_SECONDS", &mut self.heartbeat_seconds)?;
        var("SREG_BUILD_MAX_ATTEMPTS", &mut self.max_attempts)?;
        var(
            "SREG_BUILD_REAPER_INTERVAL_SECONDS",
            &mut self.reaper_interval_seconds,
        )?;
        // Zero would make every lease expire at once or the reaper spin.
        self.lease_seconds = self.lease_seconds.max(1);
        self.heartbeat_seconds = self.heartbeat_seconds.max(1);
        self.max_attempts = self.max_attempts.max(1);
        self.reaper_interval_seconds = self.reaper_interval_seconds.max(1);
        Ok(self)
    }
}

/// The `[registry]` table: policy, enforced on every protocol.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrySettings {
    /// Name shown on pages and in API answers.
    pub name: String,
    /// Where users get help (an e-mail address or URL), shown on pages.
    pub help_contact: String,
    /// `open`: anyone may create an account; `closed`: only admins create them.
    pub registration: Registration,
    /// Collections created without an explicit choice are private.
    pub default_private: bool,
    /// Every collection is private, whatever is asked.
    pub private_only: bool,
    /// Collections a non-admin user may create (0: no limit).
    pub user_collection_limit: u32,
    /// Largest image accepted, in bytes (0: no limit).
    pub max_image_size: u64,
    /// Entity and collection that `library://NAME` and `library://C/NAME` mean.
    pub default_entity: String,
    pub default_collection: String,
    /// Seconds a download link handed out by the shub protocol stays valid.
    pub download_link_ttl: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Registration {
    Open,
    Closed,
}

impl Default for RegistrySettings {
    fn default() -> Self {
        Self {
            name: "sreg".into(),
            help_contact: String::new(),
            registration: Registration::Closed,
            default_private: false,
            private_only: false,
            user_collection_limit: 0,
            max_image_size: 64 << 30,
            default_entity: "library".into(),
            default_collection: "default".into(),
            download_link_ttl: 300,
        }
    }
}

impl RegistrySettings {
    /// Whether a new collection is private, given what the client asked.
    pub fn new_collection_private(&self, asked: Option<bool>) -> bool {
        self.private_only || asked.unwrap_or(self.default_private)
    }

    /// The upload limit in bytes (`u64::MAX` when unlimited).
    pub fn upload_limit(&self) -> u64 {
        if self.max_image_size == 0 {
            u64::MAX
        } else {
            self.max_image_size
        }
    }
}

/// Fully resolved settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub storage_url: String,
    pub public_url: Url,
    /// The server's secret key (see `sealing`): outside the database, so
    /// that a copy of the database alone reveals no token.
    pub secret_key_file: PathBuf,
    /// `sreg-linux-ARCH` files served at `/downloads/sreg/linux-ARCH`
    /// (env `SREG_DOWNLOADS_DIR`, default `<data-dir>/downloads`).
    pub downloads_dir: PathBuf,
    pub registry: RegistrySettings,
    pub builds: BuildSettings,
}

impl Config {
    /// Resolves settings and creates the data directory, which the embedded
    /// defaults (SQLite file, blob folder) live in.
    pub fn load(common: &CommonArgs, serve: &ServeArgs) -> Result<Self, ConfigError> {
        let file = match &common.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };

        let listen_str = pick(&serve.listen, &file.listen).unwrap_or_else(|| DEFAULT_LISTEN.into());
        let listen = listen_str.parse().map_err(|source| ConfigError::Listen {
            value: listen_str.clone(),
            source,
        })?;

        let data_dir = pick(&common.data_dir, &file.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        std::fs::create_dir_all(&data_dir).map_err(|source| ConfigError::DataDir {
            path: data_dir.clone(),
            source,
        })?;
        // Absolute, so that the derived URLs do not depend on the working directory.
        let data_dir = std::path::absolute(&data_dir).map_err(|source| ConfigError::DataDir {
            path: data_dir.clone(),
            source,
        })?;

        let database_url = pick(&common.database, &file.database)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("sreg.db").display()));
        let storage_url = pick(&common.storage, &file.storage)
            .unwrap_or_else(|| file_url(&data_dir.join("blobs")));

        let public_str =
            pick(&serve.public_url, &file.public_url).unwrap_or_else(|| format!("http://{listen}"));
        let public_url = Url::parse(&public_str)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .ok_or(ConfigError::PublicUrl { value: public_str })?;

        let secret_key_file = pick(&common.secret_key_file, &file.secret_key_file)
            .unwrap_or_else(|| data_dir.join("secret.key"));
        let secret_key_file =
            std::path::absolute(&secret_key_file).map_err(|source| ConfigError::DataDir {
                path: secret_key_file.clone(),
                source,
            })?;

        // The environment wins over the file, as flags do elsewhere.
        let downloads_dir = std::env::var_os("SREG_DOWNLOADS_DIR")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or(file.downloads_dir)
            .unwrap_or_else(|| data_dir.join("downloads"));
        let downloads_dir =
            std::path::absolute(&downloads_dir).map_err(|source| ConfigError::DataDir {
                path: downloads_dir.clone(),
                source,
            })?;

        Ok(Self {
            listen,
            data_dir,
            database_url,
            storage_url,
            public_url,
            secret_key_file,
            downloads_dir,
            registry: file.registry,
            builds: file.builds.with_env()?,
        })
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.into(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.into(),
        source: Box::new(source),
    })
}

fn pick<T: Clone>(flag: &Option<T>, file: &Option<T>) -> Option<T> {
    flag.clone().or_else(|| file.clone())
}

fn file_url(path: &Path) -> String {
    Url::from_directory_path(path)
        .map(String::from)
        .unwrap_or_else(|_| format!("file://{}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn common(dir: &Path) -> CommonArgs {
        CommonArgs {
            data_dir: Some(dir.join("data")),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_derive_from_data_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let c = Config::load(&common(tmp.path()), &ServeArgs::default()).unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert!(c.data_dir.is_dir());
        assert_eq!(
            c.database_url,
            format!("sqlite://{}/sreg.db", c.data_dir.display())
        );
        assert_eq!(
            c.storage_url,
            format!("file://{}/blobs/", c.data_dir.display())
        );
        assert_eq!(c.public_url.as_str(), "http://127.0.0.1:8700/");
        assert_eq!(c.secret_key_file, c.data_dir.join("secret.key"));
        if std::env::var_os("SREG_DOWNLOADS_DIR").is_none() {
            assert_eq!(c.downloads_dir, c.data_dir.join("downloads"));
        }
        assert_eq!(c.registry.download_link_ttl, 300);
    }

    #[test]
    fn flags_override_file() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("sreg.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\ndownloads_dir = \"/srv/sreg-downloads\"\npublic_url = \"https://reg.example.org\"\n[registry]\nname = \"Lab\"\nprivate_only = true\nmax_image_size = 1000\nregistration = \"open\"\n",
        )
        .unwrap();
        let mut args = common(tmp.path());
        args.config = Some(file);
        let serve = ServeArgs {
            listen: Some("127.0.0.1:9001".into()),
            ..Default::default()
        };
        let c = Config::load(&args, &serve).unwrap();
        assert_eq!(c.listen.port(), 9001);
        assert_eq!(c.public_url.as_str(), "https://reg.example.org/");
        assert_eq!(c.registry.name, "Lab");
        if std::env::var_os("SREG_DOWNLOADS_DIR").is_none() {
            assert_eq!(c.downloads_dir, Path::new("/srv/sreg-downloads"));
        }
        assert_eq!(c.registry.registration, Registration::Open);
        assert_eq!(c.registry.upload_limit(), 1000);
        assert!(
            c.registry.new_collection_private(Some(false)),
            "private_only wins"
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("sreg.toml");
        std::fs::write(&file, "lisen = \"x\"\n").unwrap();
        let mut args = common(tmp.path());
        args.config = Some(file);
        let err = Config::load(&args, &ServeArgs::default()).unwrap_err();
        assert!(err.to_string().contains("unknown field `lisen`"), "{err}");

        let serve = ServeArgs {
            listen: Some("nowhere".into()),
            ..Default::default()
        };
        let err = Config::load(&common(tmp.path()), &serve).unwrap_err();
        assert!(matches!(err, ConfigError::Listen { .. }), "{err}");

        let serve = ServeArgs {
            public_url: Some("ftp://x".into()),
            ..Default::default()
        };
        let err = Config::load(&common(tmp.path()), &serve).unwrap_err();
        assert!(matches!(err, ConfigError::PublicUrl { .. }), "{err}");
    }
}
