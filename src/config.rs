//! Settings (SPEC §12): defaults that need no file, then an optional TOML file (`--config`), then
//! `ELICENCE_*` environment variables, each layer overriding the one before.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::signing::qr;

#[derive(Debug, Clone)]
pub struct Settings {
    /// The SQLite file and the blob store live here.
    pub data_dir: PathBuf,
    pub keys_dir: PathBuf,
    /// `sqlite:…` or `postgres://…`; the SQLite file in the data dir by default.
    pub database_url: String,
    pub listen: String,
    /// The public URL put in QR codes, uppercase (QR alphanumeric mode).
    pub verify_base: String,
    pub library_url: Option<String>,
    pub library_secret: Option<String>,
    /// Where the licence directory and the PDF layouts are.
    pub templates_dir: PathBuf,
    /// How old a cached status list may be before offline verification calls it stale.
    pub status_list_max_age_seconds: i64,
    /// Where scans and PDFs are archived: `folder` (under the data dir) or `database`.
    pub blob_store: BlobStoreKind,
    /// Limits on conversion input (SPEC §10): a scan's size, a manifest's rows, an upload's size.
    pub max_scan_bytes: u64,
    pub max_manifest_rows: u64,
    pub max_upload_bytes: u64,
    /// Limits on an uploaded zip beyond its own size: what all its entries expand to together,
    /// and the longest line its manifest may have (a one-line manifest would be read whole).
    pub max_expanded_bytes: u64,
    pub max_manifest_line_bytes: u64,
    /// How many conversion jobs one process runs at once; the rest wait, queued.
    pub max_concurrent_jobs: u64,
    /// How long an uploaded zip is kept after its job ends (0: deleted at once).
    pub upload_retention_seconds: u64,
    /// How long online verification may trust what it read of the register (0: not at all).
    pub verify_cache_seconds: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobStoreKind {
    Folder,
    Database,
}

/// The TOML file's keys: the same names as the environment variables, lowercase, without the prefix.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    data_dir: Option<PathBuf>,
    keys_dir: Option<PathBuf>,
    database_url: Option<String>,
    listen: Option<String>,
    verify_base: Option<String>,
    library_url: Option<String>,
    library_secret: Option<String>,
    templates_dir: Option<PathBuf>,
    status_list_max_age_seconds: Option<u64>,
    blob_store: Option<String>,
    max_scan_bytes: Option<u64>,
    max_manifest_rows: Option<u64>,
    max_upload_bytes: Option<u64>,
    max_expanded_bytes: Option<u64>,
    max_manifest_line_bytes: Option<u64>,
    max_concurrent_jobs: Option<u64>,
    upload_retention_seconds: Option<u64>,
    verify_cache_seconds: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("{name}: {reason}")]
    Value { name: &'static str, reason: String },
}

impl Settings {
    /// Loads settings from the optional file and the process environment.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        Self::load_from(file, |name| std::env::var(name).ok())
    }

    /// Loads settings from the optional file and `env` (a lookup, so tests need no process state).
    pub fn load_from(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigError> {
        let from_file = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?;
                toml::from_str(&text).map_err(|e| ConfigError::File {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?
            }
            None => FileSettings::default(),
        };
        let pick = |name: &str, file_value: Option<String>| env(name).or(file_value);
        let data_dir: PathBuf = pick(
            "ELICENCE_DATA_DIR",
            from_file.data_dir.map(|p| p.display().to_string()),
        )
        .unwrap_or_else(|| "data".into())
        .into();
        let database_url = pick("ELICENCE_DATABASE_URL", from_file.database_url)
            .unwrap_or_else(|| format!("sqlite:{}", data_dir.join("elicence.sqlite").display()));
        let listen =
            pick("ELICENCE_LISTEN", from_file.listen).unwrap_or_else(|| "127.0.0.1:8080".into());
        let verify_base = pick("ELICENCE_VERIFY_BASE", from_file.verify_base)
            .unwrap_or_else(|| format!("http://{listen}"));
        let verify_base =
            qr::normalise_verify_base(&verify_base).map_err(|e| ConfigError::Value {
                name: "ELICENCE_VERIFY_BASE",
                reason: e.to_string(),
            })?;
        // A whole number from the environment or the file, at least `least`.
        let whole =
            |name: &'static str, file_value: Option<u64>, default: u64, least: u64| match pick(
                name,
                file_value.map(|n| n.to_string()),
            ) {
                Some(s) => s
                    .parse()
                    .ok()
                    .filter(|&n: &u64| n >= least)
                    .ok_or(ConfigError::Value {
                        name,
                        reason: format!("{s:?} is not a whole number of at least {least}"),
                    }),
                None => Ok(default),
            };
        let max_age = whole(
            "ELICENCE_STATUS_LIST_MAX_AGE_SECONDS",
            from_file.status_list_max_age_seconds,
            crate::verify::DEFAULT_MAX_STATUS_AGE_SECONDS as u64,
            1,
        )? as i64;
        // Several instances share PostgreSQL, so by default they share blobs through it too.
        let blob_store = match pick("ELICENCE_BLOB_STORE", from_file.blob_store).as_deref() {
            Some("folder") => BlobStoreKind::Folder,
            Some("database") => BlobStoreKind::Database,
            None if database_url.starts_with("sqlite:") => BlobStoreKind::Folder,
            None => BlobStoreKind::Database,
            Some(other) => {
                return Err(ConfigError::Value {
                    name: "ELICENCE_BLOB_STORE",
                    reason: format!("{other:?} is neither \"folder\" nor \"database\""),
                })
            }
        };
        let max_scan_bytes = whole(
            "ELICENCE_MAX_SCAN_BYTES",
            from_file.max_scan_bytes,
            10 << 20,
            1,
        )?;
        let max_manifest_rows = whole(
            "ELICENCE_MAX_MANIFEST_ROWS",
            from_file.max_manifest_rows,
            200_000,
            1,
        )?;
        let max_upload_bytes = whole(
            "ELICENCE_MAX_UPLOAD_BYTES",
            from_file.max_upload_bytes,
            1 << 30,
            1,
        )?;
        let max_expanded_bytes = whole(
            "ELICENCE_MAX_EXPANDED_BYTES",
            from_file.max_expanded_bytes,
            2 << 30,
            1,
        )?;
        let max_manifest_line_bytes = whole(
            "ELICENCE_MAX_MANIFEST_LINE_BYTES",
            from_file.max_manifest_line_bytes,
            64 << 10,
            1,
        )?;
        // A job renders on every core already: a second at once would only share them (and
        // double the memory).
        let max_concurrent_jobs = whole(
            "ELICENCE_MAX_CONCURRENT_JOBS",
            from_file.max_concurrent_jobs,
            1,
            1,
        )?;
        let upload_retention_seconds = whole(
            "ELICENCE_UPLOAD_RETENTION_SECONDS",
            from_file.upload_retention_seconds,
            0,
            0,
        )?;
        // 0 turns the verification cache off.
        let verify_cache_seconds = whole(
            "ELICENCE_VERIFY_CACHE_SECONDS",
            from_file.verify_cache_seconds,
            2,
            0,
        )?;
        Ok(Settings {
            keys_dir: pick(
                "ELICENCE_KEYS_DIR",
                from_file.keys_dir.map(|p| p.display().to_string()),
            )
            .unwrap_or_else(|| "keys".into())
            .into(),
            templates_dir: pick(
                "ELICENCE_TEMPLATES_DIR",
                from_file.templates_dir.map(|p| p.display().to_string()),
            )
            .unwrap_or_else(|| "templates".into())
            .into(),
            data_dir,
            database_url,
            listen,
            verify_base,
            library_url: pick("ELICENCE_LIBRARY_URL", from_file.library_url),
            library_secret: pick("ELICENCE_LIBRARY_SECRET", from_file.library_secret),
            status_list_max_age_seconds: max_age,
            blob_store,
            max_scan_bytes,
            max_manifest_rows,
            max_upload_bytes,
            max_expanded_bytes,
            max_manifest_line_bytes,
            max_concurrent_jobs,
            upload_retention_seconds,
            verify_cache_seconds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn defaults_need_no_file_and_env_overrides_the_file() {
        let none = Settings::load_from(None, |_| None).unwrap();
        assert_eq!(none.database_url, "sqlite:data/elicence.sqlite");
        assert_eq!(none.verify_base, "HTTP://127.0.0.1:8080");
        assert_eq!(none.keys_dir, PathBuf::from("keys"));

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("elicence.toml");
        std::fs::write(&file, "data_dir = \"/srv/el\"\nlisten = \"0.0.0.0:9000\"\n").unwrap();
        let env: HashMap<&str, &str> = [
            ("ELICENCE_LISTEN", "127.0.0.1:7000"),
            ("ELICENCE_VERIFY_BASE", "https://zz.example.gov.cn"),
        ]
        .into();
        let s = Settings::load_from(Some(&file), |k| env.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(s.database_url, "sqlite:/srv/el/elicence.sqlite");
        assert_eq!(s.listen, "127.0.0.1:7000");
        assert_eq!(s.verify_base, "HTTPS://ZZ.EXAMPLE.GOV.CN");

        std::fs::write(&file, "colour = 1\n").unwrap();
        let err = Settings::load_from(Some(&file), |_| None).unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
    }
}
