//! Service settings: built-in defaults, then `config/keepword.toml` (or `--config`),
//! then `KEEPWORD_*` environment variables (`__` for nesting: `KEEPWORD_SMTP__PORT`).
//!
//! The key names are an interface (deployments set them), so unknown keys are
//! errors rather than silently ignored: a typo like `KEEPWORD_SMPT__HOST` would
//! otherwise leave the real setting at its default without anyone noticing.
//! Secrets are wrapped in [`Secret`] so that `Debug` and error messages never
//! show them; `*_file` keys read a secret from a file (Docker/Kubernetes secrets).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use figment::value::Dict;
use serde::{Deserialize, Deserializer, Serialize};

mod addresses;
mod problems;
mod secret;
mod sections;
#[cfg(test)]
mod tests;

pub use addresses::{FromAddress, PublicUrl};
use problems::{Sources, describe_figment_error, describe_one, is_text_key, repair};
pub use secret::Secret;
pub use sections::*;

/// The config file read when `--config` is not given. A missing default file is
/// fine (built-in defaults apply); a missing file that was asked for is an error.
pub const DEFAULT_CONFIG_PATH: &str = "config/keepword.toml";

/// `KEEPWORD_*` variables that are not config keys: they steer the CLI, logging
/// or the test suite, and must not trip the unknown-key check.
const NON_CONFIG_ENV: &[&str] = &["config", "log", "log_format", "python", "test_database_url"];

/// The secret the shipped config and the defaults carry: a placeholder
/// everyone knows.
pub const PLACEHOLDER_SECRET: &str = "change-me";

/// The shortest dashboard password accepted on an address others can reach:
/// the sign-in limit slows guessing per address, not across many.
pub const MIN_DASHBOARD_PASSWORD_CHARS: usize = 12;

/// What [`Settings::check_secrets_for_bind`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretsCheck {
    Fine,
    /// Start, and log this.
    Warn(String),
    /// Do not start: this is why.
    Refuse(String),
}

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
    pub public_url: PublicUrl,
    /// Bearer tokens accepted by `/api/v1/*`. From env: comma-separated.
    #[serde(deserialize_with = "list_or_csv")]
    pub api_tokens: Vec<Secret>,
    /// Password of the team dashboard. Never empty; beyond loopback at
    /// least [`MIN_DASHBOARD_PASSWORD_CHARS`] characters.
    pub dashboard_password: Secret,
    /// Read the dashboard password from this file instead (wins over
    /// `dashboard_password`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dashboard_password_file: Option<PathBuf>,
    /// Tokens of read-only wallboard links, `/wall?token=T`. From env:
    /// comma-separated. Empty: no wallboard.
    #[serde(default, deserialize_with = "list_or_csv")]
    pub wall_tokens: Vec<Secret>,
    /// Bearer token `/metrics` asks for (Prometheus's `authorization` or
    /// `bearer_token`): the breach counts are per client. Empty: `/metrics`
    /// is public. Otherwise at least 16 characters.
    #[serde(default)]
    pub metrics_token: Secret,
    /// Read the metrics token from this file instead (wins over
    /// `metrics_token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_token_file: Option<PathBuf>,
    /// Log output: `text` for people, `json` for log shippers.
    pub log_format: LogFormat,
    /// Folder of the acknowledgement templates; a missing file falls back to
    /// the built-in copy of the shipped one.
    pub templates: PathBuf,
    pub github: GithubSettings,
    /// `[jira]`: Jira Cloud and Jira Service Management webhooks. Absent:
    /// `/webhooks/jira` answers 404.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jira: Option<TicketWebhookSettings>,
    /// `[linear]`: Linear webhooks. Absent: `/webhooks/linear` answers 404.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linear: Option<TicketWebhookSettings>,
    /// `[basecamp]`: Basecamp webhooks. Absent: `/webhooks/basecamp/…`
    /// answers 404.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basecamp: Option<BasecampSettings>,
    /// `[slack]`: Slack's Events API and the acknowledgements posted in
    /// threads. Absent: `/webhooks/slack` answers 404.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack: Option<SlackSettings>,
    pub smtp: SmtpSettings,
    pub mailboxes: Vec<MailboxSettings>,
    /// PagerDuty Events API v2 endpoint contacts' `pagerduty` keys post to.
    pub pagerduty_url: String,
    /// Base URL of the Opsgenie (or Jira Service Management Ops) alert API.
    pub opsgenie_url: String,
    pub webhooks: WebhookSettings,
    /// OAuth 2.0 credentials by name, for mailboxes and SMTP with
    /// `auth = "oauth2"` (see `crate::oauth::settings`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub oauth: std::collections::BTreeMap<String, crate::oauth::OAuthSettings>,
    /// The key (32 random bytes) that encrypts stored OAuth grants. Unset:
    /// `data/secret.key`, created (mode 0600) on first need; back it up
    /// with the database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_file: Option<PathBuf>,
    /// The contract contact that hears of keepword's own health: a mailbox
    /// whose grant the provider refused, a mailbox unread for ten minutes,
    /// and their recovery. Unset: those show on the Connections page,
    /// in the log and in metrics only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ops_contact: Option<String>,
    /// `[retention]`: how long personal data in mail is kept.
    #[serde(default)]
    pub retention: RetentionSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            bind: "127.0.0.1:8080".parse().expect("valid literal"),
            database_url: "sqlite://data/keepword.db".into(),
            contract: "config/contract.toml".into(),
            public_url: "http://127.0.0.1:8080"
                .parse()
                .expect("the default public_url parses"),
            api_tokens: vec![Secret::new(PLACEHOLDER_SECRET)],
            dashboard_password: Secret::new(PLACEHOLDER_SECRET),
            dashboard_password_file: None,
            wall_tokens: Vec::new(),
            metrics_token: Secret::default(),
            metrics_token_file: None,
            log_format: LogFormat::Text,
            templates: "config/templates".into(),
            github: GithubSettings {
                webhook_secret: Secret::new(PLACEHOLDER_SECRET),
                webhook_secret_file: None,
                channel: None,
            },
            jira: None,
            linear: None,
            basecamp: None,
            slack: None,
            smtp: SmtpSettings {
                host: "127.0.0.1".into(),
                port: 25,
                tls: Tls::None,
                username: String::new(),
                password: Secret::default(),
                password_file: None,
                from: "Northwind Support <support@example.com>"
                    .parse()
                    .expect("the default smtp.from parses"),
                ca_file: None,
                auth: Default::default(),
                oauth: None,
            },
            mailboxes: Vec::new(),
            pagerduty_url: "https://events.pagerduty.com/v2/enqueue".into(),
            opsgenie_url: "https://api.opsgenie.com".into(),
            webhooks: WebhookSettings::default(),
            oauth: Default::default(),
            secret_key_file: None,
            ops_contact: None,
            retention: RetentionSettings::default(),
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
        List(Vec<Secret>),
        Csv(Secret),
    }
    Ok(match ListOrCsv::deserialize(d)? {
        ListOrCsv::List(items) => items,
        ListOrCsv::Csv(s) => s
            .expose()
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
    ///
    /// Every problem is reported, not only the first: a wrong value is noted
    /// and replaced by its default (an unknown key is dropped), and the
    /// settings are read again, until nothing more is wrong.
    pub fn load_from(
        path: Option<&Path>,
        env: &[(String, String)],
    ) -> Result<Settings, ConfigError> {
        let file = match path {
            Some(p) if !p.exists() => return Err(ConfigError::Missing(p.to_path_buf())),
            Some(p) => Some(p.to_path_buf()),
            None if Path::new(DEFAULT_CONFIG_PATH).exists() => Some(DEFAULT_CONFIG_PATH.into()),
            None => None,
        };
        let defaults: Dict = Figment::from(Serialized::defaults(Settings::default()))
            .extract()
            .expect("the defaults serialize to a dictionary");
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(f) = &file {
            figment = figment.merge(Toml::file_exact(f));
        }
        let mut sources = Sources {
            file: file.clone(),
            env: Vec::new(),
        };
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("KEEPWORD_") else {
                continue;
            };
            let key = rest.to_ascii_lowercase();
            if NON_CONFIG_ENV.contains(&key.as_str()) {
                continue;
            }
            let dotted = key.replace("__", ".");
            // Parsed the way figment's own Env provider parses values, so
            // `KEEPWORD_SMTP__PORT=2525` becomes a number — except where the
            // setting is text: a secret `123456789` stays the string it is.
            let value = if is_text_key(&defaults, &dotted) {
                figment::value::Value::from(value.clone())
            } else {
                value.parse().unwrap_or_else(|e| match e {})
            };
            figment = figment.merge(Serialized::global(&dotted, value));
            sources.env.push((dotted, name.clone()));
        }
        // Only a file that is not TOML at all stops here.
        let mut merged: Dict = figment
            .extract()
            .map_err(|e| ConfigError::Invalid(describe_figment_error(e, &sources)))?;
        let mut problems = Vec::new();
        let mut settings = None;
        // Each round removes one mistake; the bound only guards the loop.
        for _ in 0..100 {
            match Figment::from(Serialized::defaults(&merged)).extract::<Settings>() {
                Ok(s) => {
                    settings = Some(s);
                    break;
                }
                Err(e) => {
                    let mut repaired = false;
                    for e in e {
                        problems.push(describe_one(&e, &sources));
                        repaired |= repair(&mut merged, &defaults, &e);
                    }
                    if !repaired {
                        break;
                    }
                }
            }
        }
        let Some(mut settings) = settings else {
            return Err(ConfigError::Invalid(problems.join("; ")));
        };
        settings.read_secret_files()?;
        if let Err(ConfigError::Invalid(more)) = settings.check() {
            problems.push(more);
        }
        if let Err(ConfigError::Invalid(more)) = settings.check_ca_files() {
            problems.push(more);
        }
        if problems.is_empty() {
            Ok(settings)
        } else {
            Err(ConfigError::Invalid(problems.join("; ")))
        }
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
        for (key, settings) in [("jira", &mut self.jira), ("linear", &mut self.linear)] {
            if let Some(t) = settings
                && let Some(p) = &t.webhook_secret_file
            {
                t.webhook_secret = read(&format!("{key}.webhook_secret_file"), p)?;
            }
        }
        if let Some(b) = &mut self.basecamp
            && let Some(p) = &b.webhook_secret_file
        {
            b.webhook_secret = read("basecamp.webhook_secret_file", p)?;
        }
        if let Some(s) = &mut self.slack {
            if let Some(p) = &s.signing_secret_file {
                s.signing_secret = read("slack.signing_secret_file", p)?;
            }
            if let Some(p) = &s.bot_token_file {
                s.bot_token = read("slack.bot_token_file", p)?;
            }
        }
        if let Some(p) = &self.smtp.password_file {
            self.smtp.password = read("smtp.password_file", p)?;
        }
        if let Some(p) = &self.webhooks.signing_secret_file {
            self.webhooks.signing_secret = read("webhooks.signing_secret_file", p)?;
        }
        if let Some(p) = &self.dashboard_password_file {
            self.dashboard_password = read("dashboard_password_file", p)?;
        }
        if let Some(p) = &self.metrics_token_file {
            self.metrics_token = read("metrics_token_file", p)?;
        }
        for (i, mb) in self.mailboxes.iter_mut().enumerate() {
            if let Some(p) = &mb.password_file {
                mb.password = read(&format!("mailboxes[{i}].password_file"), p)?;
            }
        }
        crate::oauth::settings::read_secret_files(&mut self.oauth).map_err(ConfigError::Invalid)?;
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
        if self.wall_tokens.iter().any(|t| t.expose().len() < 16) {
            problems.push(
                "`wall_tokens`: each token needs at least 16 characters (it is the only key to the wallboard)"
                    .into(),
            );
        }
        for (key, url) in [
            ("pagerduty_url", &self.pagerduty_url),
            ("opsgenie_url", &self.opsgenie_url),
        ] {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                problems.push(format!(
                    "`{key}` must be an http:// or https:// URL (got `{url}`)"
                ));
            }
        }
        if let Err(e) = self.webhooks.signing_key() {
            problems.push(e);
        }
        // An unset variable in a compose file arrives as an empty string, and
        // an empty password would match an empty form field.
        if self.dashboard_password.is_empty() {
            problems.push(
                "`dashboard_password` is empty (it would sign anyone in): set \
                 KEEPWORD_DASHBOARD_PASSWORD, `dashboard_password` or `dashboard_password_file`"
                    .into(),
            );
        }
        if !self.metrics_token.is_empty() && self.metrics_token.expose().chars().count() < 16 {
            problems.push(
                "`metrics_token` needs at least 16 characters (or none: public /metrics)".into(),
            );
        }
        if self.api_tokens.iter().any(Secret::is_empty) {
            problems.push("`api_tokens` contains an empty token".into());
        }
        let ticket_secrets = [
            ("jira", self.jira.as_ref().map(|t| &t.webhook_secret)),
            ("linear", self.linear.as_ref().map(|t| &t.webhook_secret)),
            (
                "basecamp",
                self.basecamp.as_ref().map(|b| &b.webhook_secret),
            ),
        ];
        for (section, secret) in ticket_secrets {
            // The URL secret is Basecamp's only credential, and an HMAC key
            // as short as a word is guessable offline from one signed body.
            if secret.is_some_and(|s| s.expose().len() < 16) {
                problems.push(format!(
                    "`{section}.webhook_secret` needs at least 16 characters (or remove [{section}])"
                ));
            }
        }
        if let Some(s) = &self.slack {
            problems.extend(s.problems());
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
        problems.extend(crate::oauth::settings::problems(self));
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems.join("; ")))
        }
    }

    /// The keys still holding the shipped placeholder secret, each with the
    /// ways to set it.
    pub fn placeholder_secrets(&self) -> Vec<(&'static str, &'static str)> {
        let placeholder = |s: &Secret| s.expose() == PLACEHOLDER_SECRET;
        let mut keys = Vec::new();
        if self.api_tokens.iter().any(placeholder) {
            keys.push((
                "api_tokens",
                "KEEPWORD_API_TOKENS=\"token1,token2\" or `api_tokens` in the config file",
            ));
        }
        if placeholder(&self.github.webhook_secret) {
            keys.push((
                "github.webhook_secret",
                "KEEPWORD_GITHUB__WEBHOOK_SECRET, or `webhook_secret` / `webhook_secret_file` \
                 under [github]",
            ));
        }
        if placeholder(&self.dashboard_password) {
            keys.push((
                "dashboard_password",
                "KEEPWORD_DASHBOARD_PASSWORD, or `dashboard_password` / `dashboard_password_file` \
                 in the config file",
            ));
        }
        keys
    }

    /// A dashboard password that is not the placeholder but shorter than
    /// [`MIN_DASHBOARD_PASSWORD_CHARS`]: its length, if so.
    fn short_dashboard_password(&self) -> Option<usize> {
        let p = self.dashboard_password.expose();
        let chars = p.chars().count();
        (p != PLACEHOLDER_SECRET && chars < MIN_DASHBOARD_PASSWORD_CHARS).then_some(chars)
    }

    /// Placeholder secrets are public knowledge: anyone who can reach the
    /// address could read every conversation or forge webhooks. Refused on
    /// an address others can reach; on loopback (development, tests) only
    /// warned about.
    pub fn check_secrets_for_bind(&self) -> SecretsCheck {
        let keys = self.placeholder_secrets();
        let short = self.short_dashboard_password();
        let loopback = self.bind.ip().is_loopback();
        if keys.is_empty() && (short.is_none() || loopback) {
            return SecretsCheck::Fine;
        }
        let list = keys
            .iter()
            .map(|(key, how)| format!("`{key}` (set {how})"))
            .collect::<Vec<_>>()
            .join("; ");
        if loopback {
            return SecretsCheck::Warn(format!(
                "the placeholder secret `{PLACEHOLDER_SECRET}` is in force for {list}; \
                 acceptable on loopback only"
            ));
        }
        let mut why = Vec::new();
        if !keys.is_empty() {
            why.push(format!(
                "the placeholder secret `{PLACEHOLDER_SECRET}` in force for {list}"
            ));
        }
        if let Some(chars) = short {
            why.push(format!(
                "a `dashboard_password` of {chars} character{} (at least \
                 {MIN_DASHBOARD_PASSWORD_CHARS} needed; set KEEPWORD_DASHBOARD_PASSWORD, or \
                 `dashboard_password` / `dashboard_password_file` in the config file)",
                if chars == 1 { "" } else { "s" }
            ));
        }
        SecretsCheck::Refuse(format!(
            "refusing to listen on {} with {}; set real secrets, or bind to 127.0.0.1",
            self.bind,
            why.join(", and ")
        ))
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
