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
use figment::value::Dict;
use serde::{Deserialize, Deserializer, Serialize};

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

/// A value that must never be printed: `Debug` and `Display` show `[redacted]`.
#[derive(Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Secret(String);

/// A secret is text whatever it looks like: `password = 123456789` in TOML is
/// the string "123456789", not a type error. Errors never quote the value.
impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Secret;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a secret written as a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Secret, E> {
                Ok(Secret::new(v))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Secret, E> {
                Ok(Secret(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            // A float's text is not kept (1.50 reads as 1.5), so guessing
            // would configure a different secret than the one written.
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Secret, E> {
                Err(E::custom(
                    "a secret that looks like a decimal number must be quoted",
                ))
            }
        }
        d.deserialize_any(Visitor)
    }
}

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

/// `[retention]` (README, "Retention").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSettings {
    /// Message bodies, raw mail and rejected input older than this
    /// (`"365d"`) are removed by a daily job; the SLA record stays.
    /// Absent: kept for ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bodies: Option<Days>,
}

/// A whole number of days, written `"365d"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Days(u32);

impl Days {
    /// The longest retention that makes sense: a century.
    const MAX: u32 = 36_500;

    pub fn new(days: u32) -> Option<Days> {
        (1..=Self::MAX).contains(&days).then_some(Days(days))
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl std::str::FromStr for Days {
    type Err = String;
    fn from_str(s: &str) -> Result<Days, String> {
        s.trim()
            .strip_suffix('d')
            .and_then(|n| n.parse::<u32>().ok())
            .and_then(Days::new)
            .ok_or_else(|| {
                format!(
                    "`{s}` is not a number of days: write it like \"365d\" (1 to {} days)",
                    Self::MAX
                )
            })
    }
}

impl Serialize for Days {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}d", self.0))
    }
}

impl<'de> Deserialize<'de> for Days {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Days, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// `[webhooks]`: how generic webhook deliveries are signed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Standard Webhooks signing secret (`whsec_` + base64). Empty: deliveries
    /// carry `webhook-id` but are not signed.
    pub signing_secret: Secret,
    /// Read the secret from this file instead (wins over `signing_secret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_secret_file: Option<PathBuf>,
}

impl WebhookSettings {
    /// The HMAC key: the base64 after the optional `whsec_` prefix. `None`
    /// when unset; an error when it is not base64.
    pub fn signing_key(&self) -> Result<Option<Vec<u8>>, String> {
        use base64::Engine;
        let s = self.signing_secret.expose().trim();
        if s.is_empty() {
            return Ok(None);
        }
        let b64 = s.strip_prefix("whsec_").unwrap_or(s);
        match base64::engine::general_purpose::STANDARD.decode(b64) {
            Ok(key) if !key.is_empty() => Ok(Some(key)),
            _ => Err("`webhooks.signing_secret` must be `whsec_` followed by base64 (e.g. `whsec_` + `openssl rand -base64 32`)".into()),
        }
    }
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

/// `[jira]` and `[linear]`: the secret their webhooks are signed with.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketWebhookSettings {
    #[serde(default)]
    pub webhook_secret: Secret,
    /// Read the secret from this file instead (wins over `webhook_secret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret_file: Option<PathBuf>,
    /// Contract channel the deliveries feed (default: the first `ticket` channel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}

impl SlackSettings {
    /// What is wrong with the section, each naming its key.
    fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.signing_secret.is_empty() {
            out.push(
                "`slack.signing_secret` is empty: set it (or `signing_secret_file`) to the app's \
                 Signing Secret, or remove [slack]"
                    .to_string(),
            );
        }
        let token = self.bot_token.expose();
        if token.is_empty() {
            out.push(
                "`slack.bot_token` is empty: set it (or `bot_token_file`) to the app's Bot User \
                 OAuth Token (xoxb-…), or remove [slack]"
                    .to_string(),
            );
        } else if !token.starts_with("xoxb-") {
            out.push(
                "`slack.bot_token` must be a bot token (it starts with xoxb-): a user token \
                 would post as a person"
                    .to_string(),
            );
        }
        if self.team_ids.is_empty() {
            out.push(
                "`slack.team_ids` is empty: list your workspace ids (T…), or every message \
                 would be the client's"
                    .to_string(),
            );
        }
        for id in &self.team_ids {
            let ok = id.starts_with(['T', 'E']) && id.chars().all(|c| c.is_ascii_alphanumeric());
            if !ok {
                out.push(format!(
                    "`slack.team_ids`: `{id}` is not a workspace id (T… or E…, letters and digits)"
                ));
            }
        }
        if !(self.api_url.starts_with("http://") || self.api_url.starts_with("https://")) {
            out.push(format!(
                "`slack.api_url` must be an http:// or https:// URL (got `{}`)",
                self.api_url
            ));
        }
        out
    }
}

/// `[basecamp]`: Basecamp signs nothing, so the secret is the last segment
/// of the webhook's URL.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasecampSettings {
    #[serde(default)]
    pub webhook_secret: Secret,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret_file: Option<PathBuf>,
    /// The team's Basecamp company ids: people of these companies are the
    /// team, everyone else the client.
    #[serde(default)]
    pub company_ids: Vec<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}

/// `[slack]`: the app's signing secret (Events API requests), its bot
/// token (`chat.postMessage`), and which workspaces are the team's.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackSettings {
    /// The app's Signing Secret (Basic Information → App Credentials).
    #[serde(default)]
    pub signing_secret: Secret,
    /// Read the signing secret from this file instead (wins over `signing_secret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_secret_file: Option<PathBuf>,
    /// The bot token (`xoxb-…`) acknowledgements are posted with.
    #[serde(default)]
    pub bot_token: Secret,
    /// Read the bot token from this file instead (wins over `bot_token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot_token_file: Option<PathBuf>,
    /// The team's workspace ids (`T…`): their members' messages are the
    /// team's answers; everyone else in a client's channel is the client.
    #[serde(default)]
    pub team_ids: Vec<String>,
    /// Slack's Web API base URL (tests point it at loopback).
    #[serde(default = "default_slack_api_url")]
    pub api_url: String,
    /// The contract channel Slack feeds (default: the contract's first
    /// `slack` channel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}

fn default_slack_api_url() -> String {
    "https://slack.com/api".into()
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
    /// `password` (default) or `oauth2`: XOAUTH2 with a token of `oauth`,
    /// `username` (or the `from` address) as the user.
    #[serde(default)]
    pub auth: crate::oauth::AuthMethod,
    /// The `[oauth.NAME]` credential, with `auth = "oauth2"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<String>,
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
    /// `password` (default) or `oauth2` (a token of `oauth`, over `sasl`).
    #[serde(default)]
    pub auth: crate::oauth::AuthMethod,
    /// The `[oauth.NAME]` credential, with `auth = "oauth2"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<String>,
    /// `xoauth2` (default) or `oauthbearer`, with `auth = "oauth2"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl: Option<crate::oauth::Sasl>,
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
                from: "Northwind Support <support@example.com>".into(),
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
        if !(self.public_url.starts_with("http://") || self.public_url.starts_with("https://")) {
            problems.push(format!(
                "`public_url` must be an http:// or https:// URL (got `{}`)",
                self.public_url
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

/// Where the values came from, to name the place a mistake is in.
struct Sources {
    file: Option<PathBuf>,
    /// Dotted key and the variable that set it, in merge order.
    env: Vec<(String, String)>,
}

impl Sources {
    /// The variable that set `key` (or a key under it); the last one wins,
    /// as in the merge.
    fn env_var(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .rev()
            .find(|(dotted, _)| {
                dotted == key
                    || dotted
                        .strip_prefix(key)
                        .is_some_and(|rest| rest.starts_with('.'))
                    || key
                        .strip_prefix(dotted.as_str())
                        .is_some_and(|rest| rest.starts_with('.'))
            })
            .map(|(_, var)| var.as_str())
    }
}

/// Keys whose value is text: those whose default is a string, and the
/// secrets and paths whose default is absent.
fn is_text_key(defaults: &Dict, dotted: &str) -> bool {
    const TEXT_WITHOUT_DEFAULT: &[&str] = &[
        "dashboard_password_file",
        "metrics_token_file",
        "github.webhook_secret_file",
        "github.channel",
        "jira.webhook_secret_file",
        "jira.channel",
        "linear.webhook_secret_file",
        "linear.channel",
        "basecamp.webhook_secret_file",
        "basecamp.channel",
        "slack.signing_secret_file",
        "slack.bot_token_file",
        "slack.channel",
        "smtp.password_file",
        "webhooks.signing_secret_file",
    ];
    if TEXT_WITHOUT_DEFAULT.contains(&dotted) || is_secret_key(dotted) {
        return true;
    }
    let mut parts = dotted.split('.');
    let first = parts.next().unwrap_or_default();
    let mut value = defaults.get(first);
    for part in parts {
        value = value.and_then(|v| v.as_dict()).and_then(|d| d.get(part));
    }
    matches!(value, Some(figment::value::Value::String(..)))
}

/// Keys holding secrets: their values never appear in an error.
fn is_secret_key(dotted: &str) -> bool {
    let mut parts = dotted.split('.');
    let first = parts.next().unwrap_or_default();
    let last = dotted.rsplit('.').next().unwrap_or_default();
    matches!(
        first,
        "api_tokens" | "dashboard_password" | "wall_tokens" | "metrics_token"
    ) || matches!(
        last,
        "password" | "webhook_secret" | "signing_secret" | "client_secret" | "bot_token"
    )
}

fn describe_figment_error(e: figment::Error, sources: &Sources) -> String {
    e.into_iter()
        .map(|e| describe_one(&e, sources))
        .collect::<Vec<_>>()
        .join("; ")
}

/// One mistake, named the way the user wrote it: the environment variable,
/// or the key and the file. Never figment's internal provider names, and
/// never a secret's value.
fn describe_one(e: &figment::Error, sources: &Sources) -> String {
    let key = e.path.join(".");
    let what = if is_secret_key(&key) {
        match &e.kind {
            figment::error::Kind::Message(m) => m.clone(),
            _ => "must be a string".into(),
        }
    } else {
        e.kind.to_string()
    };
    if key.is_empty() {
        return match &sources.file {
            Some(f) => format!("{}: {what}", f.display()),
            None => what,
        };
    }
    match (sources.env_var(&key), &sources.file) {
        (Some(var), _) => format!("environment variable `{var}` (key `{key}`): {what}"),
        (None, Some(f)) => format!("key `{key}` in {}: {what}", f.display()),
        (None, None) => format!("key `{key}`: {what}"),
    }
}

/// Takes the value `e` is about out of the way: back to its default, or
/// removed when it has none. `false` when there is nothing to change (the
/// same error would come back).
fn repair(merged: &mut Dict, defaults: &Dict, e: &figment::Error) -> bool {
    use figment::value::Value;
    fn slot<'a, 'p>(dict: &'a mut Dict, path: &'p [String]) -> Option<(&'a mut Value, &'p String)> {
        let (last, parents) = path.split_last()?;
        let (first, rest) = parents.split_first()?;
        let mut value = dict.get_mut(first)?;
        for part in rest {
            value = match value {
                Value::Dict(_, d) => d.get_mut(part)?,
                Value::Array(_, a) => a.get_mut(part.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some((value, last))
    }
    fn default_at(defaults: &Dict, path: &[String]) -> Option<Value> {
        let (first, rest) = path.split_first()?;
        let mut value = defaults.get(first)?;
        for part in rest {
            value = value.as_dict()?.get(part)?;
        }
        Some(value.clone())
    }
    if matches!(e.kind, figment::error::Kind::MissingField(_)) {
        // A required field of a list entry (a mailbox without a host):
        // nothing sensible to put there, so drop the entry.
        return match e.path.split_last() {
            Some((_, parent)) if parent.len() >= 2 => remove(merged, parent),
            _ => false,
        };
    }
    if let Some(default) = default_at(defaults, &e.path) {
        let changed = match e.path.as_slice() {
            [only] => merged.insert(only.clone(), default.clone()).as_ref() != Some(&default),
            _ => match slot(merged, &e.path) {
                Some((Value::Dict(_, d), last)) => {
                    d.insert(last.clone(), default.clone()).as_ref() != Some(&default)
                }
                _ => false,
            },
        };
        if changed {
            return true;
        }
    }
    remove(merged, &e.path)
}

fn remove(merged: &mut Dict, path: &[String]) -> bool {
    use figment::value::Value;
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut container: Option<&mut Value> = None;
    for (i, part) in parents.iter().enumerate() {
        let next = if i == 0 {
            merged.get_mut(part)
        } else {
            match container.take() {
                Some(Value::Dict(_, d)) => d.get_mut(part),
                Some(Value::Array(_, a)) => part.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
                _ => None,
            }
        };
        match next {
            Some(v) => container = Some(v),
            None => return false,
        }
    }
    match container {
        None => merged.remove(last).is_some(),
        Some(Value::Dict(_, d)) => d.remove(last).is_some(),
        Some(Value::Array(_, a)) => match last.parse::<usize>() {
            Ok(i) if i < a.len() => {
                a.remove(i);
                true
            }
            _ => false,
        },
        Some(_) => false,
    }
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
    fn numeric_secrets_are_strings_and_never_printed() {
        let s = Settings::load_from(
            None,
            &env(&[
                ("KEEPWORD_GITHUB__WEBHOOK_SECRET", "123456789"),
                ("KEEPWORD_SMTP__PASSWORD", "000123"),
                ("KEEPWORD_DASHBOARD_PASSWORD", "true"),
                ("KEEPWORD_API_TOKENS", "42"),
            ]),
        )
        .expect("numeric-looking secrets are valid");
        assert_eq!(s.github.webhook_secret.expose(), "123456789");
        assert_eq!(s.smtp.password.expose(), "000123", "leading zeros kept");
        assert_eq!(s.dashboard_password.expose(), "true");
        assert_eq!(s.api_tokens, vec![Secret::new("42")]);

        let f = file("[smtp]\npassword = 987654321\n[github]\nwebhook_secret = 55\n");
        let s = Settings::load_from(Some(f.path()), &[]).unwrap();
        assert_eq!(s.smtp.password.expose(), "987654321");
        assert_eq!(s.github.webhook_secret.expose(), "55");

        // A float cannot be taken back to the digits written: refused, and
        // the error does not show it.
        let f = file("[smtp]\npassword = 31415.9265\n");
        let e = Settings::load_from(Some(f.path()), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("smtp.password"), "{e}");
        assert!(!e.contains("31415"), "{e}");
    }

    #[test]
    fn every_problem_is_reported_not_only_the_first() {
        let f =
            file("bnd = \"127.0.0.1:9000\"\npublic_url = \"ftp://x\"\n[smtp]\nport = \"lots\"\n");
        let e = Settings::load_from(Some(f.path()), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("`bnd`"), "{e}");
        assert!(e.contains("smtp.port") && e.contains("lots"), "{e}");
        assert!(
            e.contains("public_url"),
            "checks after parsing run too: {e}"
        );
        assert!(
            e.contains(&f.path().display().to_string()),
            "names the file: {e}"
        );
        assert_eq!(e.matches("; ").count(), 2, "three problems: {e}");
    }

    #[test]
    fn environment_mistakes_name_the_variable_without_internals() {
        let e = Settings::load_from(
            None,
            &env(&[
                ("KEEPWORD_SMTP__PORT", "lots"),
                ("KEEPWORD_BIND", "nowhere"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("`KEEPWORD_SMTP__PORT`"), "{e}");
        assert!(e.contains("`KEEPWORD_BIND`"), "{e}");
        assert!(!e.contains("figment"), "{e}");
        assert!(!e.contains("src/config.rs"), "{e}");
        // A wrong secret type from the file is named, its value never shown.
        let f = file("dashboard_password = [\"hunter2\"]\n");
        let e = Settings::load_from(Some(f.path()), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("dashboard_password"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn placeholder_secrets_are_refused_on_a_public_address_and_warned_on_loopback() {
        let mut s = Settings {
            bind: "0.0.0.0:8080".parse().unwrap(),
            ..Default::default()
        };
        let SecretsCheck::Refuse(why) = s.check_secrets_for_bind() else {
            panic!("the defaults on 0.0.0.0 must be refused");
        };
        for named in [
            "api_tokens",
            "github.webhook_secret",
            "dashboard_password",
            "KEEPWORD_API_TOKENS",
            "KEEPWORD_GITHUB__WEBHOOK_SECRET",
            "KEEPWORD_DASHBOARD_PASSWORD",
            "0.0.0.0:8080",
        ] {
            assert!(why.contains(named), "{named} missing from: {why}");
        }

        s.api_tokens = vec![Secret::new("real-token"), Secret::new(PLACEHOLDER_SECRET)];
        s.github.webhook_secret = Secret::new("real-secret");
        s.dashboard_password = Secret::new("real-password");
        let SecretsCheck::Refuse(why) = s.check_secrets_for_bind() else {
            panic!("one placeholder token among real ones is still a way in");
        };
        assert!(why.contains("api_tokens"), "{why}");
        assert!(!why.contains("github.webhook_secret"), "{why}");

        s.api_tokens = vec![Secret::new("real-token")];
        assert_eq!(s.check_secrets_for_bind(), SecretsCheck::Fine);

        for loopback in ["127.0.0.1:8080", "[::1]:8080"] {
            let s = Settings {
                bind: loopback.parse().unwrap(),
                ..Default::default()
            };
            assert!(
                matches!(s.check_secrets_for_bind(), SecretsCheck::Warn(w) if w.contains("api_tokens")),
                "{loopback}"
            );
        }
        let s = Settings {
            bind: "[::]:8080".parse().unwrap(),
            ..Default::default()
        };
        assert!(matches!(
            s.check_secrets_for_bind(),
            SecretsCheck::Refuse(_)
        ));
    }

    #[test]
    fn an_empty_dashboard_password_is_a_config_error() {
        // What a compose file with an unset variable passes.
        let e = Settings::load_from(None, &env(&[("KEEPWORD_DASHBOARD_PASSWORD", "")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`dashboard_password` is empty"), "{e}");
        let f = file("dashboard_password = \"\"\n");
        let e = Settings::load_from(Some(f.path()), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("`dashboard_password` is empty"), "{e}");
        let empty = file("");
        let f = file(&format!(
            "dashboard_password_file = \"{}\"\n",
            empty.path().display()
        ));
        let e = Settings::load_from(Some(f.path()), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("`dashboard_password` is empty"), "{e}");
    }

    #[test]
    fn the_dashboard_password_and_the_metrics_token_are_read_from_files() {
        let secret = file("a-secret-from-a-file-0123\n");
        let path = secret.path().display().to_string();
        let f = file(&format!(
            "dashboard_password = \"ignored\"\ndashboard_password_file = \"{path}\"\n"
        ));
        let s = Settings::load_from(Some(f.path()), &[]).unwrap();
        assert_eq!(s.dashboard_password.expose(), "a-secret-from-a-file-0123");
        type Read = fn(&Settings) -> &Secret;
        let keys: [(&str, &str, Read); 2] = [
            (
                "KEEPWORD_DASHBOARD_PASSWORD_FILE",
                "dashboard_password_file",
                |s| &s.dashboard_password,
            ),
            ("KEEPWORD_METRICS_TOKEN_FILE", "metrics_token_file", |s| {
                &s.metrics_token
            }),
        ];
        for (var, key, read) in keys {
            let s = Settings::load_from(None, &env(&[(var, &path)])).unwrap();
            assert_eq!(read(&s).expose(), "a-secret-from-a-file-0123", "{var}");
            let e = Settings::load_from(None, &env(&[(var, "/nonexistent/secret")]))
                .unwrap_err()
                .to_string();
            assert!(e.contains(key), "{e}");
        }
    }

    #[test]
    fn a_metrics_token_is_not_short_and_absent_by_default() {
        let e = Settings::load_from(None, &env(&[("KEEPWORD_METRICS_TOKEN", "short-1")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`metrics_token`") && !e.contains("short-1"),
            "{e}"
        );
        let s = Settings::load_from(None, &[]).unwrap();
        assert!(s.metrics_token.is_empty(), "public /metrics by default");
    }

    #[test]
    fn a_short_dashboard_password_is_refused_beyond_loopback() {
        let mut s = Settings {
            bind: "0.0.0.0:8080".parse().unwrap(),
            api_tokens: vec![Secret::new("real-token")],
            ..Default::default()
        };
        s.github.webhook_secret = Secret::new("real-secret");
        for short in ["x", "eleven-char", "ünïcödé-pw"] {
            s.dashboard_password = Secret::new(short);
            let SecretsCheck::Refuse(why) = s.check_secrets_for_bind() else {
                panic!("`{short}` must be refused on 0.0.0.0");
            };
            assert!(why.contains("`dashboard_password`"), "{why}");
            assert!(why.contains("at least 12"), "{why}");
            if short.len() > 3 {
                assert!(!why.contains(short), "never shows the password: {why}");
            }
        }
        s.dashboard_password = Secret::new("twelve-chars");
        assert_eq!(s.check_secrets_for_bind(), SecretsCheck::Fine);
        s.bind = "127.0.0.1:8080".parse().unwrap();
        s.dashboard_password = Secret::new("x");
        assert_eq!(
            s.check_secrets_for_bind(),
            SecretsCheck::Fine,
            "loopback is for development"
        );
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
    fn retention_is_optional_and_a_bad_period_is_named() {
        assert_eq!(Settings::default().retention.bodies, None);
        let f = file("[retention]\nbodies = \"365d\"\n");
        let s = Settings::load_from(Some(f.path()), &[]).unwrap();
        assert_eq!(s.retention.bodies.map(Days::get), Some(365));
        let s = Settings::load_from(None, &env(&[("KEEPWORD_RETENTION__BODIES", "30d")])).unwrap();
        assert_eq!(s.retention.bodies.map(Days::get), Some(30));
        for bad in ["\"1y\"", "\"0d\"", "\"365\"", "365"] {
            let f = file(&format!("[retention]\nbodies = {bad}\n"));
            let e = Settings::load_from(Some(f.path()), &[])
                .unwrap_err()
                .to_string();
            assert!(e.contains("retention.bodies"), "{bad}: {e}");
        }
    }

    #[test]
    fn an_explicit_missing_config_file_is_an_error() {
        let e = Settings::load_from(Some(Path::new("/nonexistent/k.toml")), &[]).unwrap_err();
        assert!(matches!(e, ConfigError::Missing(_)));
    }
    #[test]
    fn slack_is_off_until_configured_and_its_secrets_come_from_files() {
        let s = Settings::load_from(None, &[]).unwrap();
        assert!(s.slack.is_none());
        let signing = file("slack-signing-from-file\n");
        let token = file("xoxb-from-file\n");
        let f = file(&format!(
            "[slack]\nsigning_secret_file = \"{}\"\nbot_token_file = \"{}\"\nteam_ids = [\"T0AGENCY\"]\n",
            signing.path().display(),
            token.path().display()
        ));
        let s = Settings::load_from(Some(f.path()), &[]).unwrap();
        let slack = s.slack.unwrap();
        assert_eq!(slack.signing_secret.expose(), "slack-signing-from-file");
        assert_eq!(slack.bot_token.expose(), "xoxb-from-file");
        assert_eq!(slack.api_url, "https://slack.com/api");
        assert_eq!(slack.channel, None);
        assert!(!format!("{slack:?}").contains("xoxb-from-file"), "redacted");

        let f = file(
            "[slack]\nsigning_secret = \"s3cret-value\"\nbot_token = \"xoxp-user-token-value\"\nteam_ids = [\"#agency\"]\napi_url = \"slack.com\"\n",
        );
        let e = Settings::load_from(Some(f.path()), &[])
            .unwrap_err()
            .to_string();
        for needle in [
            "slack.bot_token",
            "xoxb-",
            "slack.team_ids",
            "slack.api_url",
        ] {
            assert!(e.contains(needle), "{needle}: {e}");
        }
        assert!(
            !e.contains("xoxp-user-token-value") && !e.contains("s3cret-value"),
            "{e}"
        );
        let f = file("[slack]\nsigning_secret = \"x\"\n");
        let e = Settings::load_from(Some(f.path()), &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("slack.bot_token") && e.contains("slack.team_ids"),
            "{e}"
        );
    }

    #[test]
    fn ticket_sources_are_off_until_configured_and_need_real_secrets() {
        let s = Settings::load_from(None, &[]).unwrap();
        assert!(s.jira.is_none() && s.linear.is_none() && s.basecamp.is_none());

        let secret = file("jira-secret-from-file\n");
        let f = file(&format!(
            "[jira]\nwebhook_secret_file = \"{}\"\nchannel = \"tickets\"\n\
             [basecamp]\nwebhook_secret = \"0123456789abcdef0\"\ncompany_ids = [796227]\n",
            secret.path().display()
        ));
        let env_secret = [("KEEPWORD_LINEAR__WEBHOOK_SECRET", "1234567890123456")];
        let s = Settings::load_from(Some(f.path()), &env(&env_secret)).unwrap();
        let jira = s.jira.unwrap();
        assert_eq!(jira.webhook_secret.expose(), "jira-secret-from-file");
        assert_eq!(jira.channel.as_deref(), Some("tickets"));
        assert_eq!(
            s.linear.unwrap().webhook_secret.expose(),
            "1234567890123456"
        );
        assert_eq!(s.basecamp.unwrap().company_ids, [796227]);

        // A guessable secret is refused, naming the key.
        let f = file("[basecamp]\nwebhook_secret = \"short\"\n");
        let e = Settings::load_from(Some(f.path()), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("basecamp.webhook_secret"), "{e}");
        assert!(!e.contains("short"), "{e}");
    }
}
