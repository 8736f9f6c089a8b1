//! Service settings: built-in defaults, then `config/keepword.toml` (or `--config`),
//! then `KEEPWORD_*` environment variables (`__` for nesting: `KEEPWORD_SMTP__PORT`).
//!
//! The key names are an interface (deployments set them), so unknown keys are
//! errors rather than silently ignored: a typo like `KEEPWORD_SMPT__HOST` would
//! otherwise leave the real setting at its default without anyone noticing.
//! Secrets are wrapped in [`Secret`] so that `Debug` and error messages never
//! show them; `*_file` keys read a secret from a file (Docker/Kubernetes secrets).

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use serde::{Deserialize, Deserializer, Serialize};

/// The config file read when `--config` is not given. A missing default file is
/// fine (built-in defaults apply); a missing file that was asked for is an error.
pub const DEFAULT_CONFIG_PATH: &str = "config/keepword.toml";

/// `KEEPWORD_*` variables that are not config keys: they steer the CLI, logging
/// or the test suite, and must not trip the unknown-key check.
const NON_CONFIG_ENV: &[&str] = &["config", "log", "log_format", "python", "test_database_url"];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    Missing(PathBuf),
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error("config key `{key}`: cannot read secret file {path}: {reason}")]
    SecretFile {
        key: String,
        path: PathBuf,
        reason: String,
    },
}

/// A value that must never be printed: `Debug` and `Display` show `[redacted]`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tls {
    None,
    Starttls,
    Tls,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Everything `keepword serve` needs. Every field is documented in the shipped
/// `config/keepword.toml`; a test checks that file against this struct.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address the HTTP server listens on.
    pub bind: SocketAddr,
    /// `sqlite://PATH` (created on first start) or `postgres://user@host/db`.
    pub database_url: String,
    /// Path of the contract TOML file.
    pub contract: PathBuf,
    /// Base URL used in links in emails and alerts.
    pub public_url: String,
    /// Bearer tokens accepted by `/api/v1/*`. From env: comma-separated.
    #[serde(deserialize_with = "list_or_csv")]
    pub api_tokens: Vec<Secret>,
    /// Password of the team dashboard.
    pub dashboard_password: Secret,
    /// Log output: `text` for people, `json` for log shippers.
    pub log_format: LogFormat,
    /// Folder of the acknowledgement templates; a missing file falls back to
    /// the built-in copy of the shipped one.
    pub templates: PathBuf,
    pub github: GithubSettings,
    pub smtp: SmtpSettings,
    pub mailboxes: Vec<MailboxSettings>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubSettings {
    /// Shared secret GitHub signs webhook deliveries with.
    pub webhook_secret: Secret,
    /// Read the secret from this file instead (wins over `webhook_secret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret_file: Option<PathBuf>,
    /// Contract channel the deliveries feed (default: the first `ticket` channel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: Tls,
    pub username: String,
    pub password: Secret,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// `From:` of acknowledgements and alerts.
    pub from: String,
    /// Extra CA certificates (PEM) trusted for the SMTP server besides the
    /// public web roots, for a server whose certificate a private CA signed.
    /// Empty or absent: public roots only. Checked at load: the file must
    /// hold at least one certificate.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "empty_path_is_none"
    )]
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailboxSettings {
    pub name: String,
    /// The contract channel this mailbox feeds.
    #[serde(default = "default_mail_channel")]
    pub channel: String,
    pub host: String,
    #[serde(default = "default_imap_port")]
    pub port: u16,
    #[serde(default = "default_imap_tls")]
    pub tls: Tls,
    pub username: String,
    #[serde(default)]
    pub password: Secret,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    #[serde(default = "default_inbox")]
    pub inbox: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent: Option<String>,
    /// Addresses (or `@domain` suffixes) whose mail counts as the team's.
    #[serde(default)]
    pub team_addresses: Vec<String>,
    /// Extra CA certificates (PEM) trusted for this IMAP server besides the
    /// public web roots, for a server whose certificate a private CA signed.
    /// Empty or absent: public roots only. Checked at load: the file must
    /// hold at least one certificate.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "empty_path_is_none"
    )]
    pub ca_file: Option<PathBuf>,
}

fn default_mail_channel() -> String {
    "email".into()
}
fn default_imap_port() -> u16 {
    993
}
fn default_imap_tls() -> Tls {
    Tls::Tls
}
fn default_inbox() -> String {
    "INBOX".into()
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            bind: "127.0.0.1:8080".parse().expect("valid literal"),
            database_url: "sqlite://data/keepword.db".into(),
            contract: "config/contract.toml".into(),
            public_url: "http://127.0.0.1:8080".into(),
            api_tokens: vec![Secret::new("change-me")],
            dashboard_password: Secret::new("change-me"),
            log_format: LogFormat::Text,
            templates: "config/templates".into(),
            github: GithubSettings {
                webhook_secret: Secret::new("change-me"),
                webhook_secret_file: None,
                channel: None,
            },
            smtp: SmtpSettings {
                host: "127.0.0.1".into(),
                port: 25,
                tls: Tls::None,
                username: String::new(),
                password: Secret::default(),
                password_file: None,
                from: "Northwind Support <support@example.com>".into(),
                ca_file: None,
            },
            mailboxes: Vec::new(),
        }
    }
}

/// `ca_file = ""` (the shipped default, and how an environment variable
/// unsets it) means no extra CA.
fn empty_path_is_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    let path = Option::<PathBuf>::deserialize(d)?;
    Ok(path.filter(|p| !p.as_os_str().is_empty()))
}

/// Accepts a TOML array or a comma-separated string (`KEEPWORD_API_TOKENS="a,b"`).
fn list_or_csv<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Secret>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrCsv {
        List(Vec<String>),
        Csv(String),
    }
    Ok(match ListOrCsv::deserialize(d)? {
        ListOrCsv::List(items) => items.into_iter().map(Secret::new).collect(),
        ListOrCsv::Csv(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Secret::new)
            .collect(),
    })
}

impl Settings {
    /// Loads settings: defaults, then the file, then `KEEPWORD_*` env.
    /// `path = None` means the default path, which may be absent.
    pub fn load(path: Option<&Path>) -> Result<Settings, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| k.starts_with("KEEPWORD_"))
            .collect();
        Self::load_from(path, &env)
    }

    /// Like [`Settings::load`] with an explicit environment, so tests need not
    /// mutate the process environment.
    pub fn load_from(
        path: Option<&Path>,
        env: &[(String, String)],
    ) -> Result<Settings, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        match path {
            Some(p) if !p.exists() => return Err(ConfigError::Missing(p.to_path_buf())),
            Some(p) => figment = figment.merge(Toml::file_exact(p)),
            None if Path::new(DEFAULT_CONFIG_PATH).exists() => {
                figment = figment.merge(Toml::file_exact(DEFAULT_CONFIG_PATH))
            }
            None => {}
        }
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("KEEPWORD_") else {
                continue;
            };
            let key = rest.to_ascii_lowercase();
            if NON_CONFIG_ENV.contains(&key.as_str()) {
                continue;
            }
            // Parsed the way figment's own Env provider parses values, so
            // `KEEPWORD_SMTP__PORT=2525` becomes a number.
            let value: figment::value::Value = value.parse().unwrap_or_else(|e| match e {});
            figment = figment.merge(Serialized::global(&key.replace("__", "."), value));
        }
        let mut settings: Settings = figment
            .extract()
            .map_err(|e| ConfigError::Invalid(describe_figment_error(e)))?;
        settings.read_secret_files()?;
        settings.check()?;
        settings.check_ca_files()?;
        Ok(settings)
    }

    fn read_secret_files(&mut self) -> Result<(), ConfigError> {
        fn read(key: &str, path: &Path) -> Result<Secret, ConfigError> {
            std::fs::read_to_string(path)
                .map(|s| Secret::new(s.trim_end_matches(['\n', '\r'])))
                .map_err(|e| ConfigError::SecretFile {
                    key: key.into(),
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })
        }
        if let Some(p) = &self.github.webhook_secret_file {
            self.github.webhook_secret = read("github.webhook_secret_file", p)?;
        }
        if let Some(p) = &self.smtp.password_file {
            self.smtp.password = read("smtp.password_file", p)?;
        }
        for (i, mb) in self.mailboxes.iter_mut().enumerate() {
            if let Some(p) = &mb.password_file {
                mb.password = read(&format!("mailboxes[{i}].password_file"), p)?;
            }
        }
        Ok(())
    }

    /// Checks what serde cannot: URL schemes, non-empty required values.
    fn check(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if crate::store::DatabaseUrl::parse(&self.database_url).is_err() {
            problems.push(format!(
                "`database_url` must start with sqlite:// or postgres:// (got `{}`)",
                crate::store::redact_url(&self.database_url)
            ));
        }
        if !(self.public_url.starts_with("http://") || self.public_url.starts_with("https://")) {
            problems.push(format!(
                "`public_url` must be an http:// or https:// URL (got `{}`)",
                self.public_url
            ));
        }
        if self.api_tokens.iter().any(Secret::is_empty) {
            problems.push("`api_tokens` contains an empty token".into());
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, mb) in self.mailboxes.iter().enumerate() {
            if mb.name.trim().is_empty() {
                problems.push(format!("`mailboxes[{i}].name` is empty"));
            } else if !names.insert(mb.name.as_str()) {
                problems.push(format!(
                    "`mailboxes[{i}].name` `{}` is used by two mailboxes",
                    mb.name
                ));
            }
            if mb.host.trim().is_empty() {
                problems.push(format!("`mailboxes[{i}].host` is empty"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems.join("; ")))
        }
    }

    /// A `ca_file` that is missing or holds no certificate would only show up
    /// as a refused handshake much later; refuse it at load, naming the key.
    fn check_ca_files(&self) -> Result<(), ConfigError> {
        let mut keyed = Vec::new();
        if let Some(p) = &self.smtp.ca_file {
            keyed.push(("smtp.ca_file".to_string(), p));
        }
        for (i, mb) in self.mailboxes.iter().enumerate() {
            if let Some(p) = &mb.ca_file {
                keyed.push((format!("mailboxes[{i}].ca_file"), p));
            }
        }
        let problems: Vec<String> = keyed
            .into_iter()
            .filter_map(|(key, path)| {
                crate::tls::read_ca_file(path)
                    .err()
                    .map(|e| format!("`{key}`: {e}"))
            })
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems.join("; ")))
        }
    }

    /// Where the contract path is resolved from: relative paths are taken from
    /// the working directory, as users type them.
    pub fn contract_path(&self) -> &Path {
        &self.contract
    }
}

fn describe_figment_error(e: figment::Error) -> String {
    e.into_iter()
        .map(|e| {
            let key = if e.path.is_empty() {
                String::new()
            } else {
                format!("key `{}`: ", e.path.join("."))
            };
            let source = match &e.metadata {
                Some(m) => match &m.source {
                    Some(src) => format!(" (from {} {src})", m.name),
                    None => format!(" (from {})", m.name),
                },
                None => String::new(),
            };
            format!("{key}{}{source}", e.kind)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn shipped_config_file_loads_and_matches_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/keepword.toml");
        let s = Settings::load_from(Some(&path), &[]).expect("shipped config is valid");
        let d = Settings::default();
        assert_eq!(s.bind, d.bind);
        assert_eq!(s.database_url, d.database_url);
        assert_eq!(s.contract, d.contract);
        assert_eq!(s.smtp.port, d.smtp.port);
    }

    #[test]
    fn env_overrides_file_with_nesting_and_csv_lists() {
        let f = file("bind = \"127.0.0.1:9000\"\n[smtp]\nport = 2525\n");
        let s = Settings::load_from(
            Some(f.path()),
            &env(&[
                ("KEEPWORD_SMTP__PORT", "2626"),
                ("KEEPWORD_API_TOKENS", "a, b"),
                ("KEEPWORD_DATABASE_URL", "postgres://u@h/db"),
            ]),
        )
        .unwrap();
        assert_eq!(s.bind.port(), 9000);
        assert_eq!(s.smtp.port, 2626);
        assert_eq!(
            s.api_tokens.iter().map(Secret::expose).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(s.database_url, "postgres://u@h/db");
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        let f = file("bnd = \"127.0.0.1:9000\"\n");
        let e = Settings::load_from(Some(f.path()), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("bnd"), "{e}");
        let e = Settings::load_from(None, &env(&[("KEEPWORD_SMPT__HOST", "x")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("smpt"), "{e}");
    }

    #[test]
    fn bad_values_are_named_and_secrets_never_shown() {
        let f =
            file("database_url = \"mysql://root:hunter2@x/db\"\n[smtp]\npassword = \"s3cret\"\n");
        let e = Settings::load_from(Some(f.path()), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("database_url"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        let f = file("[smtp]\nport = \"lots\"\n");
        let e = Settings::load_from(Some(f.path()), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("smtp.port"), "{e}");
        let s = Settings::load_from(None, &env(&[("KEEPWORD_SMTP__PASSWORD", "s3cret")])).unwrap();
        assert!(!format!("{s:?}").contains("s3cret"));
    }

    #[test]
    fn secrets_are_read_from_files() {
        let secret = file("from-file\n");
        let f = file(&format!(
            "[smtp]\npassword_file = \"{}\"\n",
            secret.path().display()
        ));
        let s = Settings::load_from(Some(f.path()), &[]).unwrap();
        assert_eq!(s.smtp.password.expose(), "from-file");
        let f = file("[smtp]\npassword_file = \"/nonexistent/secret\"\n");
        let e = Settings::load_from(Some(f.path()), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("smtp.password_file"), "{e}");
    }

    #[test]
    fn ca_files_are_checked_at_load_naming_key_and_path() {
        // Empty means none, as in the shipped file.
        let f = file("[smtp]\nca_file = \"\"\n");
        let s = Settings::load_from(Some(f.path()), &[]).unwrap();
        assert_eq!(s.smtp.ca_file, None);

        let f = file("[smtp]\nca_file = \"/nonexistent/ca.pem\"\n");
        let e = Settings::load_from(Some(f.path()), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("`smtp.ca_file`"), "{e}");
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");

        let not_pem = file("just text, no certificate\n");
        let f = file(&format!(
            "[[mailboxes]]\nname = \"support\"\nhost = \"imap.test\"\n\
             username = \"u\"\nca_file = \"{}\"\n",
            not_pem.path().display()
        ));
        let e = Settings::load_from(Some(f.path()), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("`mailboxes[0].ca_file`"), "{e}");
        assert!(e.contains("no PEM certificate"), "{e}");
        assert!(e.contains(&not_pem.path().display().to_string()), "{e}");

        let key = rcgen::KeyPair::generate().unwrap();
        let ca = rcgen::CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let pem = file(&ca.pem());
        let f = file(&format!("[smtp]\nca_file = \"{}\"\n", pem.path().display()));
        let s = Settings::load_from(Some(f.path()), &[]).unwrap();
        assert_eq!(s.smtp.ca_file.as_deref(), Some(pem.path()));
    }

    #[test]
    fn an_explicit_missing_config_file_is_an_error() {
        let e = Settings::load_from(Some(Path::new("/nonexistent/k.toml")), &[]).unwrap_err();
        assert!(matches!(e, ConfigError::Missing(_)));
    }
}
