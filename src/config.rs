//! Settings (SPEC §12): defaults that need no file, then an optional TOML file (`--config`), then
//! `ELICENCE_*` environment variables, each layer overriding the one before.

use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::signing::qr;

#[derive(Debug, Clone)]
pub struct Settings {
    /// The SQLite file and the blob store live here.
    pub data_dir: PathBuf,
    pub keys_dir: PathBuf,
    /// `sqlite:…` or `postgres://…`; the SQLite file in the data dir by default.
    pub database_url: DatabaseUrl,
    pub listen: String,
    /// The public URL put in QR codes, uppercase (QR alphanumeric mode). What counts is the
    /// register's (SPEC §12): this value only initialises it, and is compared with it.
    pub verify_base: String,
    /// Whether `verify_base` was configured, rather than derived from the listen address.
    pub verify_base_configured: bool,
    /// Development mode (`ELICENCE_MODE=development`): a loopback verify base is allowed.
    pub development: bool,
    pub library_url: Option<String>,
    /// The HMAC key of push deliveries: never printed (its Debug says `[REDACTED]`).
    pub library_secret: Option<SecretString>,
    /// The city supervision platform every audit record is pushed to (SPEC §15).
    pub supervision_url: Option<String>,
    /// The HMAC key of supervision deliveries: never printed.
    pub supervision_secret: Option<SecretString>,
    /// Where the licence directory and the PDF layouts are.
    pub templates_dir: PathBuf,
    /// How long a status list the service signs may be believed: its `exp` is its `iat` plus
    /// this (SPEC §7). Offline verifiers honour the list's own `exp`, not a setting of theirs.
    pub status_list_lifetime_seconds: i64,
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
    /// Load balancers whose `X-Forwarded-For` names the client (addresses or CIDR blocks).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// How long a console session may stay idle before it ends (SPEC §10 "People").
    pub console_idle_minutes: u64,
    /// The alert rules file (`ELICENCE_ALERT_RULES`); None: the shipped rules.
    pub alert_rules: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobStoreKind {
    Folder,
    Database,
}

/// A database URL, which may carry a password: Debug and Display show it masked
/// (`postgres://user:***@host/db`); only [`DatabaseUrl::expose`] gives the whole text, to connect.
#[derive(Clone)]
pub struct DatabaseUrl(SecretString);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> DatabaseUrl {
        DatabaseUrl(SecretString::from(url.into()))
    }

    /// The URL with its password, for the database driver only.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    pub fn is_sqlite(&self) -> bool {
        self.expose().starts_with("sqlite:")
    }
}

impl std::fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&mask_password(self.expose()))
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

/// `url` with the password of its user part, and a `password=` query parameter, replaced by
/// `***`: what may be shown of a URL in messages and logs.
pub fn mask_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    // The user part runs to the last '@': a password may hold an unencoded '/', '?' or '#'.
    // An '@' in the query instead makes this hide the host too: too much, never too little.
    let (user_info, rest) = match rest.rsplit_once('@') {
        Some((user_info, after)) if !user_info.split(':').next().unwrap_or("").contains('/') => {
            (Some(user_info), after)
        }
        _ => (None, rest),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (host, tail) = rest.split_at(authority_end);
    let authority = match user_info {
        Some(user_info) => match user_info.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => format!("{user_info}@{host}"),
        },
        None => host.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                    _ => pair.to_string(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// The TOML file's keys: the same names as the environment variables, lowercase, without the prefix.
/// (No Debug: it holds the secrets in the clear.)
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    data_dir: Option<PathBuf>,
    keys_dir: Option<PathBuf>,
    database_url: Option<String>,
    listen: Option<String>,
    verify_base: Option<String>,
    mode: Option<String>,
    library_url: Option<String>,
    library_secret: Option<String>,
    supervision_url: Option<String>,
    supervision_secret: Option<String>,
    templates_dir: Option<PathBuf>,
    status_list_lifetime_seconds: Option<u64>,
    blob_store: Option<String>,
    max_scan_bytes: Option<u64>,
    max_manifest_rows: Option<u64>,
    max_upload_bytes: Option<u64>,
    max_expanded_bytes: Option<u64>,
    max_manifest_line_bytes: Option<u64>,
    max_concurrent_jobs: Option<u64>,
    upload_retention_seconds: Option<u64>,
    verify_cache_seconds: Option<u64>,
    trusted_proxies: Option<String>,
    console_idle_minutes: Option<u64>,
    alert_rules: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("{name}: {reason}")]
    Value { name: &'static str, reason: String },
    #[error("data folder {path}: {reason}")]
    DataDir { path: String, reason: String },
}

impl Settings {
    /// Makes the data folder if it is missing and closes it to everyone but its owner (0700):
    /// it holds personal data (the SQLite database, scans, PDFs, reports, batches in progress).
    /// An existing folder is tightened too, whatever the umask made it.
    pub fn prepare_data_dir(&self) -> Result<(), ConfigError> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.data_dir)
            .and_then(|()| {
                std::fs::set_permissions(&self.data_dir, std::fs::Permissions::from_mode(0o700))
            })
            .map_err(|e| ConfigError::DataDir {
                path: self.data_dir.display().to_string(),
                reason: e.to_string(),
            })
    }

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
                parse_file(&text).map_err(|reason| ConfigError::File {
                    path: path.display().to_string(),
                    reason,
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
        let database_url = DatabaseUrl::new(
            pick("ELICENCE_DATABASE_URL", from_file.database_url).unwrap_or_else(|| {
                format!("sqlite:{}", data_dir.join("elicence.sqlite").display())
            }),
        );
        let listen =
            pick("ELICENCE_LISTEN", from_file.listen).unwrap_or_else(|| "127.0.0.1:8080".into());
        let configured_verify_base = pick("ELICENCE_VERIFY_BASE", from_file.verify_base);
        let verify_base_configured = configured_verify_base.is_some();
        let verify_base = configured_verify_base.unwrap_or_else(|| format!("http://{listen}"));
        let verify_base =
            qr::normalise_verify_base(&verify_base).map_err(|e| ConfigError::Value {
                name: "ELICENCE_VERIFY_BASE",
                reason: e.to_string(),
            })?;
        let development = match pick("ELICENCE_MODE", from_file.mode).as_deref() {
            None | Some("production") => false,
            Some("development") => true,
            Some(other) => {
                return Err(ConfigError::Value {
                    name: "ELICENCE_MODE",
                    reason: format!("{other:?} is neither \"production\" nor \"development\""),
                })
            }
        };
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
        let list_lifetime = whole(
            "ELICENCE_STATUS_LIST_LIFETIME_SECONDS",
            from_file.status_list_lifetime_seconds,
            DEFAULT_STATUS_LIST_LIFETIME_SECONDS,
            // At least the ttl, so every list's ttl is the route's cache time.
            crate::signing::status_list::TTL_SECONDS as u64,
        )? as i64;
        // Several instances share PostgreSQL, so by default they share blobs through it too.
        let blob_store = match pick("ELICENCE_BLOB_STORE", from_file.blob_store).as_deref() {
            Some("folder") => BlobStoreKind::Folder,
            Some("database") => BlobStoreKind::Database,
            None if database_url.is_sqlite() => BlobStoreKind::Folder,
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
        let console_idle_minutes = whole(
            "ELICENCE_CONSOLE_IDLE_MINUTES",
            from_file.console_idle_minutes,
            30,
            1,
        )?;
        let trusted_proxies = parse_trusted_proxies(
            &pick("ELICENCE_TRUSTED_PROXIES", from_file.trusted_proxies).unwrap_or_default(),
        )
        .map_err(|reason| ConfigError::Value {
            name: "ELICENCE_TRUSTED_PROXIES",
            reason,
        })?;
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
            verify_base_configured,
            development,
            library_url: pick("ELICENCE_LIBRARY_URL", from_file.library_url),
            library_secret: pick("ELICENCE_LIBRARY_SECRET", from_file.library_secret)
                .map(SecretString::from),
            supervision_url: pick("ELICENCE_SUPERVISION_URL", from_file.supervision_url),
            supervision_secret: pick("ELICENCE_SUPERVISION_SECRET", from_file.supervision_secret)
                .map(SecretString::from),
            status_list_lifetime_seconds: list_lifetime,
            blob_store,
            max_scan_bytes,
            max_manifest_rows,
            max_upload_bytes,
            max_expanded_bytes,
            max_manifest_line_bytes,
            max_concurrent_jobs,
            upload_retention_seconds,
            verify_cache_seconds,
            trusted_proxies,
            console_idle_minutes,
            alert_rules: pick(
                "ELICENCE_ALERT_RULES",
                from_file.alert_rules.map(|p| p.display().to_string()),
            )
            .map(PathBuf::from),
        })
    }
}

/// Parses the trusted proxies setting: addresses and CIDR blocks, separated by commas.
pub fn parse_trusted_proxies(text: &str) -> Result<Vec<ipnet::IpNet>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            entry
                .parse::<ipnet::IpNet>()
                .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| format!("{entry:?} is neither an IP address nor a CIDR block"))
        })
        .collect()
}

/// How long a signed status list may be believed unless configured (a day): a revocation reaches
/// an offline verifier at most this late, and a verifier offline longer must refresh.
pub const DEFAULT_STATUS_LIST_LIFETIME_SECONDS: u64 = 24 * 3600;

/// The keys whose values never appear in a message.
const SECRET_KEYS: [&str; 3] = ["library_secret", "supervision_secret", "database_url"];

/// Reads the settings file. Its errors name line and column but never quote the file: toml's
/// own message shows the offending line, which may hold `library_secret` or a database
/// password, and serde's names the value it found where another type belongs, so the secret
/// keys' values are masked out of it.
fn parse_file(text: &str) -> Result<FileSettings, String> {
    let table: toml::Table = text
        .parse()
        .map_err(|e| describe_toml_error(text, &e, &[]))?;
    let secrets: Vec<String> = SECRET_KEYS
        .iter()
        .filter_map(|key| table.get(*key))
        .map(|value| match value.as_str() {
            Some(text) => text.to_string(),
            None => value.to_string(),
        })
        .filter(|secret| !secret.is_empty())
        .collect();
    toml::from_str(text).map_err(|e| describe_toml_error(text, &e, &secrets))
}

/// A TOML file's error as a line, column and reason, with `secrets` masked out of the reason
/// (the settings file and the alert rules file).
pub fn describe_toml_error(text: &str, e: &toml::de::Error, secrets: &[String]) -> String {
    let mut reason = e.message().trim().to_string();
    for secret in secrets {
        reason = reason.replace(secret.as_str(), "***");
    }
    let Some(span) = e.span() else {
        return reason;
    };
    let before = text.get(..span.start).unwrap_or(text);
    let line = line_of(text, span.start);
    let line_start = before.rsplit('\n').next().unwrap_or("");
    let column = line_start.chars().count() + 1;
    // A wrong value's message names the type, not the key: name the key written before it.
    match line_start.split_once('=').map(|(key, _)| key.trim()) {
        Some(key)
            if !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)) =>
        {
            format!("line {line}, column {column}: {key}: {reason}")
        }
        _ => format!("line {line}, column {column}: {reason}"),
    }
}

/// The line (from 1) of `text` that byte `offset` lies on.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).unwrap_or(text).matches('\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn defaults_need_no_file_and_env_overrides_the_file() {
        let none = Settings::load_from(None, |_| None).unwrap();
        assert_eq!(none.database_url.expose(), "sqlite:data/elicence.sqlite");
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
        assert_eq!(s.database_url.expose(), "sqlite:/srv/el/elicence.sqlite");
        assert_eq!(s.listen, "127.0.0.1:7000");
        assert_eq!(s.verify_base, "HTTPS://ZZ.EXAMPLE.GOV.CN");

        std::fs::write(&file, "colour = 1\n").unwrap();
        let err = Settings::load_from(Some(&file), |_| None).unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
    }

    #[test]
    fn development_mode_is_named_explicitly_and_off_by_default() {
        let mode = |value: &str| {
            Settings::load_from(None, |k| (k == "ELICENCE_MODE").then(|| value.to_string()))
        };
        assert!(!Settings::load_from(None, |_| None).unwrap().development);
        assert!(mode("development").unwrap().development);
        assert!(!mode("production").unwrap().development);
        let err = mode("dev").unwrap_err().to_string();
        assert!(
            err.contains("ELICENCE_MODE") && err.contains("\"dev\""),
            "{err}"
        );
        let configured = |k: &str| (k == "ELICENCE_VERIFY_BASE").then(|| "https://a.cn".into());
        assert!(
            Settings::load_from(None, configured)
                .unwrap()
                .verify_base_configured
        );
        assert!(
            !Settings::load_from(None, |_| None)
                .unwrap()
                .verify_base_configured
        );
    }

    #[test]
    fn a_toml_error_names_its_line_but_never_quotes_a_secret() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("elicence.toml");
        for (text, line) in [
            // A syntax error on the secret's line.
            (
                "listen = \"0.0.0.0:9000\"\nlibrary_secret = \"hunter2-s3cr3t\" x\n",
                2,
            ),
            // A secret of the wrong type: serde quotes the value it found.
            ("\nlibrary_secret = 420042004200\n", 2),
            ("database_url = 420042004200\n", 1),
            (
                "database_url = \"postgres://el:hunter2-s3cr3t@db/el\"\ncolour = 1\n",
                2,
            ),
        ] {
            std::fs::write(&file, text).unwrap();
            let err = Settings::load_from(Some(&file), |_| None)
                .unwrap_err()
                .to_string();
            assert!(
                !err.contains("hunter2") && !err.contains("420042004200"),
                "{err}"
            );
            assert!(err.contains(&format!("line {line}")), "{err}");
        }
    }

    #[test]
    fn settings_as_debugged_show_neither_the_library_secret_nor_the_database_password() {
        let env: HashMap<&str, &str> = [
            ("ELICENCE_LIBRARY_SECRET", "hunter2-s3cr3t"),
            (
                "ELICENCE_DATABASE_URL",
                "postgres://el:hunter2-s3cr3t@db.example:5432/el",
            ),
        ]
        .into();
        let s = Settings::load_from(None, |k| env.get(k).map(|v| v.to_string())).unwrap();
        let debug = format!("{s:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(
            debug.contains("postgres://el:***@db.example:5432/el"),
            "{debug}"
        );
    }

    #[test]
    fn a_masked_url_keeps_everything_but_the_password() {
        for (url, shown) in [
            (
                "postgres://el:pw@db:5432/el",
                "postgres://el:***@db:5432/el",
            ),
            ("postgres://el@db/el", "postgres://el@db/el"),
            (
                "postgres://db/el?user=el&password=pw",
                "postgres://db/el?user=el&password=***",
            ),
            ("postgres://el:p@ss@db/el", "postgres://el:***@db/el"),
            ("postgres://el:pa/ss?w#rd@db/el", "postgres://el:***@db/el"),
            ("sqlite:///srv/a@b.sqlite", "sqlite:///srv/a@b.sqlite"),
            ("sqlite:data/elicence.sqlite", "sqlite:data/elicence.sqlite"),
        ] {
            assert_eq!(mask_password(url), shown);
            assert_eq!(DatabaseUrl::new(url).to_string(), shown);
        }
    }
}
